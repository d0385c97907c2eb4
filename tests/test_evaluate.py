"""The detection-comparison metrics of weights_tools/evaluate.py on hand-made boxes."""
import pytest

from weights_tools import evaluate as ev

A = (0.5, 0.5, 0.2, 0.2)          # centre boxes (x, y, w, h)
A_NEAR = (0.52, 0.5, 0.2, 0.2)    # IoU with A = 0.18/0.22 ~ 0.82
A_FAR = (0.62, 0.5, 0.2, 0.2)     # IoU with A = 0.08/0.32 = 0.25


def test_iou():
    assert ev.iou(A, A) == pytest.approx(1.0)
    assert ev.iou(A, A_NEAR) == pytest.approx(0.18 * 0.2 / (0.08 - 0.18 * 0.2))
    assert ev.iou(A, (0.9, 0.9, 0.1, 0.1)) == 0.0


def test_match_needs_class_iou_and_threshold():
    ref = [(1, 0.6, A)]
    assert ev.match(ref, [(1, 0.7, A_NEAR)]) == 1
    assert ev.match(ref, [(2, 0.7, A_NEAR)]) == 0          # other class
    assert ev.match(ref, [(1, 0.7, A_FAR)]) == 0           # IoU 0.25
    assert ev.match(ref, [(1, 0.5, A)]) == 0               # not above thresh 0.5
    assert ev.match(ref, [(1, 0.49, A)], thresh=0.4) == 1


def test_match_is_one_to_one():
    ref = [(1, 0.9, A), (1, 0.8, A_NEAR)]
    assert ev.match(ref, [(1, 0.7, A)]) == 1
    assert ev.match(ref, [(1, 0.7, A), (1, 0.6, A_NEAR)]) == 2


def test_mean_ap():
    gt = [[(1, 0.9, A)], [(2, 0.8, A)]]
    assert ev.mean_ap(gt, gt) == pytest.approx(1.0)
    # class 2 missed entirely: AP 0 for it
    assert ev.mean_ap(gt, [[(1, 0.9, A)], []]) == pytest.approx(0.5)
    # a false positive ranked above the true one halves class 1's precision at recall 1
    assert ev.mean_ap([[(1, 0.9, A)]], [[(1, 0.9, A_FAR), (1, 0.8, A)]]) == pytest.approx(0.5)


def test_best_match_prob_says_where_a_lost_detection_went():
    det = (1, 0.52, A)
    test = [(1, 0.47, A_NEAR), (1, 0.9, A_FAR), (2, 0.8, A)]
    assert ev.best_match_prob(det, test) == pytest.approx(0.47)
    assert ev.match([det], test) == 0
    assert ev.best_match_prob(det, [(2, 0.8, A)]) == 0.0
