"""Numba twins of the soft attention step in minicap/nn/attention.py: same signatures, same results.

    hidden = tanh(a_proj + h Wh)   (N, L, A)        e = hidden w   (N, L)
    alpha  = softmax_i(e)          (-inf where mask == 0, so exactly 0 weight there)
    c      = sum_i alpha_i a_i     beta = sigmoid(h W_beta + b_beta);   z = beta c

Where the time goes, at the benchmark size (N=32, L=196, D=512, A=256): every step reads the
annotations a (N, L, D) twice (context forward, dalpha backward) and reads or writes the (N, L, A)
hidden activations several times. These are memory-bound passes over megabytes; the matrix products
around them (h Wh and its gradients) are small. So the kernels fuse passes:

  _scores            hidden = tanh(a_proj + h Wh) and e = hidden w in one pass (NumPy: add, tanh, matvec)
  _softmax_context   the masked softmax of e and the context sum_i alpha_i a_i, one row n at a time
  _attend_backward   g = dalpha + dcontext . a_i, the softmax backward de, and (if wanted) da = alpha_i
                     dcontext, in one read of a
  _scores_backward   da_proj = de w (1 - hidden^2), its sum over locations (for dh and dWh) and each
                     row's part of dw, in one read of hidden

need_da=False (frozen CNN features) skips da, the largest array of the step. Sums accumulate in the
input's precision (a zero or one of the arrays' own dtype, not the literals 0.0 and 1, which Numba types
as float64): a float32 run then stays in float32 and its reductions vectorise. Measured (one thread,
shared machine at load ~4, kernels alone at the benchmark size, float32): _scores_backward 0.81 -> 0.22
ms, _attend_backward 0.38 -> 0.26 ms, _scores 0.86 -> 0.56 ms per call. The loops over the batch
are prange loops in which each row n writes only its own outputs (dw is summed from per-row parts
after the loop: no shared accumulator), so they may run in parallel; PARALLEL says why they do not.

The cache is the reference's tuple (a, h, Wh, w, W_beta, hidden, alpha, context, beta): a cache from
either backend goes to either backward.
"""
import math

import numpy as np
from numba import njit, prange

from kernels import vmath
from minicap.nn.basic import sigmoid

# prange over the batch: off. Measured on the 2-core machine this was written on (shared, busy): each
# call of a parallel kernel waited 10-20 ms for its worker thread to be scheduled, and BLAS's own two
# threads compete for the same cores, so the numba backend ran ~2x slower with it than without (the
# docs/performance.md). Re-measured on the idle machine (load 0.6, OpenBLAS and Numba 2 threads
# each, `minicap bench --workload soft_attention_step --dtype float32 --repeat 9`): 223 ms serial, 566 ms
# with PARALLEL = True. The loops are written for it: set True to try it on a machine with more cores.
PARALLEL = False

# Reductions (sums, dot products) vectorise only if LLVM may reorder them ("reassoc"); "contract" lets it
# fuse multiply-adds. Never the flags that assume no NaN/Inf ("nnan", "ninf"): masked scores are -inf.
# (kernels.vmath's functions are compiled without these flags and keep their exact evaluation order.)
JIT = dict(cache=True, error_model="numpy", parallel=PARALLEL, fastmath={"reassoc", "contract"})


@njit(**JIT)
def _scores(a_proj, hWh, w, hidden, e):
    """hidden[n, l] = tanh(a_proj[n, l] + hWh[n]) (N, L, A) and e[n, l] = hidden[n, l] . w (N, L):
    one pass over a_proj instead of NumPy's three (add, tanh, matrix-vector product)."""
    N, L, A = a_proj.shape
    zero = e.dtype.type(0)   # accumulate in the input's precision: a float64 sum of float32 terms does not vectorise
    for n in prange(N):
        hw = hWh[n]
        for l in range(L):
            src, hid = a_proj[n, l], hidden[n, l]
            for k in range(A):
                hid[k] = vmath.tanh(src[k] + hw[k])
            score = zero
            for k in range(A):
                score += hid[k] * w[k]
            e[n, l] = score


@njit(**JIT)
def _softmax_context(e, keep, a, alpha, context):
    """e: (N, L) scores; keep: (N, L) 1 where the location may be attended (all ones without a mask);
    a: (N, L, D). Writes alpha (N, L) = softmax over the kept locations (exactly 0 elsewhere) and
    context (N, D) = sum_l alpha[n, l] a[n, l]. A row with no kept location gets NaN, as in the reference."""
    N, L, D = a.shape
    for n in prange(N):
        top = -np.inf
        for l in range(L):
            if keep[n, l] != 0:
                top = max(top, e[n, l])
        total = 0.0
        for l in range(L):
            p = vmath.exp(e[n, l] - top) if keep[n, l] != 0 else 0.0  # masked: exactly 0
            alpha[n, l] = p
            total += p
        inv = 1.0 / total if total > 0 else math.nan
        ctx = context[n]
        ctx[:] = 0
        for l in range(L):
            alpha[n, l] *= inv
            weight, row = alpha[n, l], a[n, l]
            for d in range(D):
                ctx[d] += weight * row[d]


