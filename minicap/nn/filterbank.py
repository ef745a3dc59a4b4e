"""DRAW's Gaussian filterbank attention (Gregor et al. 2015): read a small patch of an image, write one.

An image has A columns (x, the width) and B rows (y, the height); arrays hold it as (Bt, B, A) for a
batch of Bt images. Pixel coordinates count from 1, as in the paper: a = 1..A, b = 1..B.

1. Five numbers from the decoder state say where to look (an affine layer gives them):

       (g~x, g~y, log sigma^2, log delta~, log gamma) = h_dec W + b            p: (Bt, 5)

       gx = (A + 1)/2 (g~x + 1)       gy = (B + 1)/2 (g~y + 1)                 the grid centre
       delta = (max(A, B) - 1)/max(N - 1, 1) delta~                           the stride (N = 1: unused)
       sigma^2, gamma = exp(log sigma^2), exp(log gamma)                      width, intensity

   g~ = 0 puts the centre in the middle of the image; delta~ = 1 spreads the N filters over all of it.

2. An N x N grid of Gaussian filters, centred at (gx, gy) with stride delta:

       mu_x_i = gx + (i - N/2 - 0.5) delta       mu_y_j = gy + (j - N/2 - 0.5) delta      i, j = 1..N
       Fx[i, a] = exp(-(a - mu_x_i)^2 / (2 sigma^2)) / Zx_i                                (Bt, N, A)
       Fy[j, b] = exp(-(b - mu_y_j)^2 / (2 sigma^2)) / Zy_j                                (Bt, N, B)

   Z normalises each row to sum 1. It is `sum + EPS`, smooth in every parameter (a `max(sum, EPS)`
   guard would put a kink in the function, and finite-difference checks fail at kinks); EPS keeps a
   filter whose whole Gaussian falls off the image from dividing by zero. Weights more than ~9 sigma
   from the centre are set to exactly 0 (see EXP_CUTOFF: far-tail floats are slow to multiply).

3. read (an N x N glimpse) and write (an N x N patch painted back onto a B x A canvas):

       read(x)  = gamma Fy x Fx^T          x: (Bt, B, A)  ->  (Bt, N, N)
       write(w) = Fy^T w Fx / gamma        w: (Bt, N, N)  ->  (Bt, B, A)

DRAW reads both the image and the error image x_hat = x - sigmoid(c_{t-1}); `attentive_read_forward`
does both from h_dec, `attentive_write_forward` computes the patch w = h_dec W + b and writes it.
`read_no_attention_forward` / `write_no_attention_forward` are the paper's baseline without
attention: read the whole image, write a whole canvas.

Backward passes. With K[i, a] = exp(-(a - mu_i)^2 / (2 sigma^2)) and F = K / Z (Z = sum_a K + EPS),

       dK[i, a] = (dF[i, a] - sum_a' dF[i, a'] F[i, a']) / Z_i      (so dK K = (dF - sum_a' dF F) F)
       dmu_i    = sum_a dK[i, a] K[i, a] (a - mu_i) / sigma^2
       dsigma^2 = sum_{i, a} dK[i, a] K[i, a] (a - mu_i)^2 / (2 sigma^4)     (from Fx and from Fy)
       dgx = sum_i dmu_x_i,   ddelta = sum_i (i - N/2 - 0.5)(dmu_x_i + dmu_y_i)

and for read, with T = Fy x and G = T Fx^T:  dgamma = sum(dout G), dG = gamma dout,
dT = dG Fx, dFx = dG^T T, dFy = dT x^T, dx = Fy^T dT. For write, with Q = w Fx and dP = dout / gamma:
dQ = Fy dP, dw = dQ Fx^T, dFx = w^T dQ, dFy = Q dP^T, dgamma = -sum(w dw) / gamma.

The filterbank, read and write are hot functions (minicap.backend): `attentive_read_forward` and
`attentive_write_forward` fetch them through the backend, so MINICAP_BACKEND=numba runs the Numba
twins in kernels/filterbank.py; with MINICAP_BACKEND=numpy they are the functions in this file.
"""
import numpy as np

from minicap import backend
from minicap.nn.basic import affine_backward, affine_forward

EPS = 1e-8
# Gaussian weights below exp(-EXP_CUTOFF) = 4e-18 are set to 0 (the filter is truncated at ~9 sigma).
# Why: float32 numbers below 1.2e-38 are "denormal", and every multiplication that touches one is
# ~100x slower on x86; the products of two or three far-tail weights land there and made read and
# write ~10x slower. What it changes is below rounding: a row's mass moves by < A * 4e-18 / EPS ~ 1e-8.
EXP_CUTOFF = 40.0


