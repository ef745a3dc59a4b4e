"""The LSTM, its sequence version with padding masks, and a bidirectional LSTM.

One step, with gates stacked in the order i, f, o, g along the last axis (4H wide):

    a = x Wx + prev_h Wh + b                      (N, 4H)
    i = sigmoid(a_i)   input gate
    f = sigmoid(a_f)   forget gate
    o = sigmoid(a_o)   output gate
    g = tanh(a_g)      candidate cell
    next_c = f * prev_c + i * g                   the additive cell update
    next_h = o * tanh(next_c)

The cell update is additive, so dprev_c = dnext_c * f: the gradient flows back through time scaled
by the forget gate, not squashed through a tanh and a weight matrix at every step as in the vanilla RNN.

Shapes: N batch, T time, D input features, H hidden units.
"""
import numpy as np

from minicap import backend
from minicap.nn.basic import sigmoid


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step.

    x: (N, D), prev_h: (N, H), prev_c: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,).
    Returns (next_h, next_c), each (N, H), and the cache.
    """
    # BEGIN SOLUTION
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return (next_h, next_c), (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    # END SOLUTION


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c: (N, H). Returns dx, dprev_h, dprev_c, dWx, dWh, db.

    The gate gradient da (lstm_step_gate_grads) goes back through a = x Wx + prev_h Wh + b:
    dx = da Wx^T, dprev_h = da Wh^T, dWx = x^T da, dWh = prev_h^T da, db = sum_n da.
    """
    # BEGIN SOLUTION
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    da, dprev_c = lstm_step_gate_grads(dnext_h, dnext_c, cache)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)
    # END SOLUTION


def lstm_step_gate_grads(dnext_h, dnext_c, cache):
    """The first half of lstm_step_backward: da (N, 4H), the gradient of the pre-activations a, and dprev_c.

    next_h = o tanh(c) gives dc = dnext_c + dnext_h o (1 - tanh(c)^2); then
    di = dc g, df = dc prev_c, dg = dc i, do = dnext_h tanh(c), dprev_c = dc f,
    through the nonlinearities: da_{i,f,o} = d{i,f,o} s (1 - s), da_g = dg (1 - g^2).

    A loop over time that needs dx and dprev_h at every step but the weight gradients only in total
    can keep each step's da and form dWx = sum_t x_t^T da_t as ONE product after the loop (the
    captioner does): one (D, N T) x (N T, 4H) product is several times faster than T thin ones.
    """
    # BEGIN SOLUTION
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)
    da = np.concatenate([dc * g * i * (1 - i),
                         dc * prev_c * f * (1 - f),
                         dnext_h * tanh_c * o * (1 - o),
                         dc * i * (1 - g * g)], axis=1)
    return da, dc * f
    # END SOLUTION


def stacked_weights_T(Wx, Wh):
    """[Wx; Wh]^T as one C-contiguous (4H, D + H) array, for lstm_input_grads. Make it once per
    backward pass (the weights do not change within one) and use it at every step."""
    return np.ascontiguousarray(np.concatenate([Wx, Wh]).T)


def lstm_input_grads(da, weights_T, D):
    """dx = da Wx^T (N, D) and dprev_h = da Wh^T (N, H) as ONE product da [Wx; Wh]^T, split by columns.

    weights_T: stacked_weights_T(Wx, Wh). Why not da @ Wx.T and da @ Wh.T: BLAS must repack a
    transposed view on every call, and one product has one call's overhead. Measured with OpenBLAS on
    one thread (64 x 1024 gate gradients, D = 100-384, H = 256): 1.33x faster in float32, 1.1x in
    float64. The two results are column views of one (N, D + H) array.
    """
    out = da @ weights_T
    return out[:, :D], out[:, D:]


def lstm_weight_grads(caches, das):
    """dWx, dWh, db summed over a run of steps, from the steps' caches and gate gradients das (each (N, 4H),
    lstm_step_gate_grads): dWx = sum_t x_t^T da_t as one product over all the steps' rows."""
    da = np.concatenate(das)
    x, prev_h = np.concatenate([c[0] for c in caches]), np.concatenate([c[1] for c in caches])
    return x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, c0, Wx, Wh, b, mask=None):
    """Run an LSTM over a sequence.

    x: (N, T, D), h0, c0: (N, H), mask: optional (N, T) of 0/1, 1 for real steps.
    Where mask is 0 the state is carried over unchanged and the output is zero, so a padded caption
    ends with the state of its last real word.
    Returns (h, c_last): h (N, T, H) the outputs, c_last (N, H) the final cell, and the cache.
    """
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
    step_forward = backend.get("lstm_step_forward")  # lstm_step_forward above, or its Numba twin
    caches, prev_h, prev_c = [], h0, c0
    for t in range(T):
        (next_h, next_c), cache = step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        if mask is not None:
            m = mask[:, t, None].astype(h.dtype)
            next_h = m * next_h + (1 - m) * prev_h
            next_c = m * next_c + (1 - m) * prev_c
            h[:, t] = m * next_h
        else:
            h[:, t] = next_h
        prev_h, prev_c = next_h, next_c
        caches.append(cache)
    return (h, prev_c), (caches, mask)


