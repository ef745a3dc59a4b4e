"""The vanilla RNN: h_t = tanh(x_t Wx + h_{t-1} Wh + b).

Shapes: N batch, T time steps, D input features, H hidden units.
Backpropagation through time is the step backward pass run from t = T-1 down to 0, carrying dh.
"""
import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step: next_h = tanh(x Wx + prev_h Wh + b).

    x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,). Returns next_h: (N, H).
    """
    # BEGIN SOLUTION
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)
    # END SOLUTION


def rnn_step_backward(dnext_h, cache):
    """dnext_h: (N, H). Returns dx, dprev_h, dWx, dWh, db.

    With a = x Wx + prev_h Wh + b and next_h = tanh(a): da = dnext_h (1 - next_h^2), then the affine rule.
    """
    # BEGIN SOLUTION
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)
    # END SOLUTION


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the RNN over a whole sequence.

    x: (N, T, D), h0: (N, H). Returns h: (N, T, H), the hidden state after every step.
    """
    # BEGIN SOLUTION
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
    caches, prev_h = [], h0
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches
    # END SOLUTION


def rnn_backward(dh, caches):
    """Backpropagation through time.

    dh: (N, T, H), the upstream gradient of every hidden state (from the loss at each step).
    Returns dx: (N, T, D), dh0: (N, H), dWx, dWh, db (summed over time: the weights are shared).
    """
    # BEGIN SOLUTION
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, dtype=dh.dtype)
    dprev_h = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        # the state h_t feeds both the loss at t and the next step: its gradients add
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev_h, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db
    # END SOLUTION
