"""What the pruner trains on: a labelled dataset (cross-entropy on the logits,
the layer before the final [softmax]) or unlabelled images and a teacher
(the unpruned model: the student matches the teacher's head outputs — the
inputs of every [yolo] layer, or the logits — by mean squared error)."""

import numpy as np
import torch
import torch.nn.functional as F

from weights_tools.prune.graph import PruneError
from weights_tools.torch.layers import Softmax, Yolo


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


class TeacherTask:
    """Mean squared error between the student's and the teacher's head outputs
    on unlabelled images (N, C, H, W) in [0, 1], with random flips and shifts."""

    def __init__(self, teacher, x, x_val, batch_size=4, shift=16, flip=True, seed=0):
        if len(x) < batch_size:
            raise PruneError("%d training images, fewer than one batch of %d" % (len(x), batch_size))
        self.teacher = teacher.eval()
        self.heads = head_layers(teacher)
        self.x, self.x_val = torch.from_numpy(np.ascontiguousarray(x)), x_val
        self.shift, self.flip = shift, flip
        self._batches = _Batches(len(x), batch_size, seed)
        self.steps_per_epoch = max(1, len(x) // batch_size)
        self._val_targets = None

    def batch(self):
        x = _augment(self.x[self._batches.next()], self.shift, self.flip, self._batches.gen)
        with torch.no_grad():
            return x, [t.detach() for t in self.teacher(x, outputs=self.heads)]

    def loss(self, model, batch):
        x, targets = batch
        outs = model(x, outputs=self.heads)
        return sum(F.mse_loss(o, t) for o, t in zip(outs, targets)) / len(outs)

    def score(self, model, limit=None):
        """Minus the mean squared error to the teacher on the validation images."""
        x = torch.from_numpy(self.x_val[:limit])
        model.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(len(x)):
                want = self.teacher(x[i:i + 1], outputs=self.heads)
                got = model(x[i:i + 1], outputs=self.heads)
                total += float(sum(F.mse_loss(o, t) for o, t in zip(got, want)) / len(got))
        return -total / max(1, len(x))

    score_name = "minus validation MSE to the teacher"
