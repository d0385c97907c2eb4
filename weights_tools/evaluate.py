"""Accuracy of a quantized detector against its float model.

The evaluation photos are the four golden Darknet photos plus every photo that
scikit-image and scikit-learn ship (photos_shipped()).  A quantized model is
compared with the float model taken as ground truth:

  * kept: the fraction of float detections (thresh 0.5) that the quantized
    model also reports at thresh 0.5 with the same class and IoU >= 0.5
    (one-to-one, greedy by probability);
  * mAP@0.5: float detections at 0.5 are the ground truth, the quantized
    model's detections at thresh 0.005 are ranked by probability; AP per
    class with all-point interpolation, averaged over the classes present.
"""

import os

import numpy as np

# scikit-image's bundled natural photographs (not the drawings, charts and
# synthetic test patterns it also ships), by file name in skimage/data.
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
                  "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
                  "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
                  "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg",
                  "rocket.jpg")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
GOLDEN_PHOTOS = ("dog", "eagle", "horses", "person")


def skimage_photos():
    import skimage.data
    d = os.path.dirname(skimage.data.__file__)
    return [os.path.join(d, n) for n in SKIMAGE_PHOTOS if os.path.exists(os.path.join(d, n))]


def sklearn_photos():
    import sklearn.datasets
    d = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    return [os.path.join(d, n) for n in SKLEARN_PHOTOS if os.path.exists(os.path.join(d, n))]


def photos_shipped(golden=None):
    """[path]: the golden photos (stb_image-exact PPMs) if golden is a folder,
    then scikit-image's and scikit-learn's photos."""
    out = []
    if golden:
        out += [os.path.join(golden, "images", n + ".ppm") for n in GOLDEN_PHOTOS]
    return out + skimage_photos() + sklearn_photos()


def iou(a, b):
    """IoU of two (x, y, w, h) centre boxes."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _as_tuples(dets):
    return [(d.class_id, float(d.prob), tuple(d.box)) if hasattr(d, "class_id") else tuple(d)
            for d in dets]


def match(ref, test, thresh=0.5, min_iou=0.5):
    """Number of ref detections matched one-to-one by a test detection with prob
    > thresh, the same class and IoU >= min_iou (greedy, highest probability first)."""
    ref, test = _as_tuples(ref), [t for t in _as_tuples(test) if t[1] > thresh]
    used = [False] * len(test)
    kept = 0
    for cls, _p, box in sorted(ref, key=lambda r: -r[1]):
        best, bi = min_iou, -1
        for j, (c2, _p2, b2) in enumerate(test):
            if not used[j] and c2 == cls:
                v = iou(box, b2)
                if v >= best:
                    best, bi = v, j
        if bi >= 0:
            used[bi] = True
            kept += 1
    return kept


def mean_ap(gt_per_image, pred_per_image, min_iou=0.5):
    """mAP over the classes present in the ground truth (all-point interpolation)."""
    gt = [_as_tuples(g) for g in gt_per_image]
    pred = [_as_tuples(p) for p in pred_per_image]
    classes = sorted({c for g in gt for c, _p, _b in g})
    aps = []
    for cls in classes:
        n_gt = sum(1 for g in gt for c, _p, _b in g if c == cls)
        cand = [(p, k, b) for k, ps in enumerate(pred) for c, p, b in ps if c == cls]
        cand.sort(key=lambda t: -t[0])
        taken = [[False] * len(g) for g in gt]
        tp = np.zeros(len(cand))
        for i, (_p, k, b) in enumerate(cand):
            best, bj = min_iou, -1
            for j, (c, _pg, bg) in enumerate(gt[k]):
                if c == cls and not taken[k][j]:
                    v = iou(b, bg)
                    if v >= best:
                        best, bj = v, j
            if bj >= 0:
                taken[k][bj] = True
                tp[i] = 1
        if not cand:
            aps.append(0.0)
            continue
        ctp = np.cumsum(tp)
        recall = ctp / n_gt
        precision = ctp / np.arange(1, len(cand) + 1)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[1.0], precision, [0.0]])
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
    return float(np.mean(aps)) if aps else 1.0


def detections(net, paths, thresh=0.5, nms=0.45):
    """[[Detection]] of a prepared detector on each image path."""
    from mdfi.image import letterbox, load
    c, h, w = net.input_shape
    out = []
    for p in paths:
        img = load(p)
        net.forward(letterbox(img, w, h))
        out.append(net.detect((img.width, img.height), thresh, nms))
    return out


def best_match_prob(det, test, min_iou=0.5):
    """Highest probability among test detections of det's class with IoU >= min_iou
    (0.0 if none): where a lost detection went."""
    (cls, _, box), = _as_tuples([det])
    return max([t[1] for t in _as_tuples(test) if t[0] == cls and iou(box, t[2]) >= min_iou],
               default=0.0)


def compare_detectors(float_net, q_net, paths, thresh=0.5, map_thresh=0.005):
    """{'float': n, 'kept': k, 'kept_pct': %, 'map50': mAP} of q_net against float_net."""
    ref = detections(float_net, paths, thresh)
    low = detections(q_net, paths, map_thresh)
    kept = sum(match(r, t, thresh) for r, t in zip(ref, low))
    n = sum(len(r) for r in ref)
    return {"images": len(paths), "float": n, "kept": kept,
            "kept_pct": 100.0 * kept / n if n else 100.0,
            "map50": mean_ap(ref, low), "ref": ref, "test": low}