def lstm_backward(dh, dc_last, cache):
    """Backpropagation through time for lstm_forward.

    dh: (N, T, H) upstream gradient of the outputs; dc_last: (N, H) of the final cell (zeros if unused).
    Returns dx (N, T, D), dh0, dc0 (N, H), dWx, dWh, db.
    """
    caches, mask = cache
    N, T, H = dh.shape
    Wx, Wh = caches[0][3], caches[0][4]
    dx = np.empty((N, T, Wx.shape[0]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dtype=dh.dtype)
    dprev_h = np.zeros((N, H), dtype=dh.dtype)
    dprev_c = dc_last.astype(dh.dtype, copy=True)
    step_backward = backend.get("lstm_step_backward")  # lstm_step_backward above, or its Numba twin
    for t in reversed(range(T)):
        dnext_h, dnext_c = dh[:, t] + dprev_h, dprev_c
        if mask is not None:
            # state = m * step(...) + (1 - m) * prev: split the gradient between the two branches
            m = mask[:, t, None].astype(dh.dtype)
            dnext_h = m * dh[:, t] + dprev_h
            carried_h, carried_c = (1 - m) * dnext_h, (1 - m) * dnext_c
            dnext_h, dnext_c = m * dnext_h, m * dnext_c
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = step_backward(dnext_h, dnext_c, caches[t])
        if mask is not None:
            dprev_h, dprev_c = dprev_h + carried_h, dprev_c + carried_c
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dprev_c, dWx, dWh, db


def reverse_padded(x, lengths):
    """Reverse each sequence along time within its own length, leaving the padding where it is.

    x: (N, T, ...), lengths: (N,) ints. Row n becomes x[n, L-1], ..., x[n, 0], x[n, L], ..., x[n, T-1].
    The permutation is its own inverse, so it also maps gradients back.
    (Reversing the batch axis, or the whole padded length, is the classic bug here.)
    """
    T = x.shape[1]
    t = np.arange(T)[None, :]
    L = np.asarray(lengths)[:, None]
    src = np.where(t < L, L - 1 - t, t)  # (N, T)
    return x[np.arange(x.shape[0])[:, None], src]


def bilstm_forward(x, mask, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):
    """Bidirectional LSTM over padded sequences; both directions start from zero states.

    x: (N, T, D), mask: (N, T) with each row ones then zeros (a prefix of real steps).
    The forward LSTM reads x_1..x_L; the backward LSTM reads x_L..x_1 of each sequence (reversed within
    its length). out[:, j] = [h_fwd_j ; h_bwd_j] is (N, T, 2H), zero at padding.
    """
    mask = np.asarray(mask)
    lengths = mask.sum(axis=1).astype(int)
    if not np.array_equal(mask != 0, np.arange(mask.shape[1])[None, :] < lengths[:, None]):
        raise ValueError("bilstm mask rows must be ones followed by zeros (real steps, then padding)")
    N, H = x.shape[0], Wh_f.shape[0]
    zeros = np.zeros((N, H), dtype=np.result_type(x, Wx_f))
    # the sequence loops: lstm_forward above, or its Numba twin (whose backward must go with it)
    seq_forward, seq_backward = backend.get("lstm_forward"), backend.get("lstm_backward")
    (h_f, _), cache_f = seq_forward(x, zeros, zeros, Wx_f, Wh_f, b_f, mask)
    (h_b_rev, _), cache_b = seq_forward(reverse_padded(x, lengths), zeros, zeros, Wx_b, Wh_b, b_b, mask)
    out = np.concatenate([h_f, reverse_padded(h_b_rev, lengths)], axis=2)
    return out, (cache_f, cache_b, lengths, H, seq_backward)


def bilstm_backward(dout, cache):
    """dout: (N, T, 2H). Returns dx (N, T, D), dWx_f, dWh_f, db_f, dWx_b, dWh_b, db_b."""
    cache_f, cache_b, lengths, H, seq_backward = cache
    zeros = np.zeros((dout.shape[0], H), dtype=dout.dtype)
    dx_f, _, _, dWx_f, dWh_f, db_f = seq_backward(dout[:, :, :H], zeros, cache_f)
    dx_b_rev, _, _, dWx_b, dWh_b, db_b = seq_backward(reverse_padded(dout[:, :, H:], lengths), zeros, cache_b)
    return dx_f + reverse_padded(dx_b_rev, lengths), dWx_f, dWh_f, db_f, dWx_b, dWh_b, db_b
