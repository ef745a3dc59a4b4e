"""Optimizers and gradient clipping.

An optimizer updates a flat parameter dict in place from a gradient dict with the same keys:

    opt = Adam(lr=1e-3)
    opt.step(params, grads)

Its state (moment estimates, step count) is a flat dict of arrays, so it goes into a checkpoint next
to the parameters and training resumes exactly: `opt.state_dict()`, `opt.load_state_dict(state)`.

The update rules, for a parameter w with gradient g (all elementwise):

    SGD        w -= lr g
    Momentum   v = mu v - lr g;                 w += v
    Adagrad    G += g^2;                        w -= lr g / (sqrt(G) + eps)
    RMSProp    s = rho s + (1 - rho) g^2;       w -= lr g / (sqrt(s) + eps)
    Adam       m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t += 1
               w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""
import math

import numpy as np


class Optimizer:
    """Base class: hyperparameters as attributes, per-parameter buffers in self.buffers[kind][name]."""

    name = "optimizer"
    buffer_kinds = ()

    def __init__(self, lr):
        self.lr = lr
        self.t = 0  # number of steps taken
        self.buffers = {kind: {} for kind in self.buffer_kinds}

    def _buffer(self, kind, name, like):
        if name not in self.buffers[kind]:
            self.buffers[kind][name] = np.zeros_like(like)
        return self.buffers[kind][name]

    def step(self, params, grads):
        """Update every params[k] in place from grads[k]."""
        self.t += 1
        for name, w in params.items():
            if name not in grads:
                raise KeyError(f"no gradient for parameter {name!r}")
            self._update(name, w, grads[name])

    def _update(self, name, w, g):
        raise NotImplementedError

    def state_dict(self):
        """Flat dict of arrays: 't' and '<buffer kind>/<param name>' for every buffer."""
        state = {"t": np.array(self.t), "lr": np.array(self.lr)}
        for kind, bufs in self.buffers.items():
            for name, arr in bufs.items():
                state[f"{kind}/{name}"] = arr
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        self.buffers = {kind: {} for kind in self.buffer_kinds}
        for key, arr in state.items():
            if "/" in key:
                kind, name = key.split("/", 1)
                if kind not in self.buffers:
                    raise ValueError(f"optimizer state has a '{kind}' buffer, which {self.name} does not use")
                self.buffers[kind][name] = np.array(arr)


class SGD(Optimizer):
    name = "sgd"

    def _update(self, name, w, g):
        w -= self.lr * g


class Momentum(Optimizer):
    name = "momentum"
    buffer_kinds = ("velocity",)

    def __init__(self, lr=1e-2, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def _update(self, name, w, g):
        v = self._buffer("velocity", name, w)
        v *= self.momentum
        v -= self.lr * g
        w += v


class Adagrad(Optimizer):
    name = "adagrad"
    buffer_kinds = ("sum_sq",)

    def __init__(self, lr=1e-1, eps=1e-8):
        super().__init__(lr)
        self.eps = eps

    def _update(self, name, w, g):
        G = self._buffer("sum_sq", name, w)
        G += g * g
        w -= self.lr * g / (np.sqrt(G) + self.eps)


class RMSProp(Optimizer):
    name = "rmsprop"
    buffer_kinds = ("mean_sq",)

    def __init__(self, lr=1e-3, rho=0.9, eps=1e-8):
        super().__init__(lr)
        self.rho, self.eps = rho, eps

    def _update(self, name, w, g):
        s = self._buffer("mean_sq", name, w)
        s *= self.rho
        s += (1 - self.rho) * g * g
        w -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    name = "adam"
    buffer_kinds = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, name, w, g):
        m, v = self._buffer("m", name, w), self._buffer("v", name, w)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1 ** self.t)  # bias correction: m and v start at zero
        v_hat = v / (1 - self.beta2 ** self.t)
        w -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Momentum, Adagrad, RMSProp, Adam)}


def cosine_lr(base_lr, step, steps):
    """The cosine learning-rate schedule: base_lr at step 0 down to 0 at `steps` (and after),
    base_lr (1 + cos(pi min(step / steps, 1))) / 2. A function of the step alone, so a resumed run
    follows the same schedule as a straight one."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1)))


def make_optimizer(name, **hyperparams):
    """Build an optimizer by name: sgd, momentum, adagrad, rmsprop or adam."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](**hyperparams)


# --- gradient clipping --------------------------------------------------------------------------
def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry."""
    return float(np.sqrt(sum(float(np.sum(g * g)) for g in grads.values())))


def clip_by_global_norm(grads, max_norm):
    """Scale all gradients by one factor so their global norm is at most max_norm (in place).

    The direction of the full gradient is kept. Returns the norm before clipping.
    """
    norm = global_norm(grads)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale
    return norm


def clip_by_norm_per_parameter(grads, max_norm):
    """Scale each gradient array on its own so its norm is at most max_norm (alignDRAW's clip), in place."""
    for g in grads.values():
        norm = float(np.sqrt(np.sum(g * g)))
        if norm > max_norm:
            g *= max_norm / (norm + 1e-12)


def clip_by_value(grads, limit):
    """Clip every entry to [-limit, limit] in place (min-char-rnn clips to [-5, 5])."""
    for g in grads.values():
        np.clip(g, -limit, limit, out=g)
