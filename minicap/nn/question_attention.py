"""Attention driven by a question vector (visual question answering, minicap/models/vqa.py).

Two ways to let a question vector u (N, H) pick image regions v_1..v_L (N, L, H):

Memory network read (Sukhbaatar et al. 2015, end-to-end memory networks), dot-product attention over
memories m_i (input embedding) that returns a sum of other vectors c_i (output embedding):

    e_i = m_i . u          p = softmax_i(e)          o = sum_i p_i c_i          (N, H)

Stacked attention layer (Yang et al. 2016, stacked attention networks), one layer k:

    h_A   = tanh(W_I v_i (+) (W_Q u + b_A))     (+): the question term added to every region  (N, L, A)
    p     = softmax(w_P . h_A)                  where to look                                 (N, L)
    v~    = sum_i p_i v_i                       what was seen                                 (N, H)
    u_new = v~ + u                              the refined query (a residual connection)     (N, H)

The paper writes p = softmax(W_P h_A + b_P); b_P adds the same number to every region's score, and
softmax does not change when all its inputs move together, so b_P has no gradient and is left out.
The first three lines ARE the captioner's soft attention (minicap.nn.attention) with the question in
the place of the decoder state (h = u, Wh = W_Q, w = w_P, a_proj = v W_I + b_A, no beta gate), so the
layer calls it (and, through minicap.backend, its Numba twin): only the residual, the projection of
the regions and the sum of the two gradients that reach the regions are new here.

Shapes: N batch, L regions, H region/question size, A attention size.
"""
import numpy as np

from minicap import backend


def dot_attention_forward(m, c, u):
    """Memory network read. m, c: (N, L, H) input and output memories, u: (N, H) the query.

    Returns (o (N, H), p (N, L)) and the cache."""
    e = np.einsum("nlh,nh->nl", m, u)
    e = e - e.max(axis=1, keepdims=True)
    p = np.exp(e)
    p /= p.sum(axis=1, keepdims=True)
    o = np.einsum("nl,nlh->nh", p, c)
    return (o, p), (m, c, u, p)


def dot_attention_backward(do, dp, cache):
    """do: (N, H), dp: (N, L) (zeros if p feeds nothing else). Returns dm, dc (N, L, H), du (N, H).

        dp += do . c_i;   dc_i = p_i do;   de = p (dp - sum_j p_j dp_j)   (the softmax Jacobian)
        dm_i = de_i u;    du = sum_i de_i m_i
    """
    m, c, u, p = cache
    dp = dp + np.einsum("nh,nlh->nl", do, c)
    dc = p[:, :, None] * do[:, None, :]
    de = p * (dp - np.sum(p * dp, axis=1, keepdims=True))
    dm = de[:, :, None] * u[:, None, :]
    du = np.einsum("nl,nlh->nh", de, m)
    return dm, dc, du


def stacked_attention_forward(v, u, W_I, b_A, W_Q, w_P):
    """One stacked-attention layer. v: (N, L, H) regions, u: (N, H) query, W_I: (H, A), b_A: (A,),
    W_Q: (H, A), w_P: (A,).

    Returns (u_new (N, H), p (N, L)) and the cache."""
    v_proj = v @ W_I + b_A                                             # (N, L, A), W_I v_i + b_A
    (v_tilde, p), att_cache = backend.get("soft_attention_forward")(v, v_proj, u, W_Q, w_P)
    return (v_tilde + u, p), (v, W_I, att_cache)


def stacked_attention_backward(du_new, dp, cache):
    """du_new: (N, H), dp: (N, L). Returns dv (N, L, H), du (N, H), dW_I, db_A, dW_Q, dw_P.

    The regions reach the output twice, as what is summed (v~ = sum p_i v_i) and through the scores
    (W_I v_i): dv = da (from soft attention) + dv_proj W_I^T. The query too: du = du_new (the residual)
    + dh (through the scores)."""
    v, W_I, att_cache = cache
    da, dv_proj, dh, dW_Q, dw_P = backend.get("soft_attention_backward")(du_new, dp, att_cache, need_da=True)
    H, A = W_I.shape
    dv = da + dv_proj @ W_I.T
    dW_I = v.reshape(-1, H).T @ dv_proj.reshape(-1, A)
    db_A = dv_proj.sum(axis=(0, 1))
    return dv, du_new + dh, dW_I, db_A, dW_Q, dw_P
