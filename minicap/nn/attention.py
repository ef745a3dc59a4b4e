"""Soft (deterministic) attention of Show, Attend and Tell (Xu et al. 2015), with the beta gate.

At decoder step t, with annotation vectors a_1..a_L (one per image location) and the previous
hidden state h = h_{t-1}:

    e_i   = w^T tanh(Wa a_i + b + Wh h)      score of location i          (N, L)
    alpha = softmax_i(e)                      where to look, sums to 1     (N, L)
    c     = sum_i alpha_i a_i                 the expected annotation      (N, D)
    beta  = sigmoid(h W_beta + b_beta)        the gate: how much to look   (N, 1)
    z     = beta * c                          the context vector           (N, D)

The projection Wa a_i + b does not depend on t, so the decoder computes it once per image
(`a_proj = a Wa + b`, a temporal affine) and passes it in; its gradient comes back as da_proj.

An optional mask (N, L) of 0/1 excludes locations (padded words when attending over a caption, as
alignDRAW does): their scores become -inf, so they get exactly zero weight.

Shapes: N batch, L locations, D annotation size, A attention size, H hidden size.
"""
import numpy as np

from minicap.nn.basic import sigmoid


def soft_attention_forward(a, a_proj, h, Wh, w, W_beta=None, b_beta=None, mask=None):
    """a: (N, L, D), a_proj: (N, L, A), h: (N, H), Wh: (H, A), w: (A,),
    W_beta: (H, 1) and b_beta: (1,) for the gate (both None: no gate, z = c), mask: (N, L) or None.

    Returns (z (N, D), alpha (N, L)) and the cache.
    """
    # BEGIN SOLUTION
    hidden = np.tanh(a_proj + (h @ Wh)[:, None, :])       # (N, L, A)
    e = hidden @ w                                        # (N, L)
    if mask is not None:
        e = np.where(mask != 0, e, -np.inf)
    e = e - e.max(axis=1, keepdims=True)
    alpha = np.exp(e)
    alpha /= alpha.sum(axis=1, keepdims=True)
    context = np.einsum("nl,nld->nd", alpha, a)
    if W_beta is None:
        beta, z = None, context
    else:
        beta = sigmoid(h @ W_beta + b_beta)               # (N, 1)
        z = beta * context
    return (z, alpha), (a, h, Wh, w, W_beta, hidden, alpha, context, beta)
    # END SOLUTION


def soft_attention_backward(dz, dalpha, cache, need_da=True):
    """dz: (N, D), dalpha: (N, L) (from a penalty on alpha; zeros if none).

    Returns da, da_proj, dh, dWh, dw, and with the gate also dW_beta, db_beta.
    need_da=False returns None for da: features from a frozen CNN need no gradient, and da (N, L, D)
    is the largest array of the step.

    Backward, step by step:
      dcontext = beta dz;   dbeta = sum_d dz context;   d(gate logit) = dbeta beta (1 - beta)
      dalpha  += dcontext . a_i;   da += alpha_i dcontext
      softmax:  de = alpha (dalpha - sum_i alpha_i dalpha_i)
      scores:   dw = sum hidden^T de;  dhidden = de w^T (1 - hidden^2) = da_proj;  dh = sum_i dhidden Wh^T
    """
    # BEGIN SOLUTION
    a, h, Wh, w, W_beta, hidden, alpha, context, beta = cache
    if beta is None:
        dcontext = dz
    else:
        dcontext = beta * dz
        dgate = np.sum(dz * context, axis=1, keepdims=True) * beta * (1 - beta)  # (N, 1)
    dalpha = dalpha + np.einsum("nd,nld->nl", dcontext, a)
    da = alpha[:, :, None] * dcontext[:, None, :] if need_da else None
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))  # masked: alpha = 0 there
    dw = np.einsum("nla,nl->a", hidden, de)
    da_proj = de[:, :, None] * w * (1 - hidden * hidden)                   # (N, L, A)
    dhWh = da_proj.sum(axis=1)                                            # (N, A)
    dh = dhWh @ Wh.T
    dWh = h.T @ dhWh
    if beta is None:
        return da, da_proj, dh, dWh, dw
    dh = dh + dgate @ W_beta.T
    return da, da_proj, dh, dWh, dw, h.T @ dgate, dgate.sum(axis=0)
    # END SOLUTION


def doubly_stochastic_penalty_forward(alphas, mask):
    """The doubly stochastic regulariser: penalty = (1/N) sum_n sum_i (1 - sum_t alpha_ti)^2.

    Encourages the model to look at every location about once over the caption.
    alphas: (N, T, L), mask: (N, T) 0/1; padded steps are left out of the sum over t (the authors'
    code did not mask them). Returns the scalar penalty and the cache.
    """
    # BEGIN SOLUTION
    m = mask.astype(alphas.dtype)[:, :, None]
    gap = 1 - np.sum(alphas * m, axis=1)                  # (N, L)
    return np.sum(gap * gap) / alphas.shape[0], (gap, m)
    # END SOLUTION


def doubly_stochastic_penalty_backward(dpenalty, cache):
    """Returns dalphas: (N, T, L) = -2 (1 - sum_t alpha_ti) mask_t / N."""
    # BEGIN SOLUTION
    gap, m = cache
    return (-2 * dpenalty / gap.shape[0]) * gap[:, None, :] * m
    # END SOLUTION