@njit(**JIT)
def _attend_backward(dcontext, dalpha, alpha, a, de, da, need_da):
    """dcontext: (N, D); dalpha: (N, L) upstream gradient of alpha; alpha: (N, L); a: (N, L, D).
    Writes de (N, L) = alpha (g - sum_l alpha_l g_l) with g = dalpha + dcontext . a_l  (softmax backward),
    and, when need_da, da (N, L, D) = alpha_l dcontext."""
    N, L, D = a.shape
    zero = de.dtype.type(0)   # (see _scores)
    for n in prange(N):
        dctx = dcontext[n]
        weighted = zero
        for l in range(L):
            row = a[n, l]
            g = zero
            for d in range(D):
                g += dctx[d] * row[d]
            g += dalpha[n, l]
            de[n, l] = g
            weighted += alpha[n, l] * de[n, l]  # the stored (rounded) g: one location gives de = 0 exactly
            if need_da:
                out, weight = da[n, l], alpha[n, l]
                for d in range(D):
                    out[d] = weight * dctx[d]
        for l in range(L):
            de[n, l] = alpha[n, l] * (de[n, l] - weighted)


@njit(**JIT)
def _scores_backward(de, w, hidden, da_proj, dhWh, dw_rows):
    """de: (N, L) gradient of the scores; w: (A,); hidden: (N, L, A).
    Writes da_proj (N, L, A) = de w (1 - hidden^2), dhWh (N, A) = sum_l da_proj[n, l] and
    dw_rows (N, A) = sum_l de[n, l] hidden[n, l] (summed over n by the caller)."""
    N, L, A = hidden.shape
    one = de.dtype.type(1)   # an integer literal 1 would promote float32 arithmetic to float64
    for n in prange(N):
        acc_h, acc_w = dhWh[n], dw_rows[n]
        acc_h[:] = 0
        acc_w[:] = 0
        for l in range(L):
            s, hid, out = de[n, l], hidden[n, l], da_proj[n, l]
            for k in range(A):
                t = hid[k]
                v = s * w[k] * (one - t * t)
                out[k] = v
                acc_h[k] += v
                acc_w[k] += s * t


def _c(array, dtype):
    """A C-contiguous array of dtype (no copy when it already is one): the row loops vectorise on those."""
    return np.ascontiguousarray(array, dtype=dtype)


def soft_attention_forward(a, a_proj, h, Wh, w, W_beta=None, b_beta=None, mask=None):
    """Twin of minicap.nn.attention.soft_attention_forward: returns (z (N, D), alpha (N, L)) and the cache."""
    N, L, D = a.shape
    dtype = np.result_type(a, a_proj, h, Wh, w)
    hidden, e = np.empty(a_proj.shape, dtype), np.empty((N, L), dtype)
    _scores(_c(a_proj, dtype), _c(h @ Wh, dtype), _c(w, dtype), hidden, e)
    keep = np.ones((N, L), np.int8) if mask is None else _c(mask != 0, np.int8)
    alpha, context = np.empty((N, L), dtype), np.empty((N, D), dtype)
    _softmax_context(e, keep, _c(a, dtype), alpha, context)
    if W_beta is None:
        beta, z = None, context
    else:
        beta = sigmoid(h @ W_beta + b_beta)  # (N, 1): too small to be worth a kernel
        z = beta * context
    return (z, alpha), (a, h, Wh, w, W_beta, hidden, alpha, context, beta)


def soft_attention_backward(dz, dalpha, cache, need_da=True):
    """Twin of minicap.nn.attention.soft_attention_backward: returns da (None unless need_da), da_proj,
    dh, dWh, dw, and with the gate also dW_beta, db_beta."""
    a, h, Wh, w, W_beta, hidden, alpha, context, beta = cache
    N, L, D = a.shape
    A = hidden.shape[2]
    dtype = alpha.dtype
    if beta is None:
        dcontext = dz
    else:
        dcontext = beta * dz
        dgate = np.sum(dz * context, axis=1, keepdims=True) * beta * (1 - beta)  # (N, 1)
    de = np.empty((N, L), dtype)
    da = np.empty((N, L, D), dtype) if need_da else np.empty((N, L, 0), dtype)
    _attend_backward(_c(dcontext, dtype), _c(dalpha, dtype), _c(alpha, dtype), _c(a, dtype), de, da, need_da)
    da_proj, dhWh, dw_rows = np.empty((N, L, A), dtype), np.empty((N, A), dtype), np.empty((N, A), dtype)
    _scores_backward(de, _c(w, dtype), _c(hidden, dtype), da_proj, dhWh, dw_rows)
    dh = dhWh @ Wh.T
    dWh = h.T @ dhWh
    dw = dw_rows.sum(axis=0)
    da = da if need_da else None
    if beta is None:
        return da, da_proj, dh, dWh, dw
    dh = dh + dgate @ W_beta.T
    return da, da_proj, dh, dWh, dw, h.T @ dgate, dgate.sum(axis=0)