def filter_offsets(N, dtype=np.float64):
    """(i - N/2 - 0.5) for i = 1..N: where filter i sits relative to the centre, in strides. (N,)"""
    # BEGIN SOLUTION
    return np.arange(1, N + 1, dtype=dtype) - N / 2 - 0.5
    # END SOLUTION


# --- 1. the five window parameters ----------------------------------------------------------------
def filter_params_forward(p, A, B, N):
    """Turn the five raw numbers into the window: p: (Bt, 5), columns g~x, g~y, log sigma^2,
    log delta~, log gamma. A, B: image width and height; N: filters per side.

    Returns (gx, gy, sigma2, delta, gamma), each (Bt,), and the cache.
    """
    scale = (max(A, B) - 1) / max(N - 1, 1)  # N = 1: one filter at the centre, the stride is unused
    gx = (A + 1) / 2 * (p[:, 0] + 1)
    gy = (B + 1) / 2 * (p[:, 1] + 1)
    sigma2 = np.exp(p[:, 2])
    delta = scale * np.exp(p[:, 3])
    gamma = np.exp(p[:, 4])
    return (gx, gy, sigma2, delta, gamma), (A, B, sigma2, delta, gamma)


def filter_params_backward(dgx, dgy, dsigma2, ddelta, dgamma, cache):
    """d of each window parameter, (Bt,) each. Returns dp: (Bt, 5).

    d exp(u)/du = exp(u), so the log-parameterised ones get d(value) * value.
    """
    A, B, sigma2, delta, gamma = cache
    return np.stack([dgx * (A + 1) / 2, dgy * (B + 1) / 2, dsigma2 * sigma2, ddelta * delta, dgamma * gamma],
                    axis=1)


# --- 2. the filterbank ----------------------------------------------------------------------------
def _bank(mu, sigma2, size, eps):
    """Rows of normalised Gaussians: mu: (Bt, N), sigma2: (Bt,). Returns F: (Bt, N, size)."""
    # BEGIN SOLUTION
    a = np.arange(1, size + 1, dtype=mu.dtype)                            # pixel coordinates 1..size
    exponent = -(a - mu[:, :, None]) ** 2 / (2 * sigma2[:, None, None])   # (Bt, N, size)
    K = np.where(exponent > -EXP_CUTOFF, np.exp(exponent), 0)
    Z = K.sum(axis=2, keepdims=True) + eps
    return K / Z
    # END SOLUTION


def filterbank_forward(gx, gy, sigma2, delta, A, B, N, eps=EPS):
    """The N x N grid of Gaussian filters.

    gx, gy, sigma2, delta: (Bt,). A, B: image width and height. N: filters per side.
    Returns (Fx (Bt, N, A), Fy (Bt, N, B)) and the cache.
    """
    # BEGIN SOLUTION
    offsets = filter_offsets(N, gx.dtype)
    mu_x = gx[:, None] + offsets * delta[:, None]                         # (Bt, N)
    mu_y = gy[:, None] + offsets * delta[:, None]
    Fx = _bank(mu_x, sigma2, A, eps)
    Fy = _bank(mu_y, sigma2, B, eps)
    return (Fx, Fy), (sigma2, mu_x, mu_y, Fx, Fy)
    # END SOLUTION


def _bank_backward(dF, F, mu, sigma2):
    """Gradients of mu (Bt, N) and sigma2 (Bt,) from dF: (Bt, N, size), through F = K / Z.

    dK = (dF - sum_a dF F) / Z and K = F Z, so dK K = (dF - sum_a dF F) F: Z cancels.
    """
    # BEGIN SOLUTION
    a = np.arange(1, F.shape[2] + 1, dtype=F.dtype)
    dK_K = (dF - (dF * F).sum(axis=2, keepdims=True)) * F                  # dK * K
    diff = a - mu[:, :, None]                                              # (Bt, N, size)
    s2 = sigma2[:, None, None]
    dmu = (dK_K * diff / s2).sum(axis=2)
    dsigma2 = (dK_K * diff * diff / (2 * s2 * s2)).sum(axis=(1, 2))
    return dmu, dsigma2
    # END SOLUTION


def filterbank_backward(dFx, dFy, cache):
    """dFx: (Bt, N, A), dFy: (Bt, N, B). Returns dgx, dgy, dsigma2, ddelta, each (Bt,)."""
    # BEGIN SOLUTION
    sigma2, mu_x, mu_y, Fx, Fy = cache
    dmu_x, dsigma2_x = _bank_backward(dFx, Fx, mu_x, sigma2)
    dmu_y, dsigma2_y = _bank_backward(dFy, Fy, mu_y, sigma2)
    offsets = filter_offsets(Fx.shape[1], Fx.dtype)
    ddelta = ((dmu_x + dmu_y) * offsets).sum(axis=1)
    return dmu_x.sum(axis=1), dmu_y.sum(axis=1), dsigma2_x + dsigma2_y, ddelta
    # END SOLUTION


