"""The deep output layer of Show, Attend and Tell (Xu et al. 2015, eq. 7).

    logits = Lo act(E y_{t-1} + Lh h_t + Lz z_t) + bo

where E y_{t-1} is the previous word's embedding, h_t the LSTM state and z_t the context vector.
act is tanh in the authors' code (use_tanh=True); the paper's equation has none (use_tanh=False).

Shapes (any leading dims S, e.g. (N,) or (N, T)): emb: S+(E,), h: S+(H,), z: S+(D,),
Lh: (H, E), Lz: (D, E), Lo: (E, V), bo: (V,). Returns logits: S+(V,).
"""
import numpy as np


def deep_output_forward(emb, h, z, Lh, Lz, Lo, bo, use_tanh=True):
    pre = emb + h @ Lh + z @ Lz
    mid = np.tanh(pre) if use_tanh else pre
    return mid @ Lo + bo, (h, z, Lh, Lz, Lo, mid, use_tanh)


def deep_output_backward(dlogits, cache):
    """Returns demb, dh, dz, dLh, dLz, dLo, dbo (weight gradients summed over the leading dims)."""
    h, z, Lh, Lz, Lo, mid, use_tanh = cache
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731  (leading dims -> rows)
    dmid = dlogits @ Lo.T
    dpre = dmid * (1 - mid * mid) if use_tanh else dmid
    return (dpre, dpre @ Lh.T, dpre @ Lz.T, flat(h).T @ flat(dpre), flat(z).T @ flat(dpre),
            flat(mid).T @ flat(dlogits), flat(dlogits).sum(axis=0))
