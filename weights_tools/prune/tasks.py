"""What the pruner trains on: a labelled dataset (cross-entropy on the logits,
the layer before the final [softmax]) or unlabelled images and a teacher
(the unpruned model: the student matches the teacher's head outputs — the
inputs of every [yolo] layer, or the logits — by mean squared error, or for
a detector by the detection-aware "yolo" distillation loss)."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from weights_tools.prune.graph import PruneError
from weights_tools.torch.layers import DarknetBatchNorm, Softmax, Yolo


def head_layers(model):
    """Indices of the layers whose outputs the losses compare: the inputs of
    every [yolo], else the input of a final [softmax], else the last layer."""
    yolo = [i - 1 for i, layer in enumerate(model.layers) if isinstance(layer, Yolo)]
    if yolo:
        return yolo
    n = len(model.layers)
    if isinstance(model.layers[-1], Softmax) and n > 1:
        return [n - 2]
    return [n - 1]


def _augment(x, shift, flip, gen):
    if shift:
        n, _, h, w = x.shape
        padded = F.pad(x, (shift,) * 4)
        dy = torch.randint(0, 2 * shift + 1, (1,), generator=gen).item()
        dx = torch.randint(0, 2 * shift + 1, (1,), generator=gen).item()
        x = padded[:, :, dy:dy + h, dx:dx + w]
    if flip and torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(3)
    return x


class _Batches:
    def __init__(self, n, batch_size, seed):
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self._order, self._pos = None, n

    def next(self):
        if self._pos + self.batch_size > self.n:
            self._order, self._pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


class LabelledTask:
    """Cross-entropy on the logits.  x: float32 (N, C, H, W) in [0, 1]; y: int labels.
    Validation data (x_val, y_val) is what choices are measured on."""

    def __init__(self, x, y, x_val, y_val, batch_size=128, shift=0, flip=False, seed=0):
        if len(x) < batch_size:
            raise PruneError("%d training images, fewer than one batch of %d" % (len(x), batch_size))
        self.x, self.y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y))
        self.x_val, self.y_val = x_val, np.asarray(y_val)
        self.shift, self.flip = shift, flip
        self._batches = _Batches(len(x), batch_size, seed)
        self.steps_per_epoch = len(x) // batch_size

    def batch(self):
        idx = self._batches.next()
        return _augment(self.x[idx], self.shift, self.flip, self._batches.gen), self.y[idx]

    def loss(self, model, batch):
        x, y = batch
        z = model(x, outputs=head_layers(model))[0].flatten(1)
        return F.cross_entropy(z, y)

    def score(self, model, limit=None):
        """Validation accuracy (higher is better)."""
        x, y = self.x_val[:limit], self.y_val[:limit]
        model.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(x), 500):
                z = model(torch.from_numpy(x[i:i + 500]), outputs=head_layers(model))[0].flatten(1)
                right += int((z.argmax(1).numpy() == y[i:i + 500]).sum())
        return right / max(1, len(x))

    score_name = "validation accuracy"


def _bernoulli_kl(logit, target_logit):
    """KL(Bernoulli(sigmoid(target_logit)) || Bernoulli(sigmoid(logit))), elementwise."""
    p = torch.sigmoid(target_logit)
    return (F.binary_cross_entropy_with_logits(logit, p, reduction="none")
            - F.binary_cross_entropy_with_logits(target_logit, p, reduction="none"))


def yolo_curvature(teacher, anchors, classes):
    """The diagonal of yolo_distillation's Hessian in the student's raw outputs
    at student = teacher, shaped like `teacher`: a change d of the raw outputs
    raises the loss by about 1/2 * sum(curvature * d^2).  A logistic score of
    probability p curves by p (1 - p) (the Bernoulli Fisher information);
    x, y and the classes are weighted by the teacher's objectness, w and h by
    2 x objectness; divided by the anchors averaged over."""
    n, _, h, w = teacher.shape
    t = teacher.reshape(n, anchors, classes + 5, h, w)
    p = torch.sigmoid(t)
    fisher = p * (1 - p)
    obj = p[:, :, 4:5]
    out = torch.cat([obj * fisher[:, :, :2], 2 * obj.expand(-1, -1, 2, -1, -1), fisher[:, :, 4:5],
                     obj * fisher[:, :, 5:]], 2)
    return (out / (anchors * h * w)).reshape(teacher.shape)


def yolo_distillation(student, teacher, anchors, classes):
    """Distillation loss of one [yolo] head, from the raw (pre-[yolo]) outputs
    [n, anchors * (5 + classes), h, w], averaged over the anchors of the map:
    KL(teacher || student) of the objectness at every anchor, plus, weighted
    by the teacher's objectness (its soft responsibility for an object), the
    KLs of the logistic x, y and class scores and the squared error of the
    raw w, h.  Unlike the MSE of the raw outputs, it does not spend the
    student's capacity on the exact logits of anchors that hold no object."""
    n, _, h, w = teacher.shape
    s = student.reshape(n, anchors, classes + 5, h, w)
    t = teacher.reshape(n, anchors, classes + 5, h, w)
    obj = _bernoulli_kl(s[:, :, 4], t[:, :, 4])
    box = _bernoulli_kl(s[:, :, :2], t[:, :, :2]).sum(2) + ((s[:, :, 2:4] - t[:, :, 2:4]) ** 2).sum(2)
    cls = _bernoulli_kl(s[:, :, 5:], t[:, :, 5:]).sum(2)
    return (obj + torch.sigmoid(t[:, :, 4]) * (box + cls)).mean()


