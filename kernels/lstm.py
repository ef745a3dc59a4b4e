"""Numba twins of the LSTM in minicap/nn/lstm.py: same signatures, same results.

Gates are stacked i, f, o, g along the last axis (4H wide), as in the reference:

    a = x Wx + prev_h Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
    next_c = f prev_c + i g;   next_h = o tanh(next_c)

What is fused, and what is left to BLAS. The matrix products (x Wx, prev_h Wh and their gradients) are
the bulk of the FLOPs and stay with NumPy's BLAS. Everything around them - the bias, five nonlinearities
(kernels.vmath's vectorised sigmoid and tanh), the cell update, the padding mask - is one call of
`_gates_forward` over the (N, 4H) numbers instead of ~30 NumPy passes, and the backward gate math is
one call of `_gates_backward`.

The sequence twins (lstm_forward / lstm_backward) also reorder the matrix products, which the step-by-
step reference cannot do:
  - x Wx does not depend on the recurrence, so it is one (N*T, D) x (D, 4H) product before the loop;
  - the weight gradients are sums over time, so dWx = X^T dA and dWh = H_prev^T dA are one product
    each after the loop (K = N*T instead of N), and dx = dA Wx^T is one product too.
Only prev_h Wh (forward) and da Wh^T (backward) remain inside the time loop, where they must be.

Caches. The step twins return exactly the reference's cache tuple, so a step cache from either
backend can go to either backward. The sequence twins keep a stacked cache (an LSTMSeqCache) that only
this module's lstm_backward reads: pair lstm_forward and lstm_backward from the same backend.

Threads: the gate kernels do 0.1-0.5 ms of work per step at the benchmark size, between two BLAS calls
that use both cores; they run on one thread (waking worker threads for so little work cost more than it
saved in the attention kernels, see PARALLEL in kernels/attention.py).
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from kernels import vmath

JIT = dict(cache=True, error_model="numpy")  # IEEE division (no zero check): lets loops vectorise


@njit(**JIT)
def _gates_forward(a, xw, b, prev_c, prev_h, mask_t, gates, next_c, tanh_c, next_h, out_h):
    """The gate math of one step, for every row n of the batch.

    a: (N, 4H) = prev_h Wh;  xw: (N, 4H) = x Wx;  b: (4H,);  prev_c, prev_h: (N, H);
    mask_t: (N,) step weights m (ones without a mask).
    Writes gates (N, 4H) = [i, f, o, g] after their nonlinearities, tanh_c = tanh(c) for the step's
    cell c = f prev_c + i g, the carried state next_c = m c + (1 - m) prev_c and
    next_h = m o tanh(c) + (1 - m) prev_h, and the output out_h = m next_h (as the reference does).

    The inner loops are split so each touches few arrays: LLVM then vectorises them (one loop writing
    seven arrays needs more run-time aliasing checks than it is willing to emit, and stays scalar).
    """
    N, H = prev_c.shape
    for n in range(N):
        m = mask_t[n]
        a_n, xw_n, gates_n = a[n], xw[n], gates[n]
        for j in range(3 * H):                      # i, f, o
            gates_n[j] = vmath.sigmoid(a_n[j] + xw_n[j] + b[j])
        for j in range(3 * H, 4 * H):               # g
            gates_n[j] = vmath.tanh(a_n[j] + xw_n[j] + b[j])
        prev_c_n, tanh_c_n = prev_c[n], tanh_c[n]
        for j in range(H):
            tanh_c_n[j] = vmath.tanh(gates_n[H + j] * prev_c_n[j] + gates_n[j] * gates_n[3 * H + j])
        prev_h_n, next_c_n, next_h_n, out_h_n = prev_h[n], next_c[n], next_h[n], out_h[n]
        for j in range(H):
            c = gates_n[H + j] * prev_c_n[j] + gates_n[j] * gates_n[3 * H + j]
            h_state = m * (gates_n[2 * H + j] * tanh_c_n[j]) + (1 - m) * prev_h_n[j]
            next_c_n[j] = m * c + (1 - m) * prev_c_n[j]
            next_h_n[j] = h_state
            out_h_n[j] = m * h_state


@njit(**JIT)
def _gates_backward(dh_out, dh_carry, dc_carry, mask_t, gates, tanh_c, prev_c, da, dh_pass, dc_prev):
    """The backward gate math of one step, masked.

    dh_out: (N, H) upstream gradient of this step's output; dh_carry, dc_carry: (N, H) gradients of
    the state this step hands on (from the later step, or dh_last / dc_last); mask_t: (N,).
    gates: (N, 4H) = [i, f, o, g], tanh_c and prev_c: (N, H), from the forward pass.
    Writes da: (N, 4H) the gradient of the pre-activations a, dh_pass = (1 - m) dnext_h (the part of
    dprev_h that goes around the step; the caller adds da Wh^T) and dc_prev = dc f + (1 - m) dc_carry.

    With the reference's  next = m step + (1 - m) prev  and  out = m next:
      dnext_h = m dh_out + dh_carry;   the step sees dh = m dnext_h and m dc_carry;
      dc = m dc_carry + dh o (1 - tanh_c^2)
      da_i = dc g i (1 - i),  da_f = dc prev_c f (1 - f),  da_o = dh tanh_c o (1 - o),  da_g = dc i (1 - g^2)
    """
    N, H = tanh_c.shape
    for n in range(N):
        m = mask_t[n]
        g_n, tc_n, pc_n, da_n = gates[n], tanh_c[n], prev_c[n], da[n]
        dh_out_n, dh_carry_n, dc_carry_n, dh_pass_n, dc_prev_n = dh_out[n], dh_carry[n], dc_carry[n], dh_pass[n], dc_prev[n]
        for j in range(H):
            dnext_h = m * dh_out_n[j] + dh_carry_n[j]
            dh_pass_n[j] = (1 - m) * dnext_h
            dh = m * dnext_h
            i, f, o, g, tc = g_n[j], g_n[H + j], g_n[2 * H + j], g_n[3 * H + j], tc_n[j]
            dc = m * dc_carry_n[j] + dh * o * (1 - tc * tc)
            da_n[j] = dc * g * i * (1 - i)
            da_n[H + j] = dc * pc_n[j] * f * (1 - f)
            da_n[2 * H + j] = dh * tc * o * (1 - o)
            da_n[3 * H + j] = dc * i * (1 - g * g)
            dc_prev_n[j] = dc * f + (1 - m) * dc_carry_n[j]


# --- one step ---------------------------------------------------------------------------------------
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Twin of minicap.nn.lstm.lstm_step_forward: same arguments, outputs and cache."""
    N, H = prev_h.shape
    dtype = np.result_type(x, prev_h, prev_c, Wx, Wh, b)
    xw, a = _as(np.dot(x, Wx), dtype), _as(np.dot(prev_h, Wh), dtype)
    gates = np.empty((N, 4 * H), dtype)
    next_c, tanh_c, next_h = np.empty((N, H), dtype), np.empty((N, H), dtype), np.empty((N, H), dtype)
    _gates_forward(a, xw, _as(b, dtype), _as(prev_c, dtype), _as(prev_h, dtype), np.ones(N, dtype),
                   gates, next_c, tanh_c, next_h, next_h)
    i, f, o, g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    return (next_h, next_c), (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Twin of minicap.nn.lstm.lstm_step_backward: returns dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    da, dprev_c = lstm_step_gate_grads(dnext_h, dnext_c, cache)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_gate_grads(dnext_h, dnext_c, cache):
    """Twin of minicap.nn.lstm.lstm_step_gate_grads: returns da (N, 4H) and dprev_c (N, H)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    N, H = tanh_c.shape
    dtype = np.result_type(dnext_h, dnext_c, tanh_c)
    gates = _as(np.concatenate([i, f, o, g], axis=1), dtype)  # caches of either backend work
    da = np.empty((N, 4 * H), dtype)
    dh_pass, dprev_c = np.empty((N, H), dtype), np.empty((N, H), dtype)
    _gates_backward(np.zeros((N, H), dtype), _as(dnext_h, dtype), _as(dnext_c, dtype), np.ones(N, dtype),
                    gates, _as(tanh_c, dtype), _as(prev_c, dtype), da, dh_pass, dprev_c)
    return da, dprev_c


def _as(array, dtype):
    """array as a C-contiguous array of dtype (no copy when it already is one): the kernels' row loops
    vectorise only on contiguous rows."""
    return np.ascontiguousarray(array, dtype=dtype)


# --- a whole sequence ---------------------------------------------------------------------------------
class LSTMSeqCache(NamedTuple):
    """What kernels.lstm.lstm_backward needs, stacked time-major so each step's slice is contiguous."""
    x_tm: np.ndarray      # (T, N, D) the inputs, time-major
    Wx: np.ndarray        # (D, 4H)
    Wh: np.ndarray        # (H, 4H)
    weights: np.ndarray   # (T, N) the mask as step weights (ones without a mask)
    gates: np.ndarray     # (T, N, 4H) i, f, o, g after their nonlinearities
    prev_h: np.ndarray    # (T, N, H) the hidden state entering each step
    prev_c: np.ndarray    # (T, N, H) the cell entering each step
    tanh_c: np.ndarray    # (T, N, H) tanh of each step's cell


def lstm_forward(x, h0, c0, Wx, Wh, b, mask=None):
    """Twin of minicap.nn.lstm.lstm_forward: returns (h (N, T, H), c_last (N, H)) and an LSTMSeqCache.

    x: (N, T, D), h0, c0: (N, H), mask: optional (N, T); where it is 0 the state is carried over and
    the output is 0.
    """
    N, T, D = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx)
    x_tm = _as(x.transpose(1, 0, 2), dtype)                                  # (T, N, D)
    xw = _as(np.dot(x_tm.reshape(T * N, D), Wx), dtype).reshape(T, N, 4 * H)  # x Wx for all steps at once
    weights = np.ones((T, N), dtype) if mask is None else _as(np.asarray(mask).T, dtype)
    gates = np.empty((T, N, 4 * H), dtype)
    prev_h, prev_c, tanh_c, h_tm = (np.empty((T, N, H), dtype) for _ in range(4))
    b = _as(b, dtype)
    state_h, state_c = _as(h0, dtype), _as(c0, dtype)
    for t in range(T):
        prev_h[t], prev_c[t] = state_h, state_c
        a = _as(np.dot(state_h, Wh), dtype)
        state_h, state_c = np.empty((N, H), dtype), np.empty((N, H), dtype)
        _gates_forward(a, xw[t], b, prev_c[t], prev_h[t], weights[t], gates[t], state_c, tanh_c[t], state_h, h_tm[t])
    h = _as(h_tm.transpose(1, 0, 2), dtype)
    return (h, state_c), LSTMSeqCache(x_tm, Wx, Wh, weights, gates, prev_h, prev_c, tanh_c)


