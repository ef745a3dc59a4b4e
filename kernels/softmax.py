"""Numba twins of the masked temporal softmax cross-entropy in minicap/nn/temporal.py.

    loss = -(1/N) sum_{n,t} mask[n,t] log softmax(x[n,t])[y[n,t]]
    dx   = dloss * mask (softmax(x) - onehot(y)) / N

The reference makes ~8 NumPy passes over the (N, T, V) scores (max, subtract, exp, sum, log,
subtract, gather, multiply); the kernels make three in the forward pass (max; sum of exp; write
log-probabilities) and one in the backward pass, each over one row of V scores at a time, which stays
in the L1 cache. The exponentials use kernels.vmath (vectorised); the one log per row is math.log.

The rows are independent: the loops over the batch are prange loops in which each row n writes only
its own outputs (the per-row losses are summed after the loop, never accumulated across threads), so
they may run in parallel (PARALLEL, off by default as in kernels/attention.py). The cache is the
reference's (logp, y, m), so either backend's backward takes either cache.
"""
import math

import numpy as np
from numba import njit, prange

from kernels import vmath

PARALLEL = False  # rows are independent, but threads did not pay here: see kernels/attention.py
# "reassoc" lets the sums over a row vectorise; never "nnan"/"ninf" (kernels.vmath keeps its exact order).
JIT = dict(cache=True, error_model="numpy", parallel=PARALLEL, fastmath={"reassoc", "contract"})


@njit(**JIT)
def _log_softmax_rows(x, y, m, logp, row_loss):
    """x: (N, T, V) scores; y: (N, T) targets; m: (N, T) weights.
    Writes logp (N, T, V) = log softmax(x) and row_loss[n] = -sum_t m[n,t] logp[n, t, y[n,t]]."""
    N, T, V = x.shape
    for n in prange(N):
        total = 0.0
        for t in range(T):
            row, out = x[n, t], logp[n, t]
            top = row[0]
            for v in range(1, V):
                top = max(top, row[v])
            s = 0.0  # the sum of exponentials is accumulated in float64
            for v in range(V):
                s += vmath.exp(row[v] - top)
            shift = top + math.log(s)
            for v in range(V):
                out[v] = row[v] - shift
            total -= m[n, t] * out[y[n, t]]
        row_loss[n] = total


@njit(**JIT)
def _softmax_minus_onehot(logp, y, scale, dx):
    """dx[n, t] = scale[n, t] (exp(logp[n, t]) - onehot(y[n, t]))."""
    N, T, V = logp.shape
    for n in prange(N):
        for t in range(T):
            s, row, out = scale[n, t], logp[n, t], dx[n, t]
            for v in range(V):
                out[v] = s * vmath.exp(row[v])
            out[y[n, t]] -= s


def _check_targets(y, V):
    """The kernels index rows by y without bounds checks: check once here, as NumPy would."""
    if y.size and (y.min() < 0 or y.max() >= V):
        raise IndexError(f"targets must lie in [0, {V}); got values in [{y.min()}, {y.max()}]")


def temporal_softmax_loss_forward(x, y, mask):
    """Twin of minicap.nn.temporal.temporal_softmax_loss_forward: (loss, cache (logp, y, m))."""
    N, T, V = x.shape
    x = np.ascontiguousarray(x)
    _check_targets(y, V)
    m = mask.astype(x.dtype)
    logp = np.empty_like(x)
    row_loss = np.empty(N, np.float64)
    _log_softmax_rows(x, np.ascontiguousarray(y), np.ascontiguousarray(m), logp, row_loss)
    return x.dtype.type(row_loss.sum() / N), (logp, y, m)


def temporal_softmax_loss_backward(dloss, cache):
    """Twin of minicap.nn.temporal.temporal_softmax_loss_backward: dx (N, T, V)."""
    logp, y, m = cache
    N = logp.shape[0]
    _check_targets(y, logp.shape[2])
    scale = np.ascontiguousarray(m * (dloss / N), dtype=logp.dtype)
    dx = np.empty_like(logp)
    _softmax_minus_onehot(np.ascontiguousarray(logp), np.ascontiguousarray(y), scale, dx)
    return dx