class TeacherTask:
    """Unlabelled images (N, C, H, W) in [0, 1], with random flips and shifts;
    the student learns the teacher's head outputs.

    loss="mse": mean squared error of the head outputs (any network);
    loss="yolo": yolo_distillation() at the input of every [yolo] layer.
    freeze_bn=True: batch normalization keeps the teacher's statistics while
    training (the BN scales still train): with a few images per batch of a
    small photo set, batch statistics are noisy and unlike the data the
    model was trained on.
    reconstruct=N: once a layer's channels are chosen (C2S2: layer by layer;
    the one-shot methods: all, then each in network order), the layers that
    read them are refitted by least squares to the teacher on the first N
    training images (reconstruct.py), reconstruct_rows sampled positions of
    each; 0: not."""

    def __init__(self, teacher, x, x_val, batch_size=4, shift=16, flip=True, seed=0,
                 loss="mse", freeze_bn=False, reconstruct=0, reconstruct_rows=256):
        if len(x) < batch_size:
            raise PruneError("%d training images, fewer than one batch of %d" % (len(x), batch_size))
        self.teacher = teacher.eval()
        self.heads = head_layers(teacher)
        if loss == "yolo":
            yolos = [teacher.layers[i + 1] for i in self.heads if i + 1 < len(teacher.layers)]
            if not yolos or not all(isinstance(y, Yolo) for y in yolos):
                raise PruneError("loss='yolo' needs a network whose heads feed [yolo] layers")
            self._yolo = [(len(y.mask), y.classes) for y in yolos]
        elif loss != "mse":
            raise PruneError("unknown teacher loss %r (mse or yolo)" % (loss,))
        self.loss_kind, self.freeze_bn = loss, freeze_bn
        self.x, self.x_val = torch.from_numpy(np.ascontiguousarray(x)), x_val
        self.shift, self.flip = shift, flip
        self._batches = _Batches(len(x), batch_size, seed)
        self.steps_per_epoch = max(1, len(x) // batch_size)
        self._val_targets = None
        self.reconstruct = min(int(reconstruct), len(x))
        self.reconstruct_rows = int(reconstruct_rows)
        if self.reconstruct and self.reconstruct_rows < 1:
            raise PruneError("the least-squares refit needs at least one position per image, "
                             "got reconstruct_rows=%d" % self.reconstruct_rows)
        self.seed = seed

    def batch(self):
        x = _augment(self.x[self._batches.next()], self.shift, self.flip, self._batches.gen)
        with torch.no_grad():
            return x, [t.detach() for t in self.teacher(x, outputs=self.heads)]

    def _distance(self, outs, targets):
        if self.loss_kind == "yolo":
            terms = [yolo_distillation(o, t, a, c) for o, t, (a, c) in zip(outs, targets, self._yolo)]
        else:
            terms = [F.mse_loss(o, t) for o, t in zip(outs, targets)]
        return sum(terms) / len(terms)

    def sensitivity(self, model, batch, gen=None):
        """A scalar whose squared gradient, halved and averaged over random
        draws, is the loss's rise when a channel is removed (to second order):
        at student = teacher the loss and its gradient are zero, so the Fisher
        importance of task.loss would be zero for every channel.  This is
        sum r * sqrt(h) * out with r ~ N(0, 1) and h the loss's curvature in
        each head output (yolo_curvature; 2 / size for the MSE), averaged over
        the batch like a loss: E_r[(d/dm)^2] / 2 = 1/2 sum h J^2 for an output
        change J, the rise of a loss whose Hessian is diag(h)."""
        x, targets = batch
        outs = model(x, outputs=self.heads)
        total = 0.0
        for k, (o, t) in enumerate(zip(outs, targets)):
            if self.loss_kind == "yolo":
                h = yolo_curvature(t, *self._yolo[k])
            else:
                h = torch.full_like(t, 2.0 / t[0].numel())
            r = torch.randn(o.shape, generator=gen)
            total = total + (r * torch.sqrt(h) * o).flatten(1).sum(1).mean()
        return total / math.sqrt(len(outs))   # the loss averages the heads

    def head_weight(self, i, a):
        """reconstruct()'s row weights: a [yolo] head's rows (layer i's
        pre-activation a is the raw output the loss compares) weighted by the
        teacher's objectness at each anchor, for all of that anchor's outputs
        (the weight of its box and class terms in the loss; about the
        objectness term's p (1 - p) where p is small), so the fit favours
        where the teacher sees something and solves once per anchor; other
        layers plain least squares (None)."""
        if self.loss_kind != "yolo" or i not in self.heads:
            return None
        anchors, classes = self._yolo[self.heads.index(i)]
        n, _, h, w = a.shape
        obj = torch.sigmoid(a.reshape(n, anchors, classes + 5, h, w)[:, :, 4:5])
        return obj.expand(-1, -1, classes + 5, -1, -1).reshape(a.shape)

    def after_select(self, model, graph, gid, log=print):
        """Called by methods.c2s2 once group gid's mask is fixed."""
        if not self.reconstruct:
            return
        from weights_tools.prune.reconstruct import reconstruct
        x = self.x[:self.reconstruct]
        errors = reconstruct(model, self.teacher, graph, gid, list(x.split(8)),
                             per_image=self.reconstruct_rows, seed=self.seed,
                             weight=self.head_weight)
        log("  least squares to the teacher: %s" % ", ".join(
            "layer %d error %.3f -> %.3f" % (i, a, b) for i, (a, b) in errors.items()))

    def loss(self, model, batch):
        x, targets = batch
        if self.freeze_bn and model.training:
            for m in model.modules():
                if isinstance(m, DarknetBatchNorm):
                    m.eval()
        return self._distance(model(x, outputs=self.heads), targets)

    def score(self, model, limit=None):
        """Minus the loss to the teacher on the validation images."""
        x = torch.from_numpy(self.x_val[:limit])
        model.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(len(x)):
                want = self.teacher(x[i:i + 1], outputs=self.heads)
                got = model(x[i:i + 1], outputs=self.heads)
                total += float(self._distance(got, want))
        return -total / max(1, len(x))

    @property
    def score_name(self):
        return ("minus validation MSE to the teacher" if self.loss_kind == "mse" else
                "minus validation yolo distillation loss to the teacher")