# --- 3. read and write ----------------------------------------------------------------------------
def read_forward(x, Fx, Fy, gamma):
    """The glimpse gamma Fy x Fx^T.

    x: (Bt, B, A), Fx: (Bt, N, A), Fy: (Bt, N, B), gamma: (Bt,). Returns (Bt, N, N) and the cache.
    """
    # BEGIN SOLUTION
    T = Fy @ x                                                             # (Bt, N, A)
    G = T @ Fx.transpose(0, 2, 1)                                          # (Bt, N, N)
    return gamma[:, None, None] * G, (x, Fx, Fy, gamma, T, G)
    # END SOLUTION


def read_backward(dout, cache, need_dx=True):
    """dout: (Bt, N, N). Returns dx (Bt, B, A), dFx (Bt, N, A), dFy (Bt, N, B), dgamma (Bt,).

    need_dx=False returns None for dx: DRAW reads the image x itself, which is data (no gradient),
    beside the error image (which needs one)."""
    # BEGIN SOLUTION
    x, Fx, Fy, gamma, T, G = cache
    dgamma = (dout * G).sum(axis=(1, 2))
    dG = gamma[:, None, None] * dout
    dT = dG @ Fx                                                           # (Bt, N, A)
    dFx = dG.transpose(0, 2, 1) @ T
    dFy = dT @ x.transpose(0, 2, 1)
    dx = Fy.transpose(0, 2, 1) @ dT if need_dx else None
    return dx, dFx, dFy, dgamma
    # END SOLUTION


def write_forward(w, Fx, Fy, gamma):
    """Paint the patch: Fy^T w Fx / gamma.

    w: (Bt, N, N), Fx: (Bt, N, A), Fy: (Bt, N, B), gamma: (Bt,). Returns (Bt, B, A) and the cache.
    """
    # BEGIN SOLUTION
    Q = w @ Fx                                                             # (Bt, N, A)
    out = (Fy.transpose(0, 2, 1) @ Q) / gamma[:, None, None]
    return out, (w, Fx, Fy, gamma, Q)
    # END SOLUTION


def write_backward(dout, cache):
    """dout: (Bt, B, A). Returns dw (Bt, N, N), dFx (Bt, N, A), dFy (Bt, N, B), dgamma (Bt,)."""
    # BEGIN SOLUTION
    w, Fx, Fy, gamma, Q = cache
    dP = dout / gamma[:, None, None]
    dQ = Fy @ dP                                                           # (Bt, N, A)
    dw = dQ @ Fx.transpose(0, 2, 1)
    dFx = w.transpose(0, 2, 1) @ dQ
    dFy = Q @ dP.transpose(0, 2, 1)
    dgamma = -(w * dw).sum(axis=(1, 2)) / gamma
    return dw, dFx, dFy, dgamma
    # END SOLUTION


# --- the window from a hidden state: affine + parameters + filterbank -----------------------------
def attention_window_forward(h, W, b, A, B, N, max_span=0.0):
    """h: (Bt, H), W: (H, 5), b: (5,). Returns (Fx (Bt, N, A), Fy (Bt, N, B), gamma (Bt,)), cache.

    cache[-1] is a dict of the window (gx, gy, sigma2, delta, gamma; each (Bt,)) for drawing it.

    max_span > 0 (not the paper's; alignDRAW's --layout-max-span) keeps the window's span, first to last
    filter centre, (N - 1) delta = (max(A, B) - 1) exp(log delta~), below max_span pixels by a smooth
    minimum: log delta~ <- m - softplus(m - log delta~), m = log(max_span / (max(A, B) - 1)).
    """
    p, affine_cache = affine_forward(h, W, b)
    margin = None
    if max_span:
        margin = np.log(max_span / (max(A, B) - 1)) - p[:, 3]          # m - log delta~
        p = p.copy()
        p[:, 3] = p[:, 3] + margin - np.logaddexp(0, margin)           # m - softplus(m - log delta~)
    (gx, gy, sigma2, delta, gamma), params_cache = filter_params_forward(p, A, B, N)
    (Fx, Fy), bank_cache = backend.get("filterbank_forward")(gx, gy, sigma2, delta, A, B, N)
    window = dict(gx=gx, gy=gy, sigma2=sigma2, delta=delta, gamma=gamma, N=N)
    return (Fx, Fy, gamma), (affine_cache, params_cache, bank_cache, margin, window)


def attention_window_backward(dFx, dFy, dgamma, cache):
    """dFx: (Bt, N, A), dFy: (Bt, N, B), dgamma: (Bt,). Returns dh (Bt, H), dW (H, 5), db (5,).
    (With max_span: d/du [m - softplus(m - u)] = sigmoid(m - u).)"""
    affine_cache, params_cache, bank_cache, margin, _ = cache
    dgx, dgy, dsigma2, ddelta = backend.get("filterbank_backward")(dFx, dFy, bank_cache)
    dp = filter_params_backward(dgx, dgy, dsigma2, ddelta, dgamma, params_cache)
    if margin is not None:
        dp[:, 3] *= 1 / (1 + np.exp(-margin))
    return affine_backward(dp, affine_cache)


