"""Layers applied at every time step: temporal affine, masked temporal softmax cross-entropy.

Shapes: N batch, T time steps, D features, M outputs, V vocabulary.
"""
import numpy as np


def temporal_affine_forward(x, W, b):
    """out[n, t] = x[n, t] W + b: the same affine map at every step.

    x: (N, T, D), W: (D, M), b: (M,). Returns out: (N, T, M).
    """
    return x @ W + b, (x, W)


def temporal_affine_backward(dout, cache, need_dx=True):
    """dout: (N, T, M). Returns dx (N, T, D), dW (D, M), db (M,): the weight gradients sum over N and T.

    need_dx=False returns None for dx and skips its product: the input may need no gradient (the
    captioner's projection a Wa of frozen CNN features).
    """
    x, W = cache
    D, M = W.shape
    dW = x.reshape(-1, D).T @ dout.reshape(-1, M)
    dx = dout @ W.T if need_dx else None
    return dx, dW, dout.reshape(-1, M).sum(axis=0)


def log_softmax(x, axis=-1):
    """log softmax(x) = x - max - log sum exp(x - max): subtracting the max keeps exp from overflowing."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def temporal_softmax_loss_forward(x, y, mask):
    """Masked softmax cross-entropy summed over time and averaged over the batch.

        loss = -(1/N) sum_{n,t} mask[n,t] log softmax(x[n,t])[y[n,t]]

    x: (N, T, V) scores, y: (N, T) integer targets, mask: (N, T) 0/1 (0 at padding: no loss there).
    Returns the scalar loss and the cache.
    """
    # BEGIN SOLUTION
    N, T, V = x.shape
    logp = log_softmax(x)
    picked = np.take_along_axis(logp, y[..., None], axis=2)[..., 0]  # (N, T)
    m = mask.astype(x.dtype)
    loss = -np.sum(m * picked) / N
    return loss, (logp, y, m)
    # END SOLUTION


def temporal_softmax_loss_backward(dloss, cache):
    """Returns dx: (N, T, V) = dloss * mask (softmax(x) - onehot(y)) / N."""
    # BEGIN SOLUTION
    logp, y, m = cache
    N = logp.shape[0]
    dx = np.exp(logp)
    np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], axis=2) - 1, axis=2)
    return dx * (m[..., None] * (dloss / N))
    # END SOLUTION