def lstm_backward(dh, dc_last, cache):
    """Twin of minicap.nn.lstm.lstm_backward: returns dx (N, T, D), dh0, dc0 (N, H), dWx, dWh, db.

    `cache` must come from kernels.lstm.lstm_forward (the Numba backend's lstm_forward).
    """
    if not isinstance(cache, LSTMSeqCache):
        raise TypeError("kernels.lstm.lstm_backward needs the cache of kernels.lstm.lstm_forward, not of another "
                        "backend's lstm_forward: switch backends between training steps, not inside one")
    x_tm, Wx, Wh, weights, gates, prev_h, prev_c, tanh_c = cache
    N, T, H = dh.shape
    D = x_tm.shape[2]
    dtype = gates.dtype
    dh_tm = _as(dh.transpose(1, 0, 2), dtype)
    dA = np.empty((T, N, 4 * H), dtype)
    dh_carry, dc_carry = np.zeros((N, H), dtype), _as(dc_last, dtype).copy()
    dh_pass, dc_prev = np.empty((N, H), dtype), np.empty((N, H), dtype)
    for t in reversed(range(T)):
        _gates_backward(dh_tm[t], dh_carry, dc_carry, weights[t], gates[t], tanh_c[t], prev_c[t], dA[t], dh_pass, dc_prev)
        dh_carry = _as(np.dot(dA[t], Wh.T), dtype)   # dprev_h: through the step (da Wh^T) ...
        dh_carry += dh_pass                          # ... plus around it where masked
        dc_carry, dc_prev = dc_prev, dc_carry
    dA2 = dA.reshape(T * N, 4 * H)
    dx = np.dot(dA2, Wx.T).reshape(T, N, D).transpose(1, 0, 2)   # the products over all steps at once
    dWx = np.dot(x_tm.reshape(T * N, D).T, dA2)
    dWh = np.dot(prev_h.reshape(T * N, H).T, dA2)
    return _as(dx, dtype), dh_carry, dc_carry, dWx, dWh, dA2.sum(axis=0)