def attentive_read_forward(x, x_hat, h, W, b, N):
    """DRAW's read: r = [gamma Fy x Fx^T, gamma Fy x_hat Fx^T], flattened, with the window from h.

    x, x_hat: (Bt, B, A) the image and the error image; h: (Bt, H) the previous decoder state;
    W: (H, 5), b: (5,). Returns r: (Bt, 2 N N) and the cache.
    """
    Bt, B, A = x.shape
    read = backend.get("read_forward")
    (Fx, Fy, gamma), window_cache = attention_window_forward(h, W, b, A, B, N)
    glimpse_x, cache_x = read(x, Fx, Fy, gamma)
    glimpse_x_hat, cache_xh = read(x_hat, Fx, Fy, gamma)
    r = np.concatenate([glimpse_x.reshape(Bt, -1), glimpse_x_hat.reshape(Bt, -1)], axis=1)
    return r, (window_cache, cache_x, cache_xh, N)


def attentive_read_backward(dr, cache):
    """dr: (Bt, 2 N N). Returns dx_hat (Bt, B, A), dh (Bt, H), dW (H, 5), db (5,).

    The image x is data, so it gets no gradient; the error image does (it depends on the canvas).
    """
    window_cache, cache_x, cache_xh, N = cache
    read_back = backend.get("read_backward")
    Bt = dr.shape[0]
    _, dFx, dFy, dgamma = read_back(np.ascontiguousarray(dr[:, :N * N]).reshape(Bt, N, N), cache_x, need_dx=False)
    dx_hat, dFx2, dFy2, dgamma2 = read_back(np.ascontiguousarray(dr[:, N * N:]).reshape(Bt, N, N), cache_xh)
    dh, dW, db = attention_window_backward(dFx + dFx2, dFy + dFy2, dgamma + dgamma2, window_cache)
    return dx_hat, dh, dW, db


def attentive_write_forward(h, W_att, b_att, W_patch, b_patch, A, B, N):
    """DRAW's write: w = h W_patch + b_patch (an N x N patch), painted with the window from h.

    h: (Bt, H), W_att: (H, 5), b_att: (5,), W_patch: (H, N N), b_patch: (N N,); A, B: canvas width
    and height. Returns the canvas update (Bt, B, A) and the cache.
    """
    Bt = h.shape[0]
    w, patch_cache = affine_forward(h, W_patch, b_patch)
    (Fx, Fy, gamma), window_cache = attention_window_forward(h, W_att, b_att, A, B, N)
    out, write_cache = backend.get("write_forward")(w.reshape(Bt, N, N), Fx, Fy, gamma)
    return out, (patch_cache, window_cache, write_cache)


def attentive_write_backward(dout, cache):
    """dout: (Bt, B, A). Returns dh (Bt, H), dW_att (H, 5), db_att (5,), dW_patch (H, N N), db_patch."""
    patch_cache, window_cache, write_cache = cache
    dw, dFx, dFy, dgamma = backend.get("write_backward")(dout, write_cache)
    dh, dW_att, db_att = attention_window_backward(dFx, dFy, dgamma, window_cache)
    dh2, dW_patch, db_patch = affine_backward(dw.reshape(dw.shape[0], -1), patch_cache)
    return dh + dh2, dW_att, db_att, dW_patch, db_patch


# --- the baseline without attention ---------------------------------------------------------------
def read_no_attention_forward(x, x_hat):
    """Read everything: r = [x, x_hat] flattened. x, x_hat: (Bt, B, A). Returns r: (Bt, 2 B A), cache."""
    Bt = x.shape[0]
    return np.concatenate([x.reshape(Bt, -1), x_hat.reshape(Bt, -1)], axis=1), x.shape


def read_no_attention_backward(dr, cache):
    """dr: (Bt, 2 B A). Returns dx_hat: (Bt, B, A) (the image x is data: no gradient)."""
    shape = cache
    return dr[:, dr.shape[1] // 2:].reshape(shape)


def write_no_attention_forward(h, W, b, A, B):
    """Write a whole canvas: h W + b, reshaped. h: (Bt, H), W: (H, B A), b: (B A,). Returns (Bt, B, A)."""
    out, cache = affine_forward(h, W, b)
    return out.reshape(h.shape[0], B, A), cache


def write_no_attention_backward(dout, cache):
    """dout: (Bt, B, A). Returns dh (Bt, H), dW (H, B A), db (B A,)."""
    return affine_backward(dout.reshape(dout.shape[0], -1), cache)
