"""Numba twins of DRAW's Gaussian filterbank, read and write (minicap/nn/filterbank.py).

Same signatures, same caches, same results (to rounding) as the NumPy reference, which is where the
equations are explained. NumPy does each batched product as a stack of tiny matrix products (N is 2
to 12), with a dispatch and a temporary per product; here one compiled loop nest per function does
the whole batch. The loops are arranged so that the innermost one runs along a contiguous image row
(length A): either `row += c * other_row` or a dot product of two rows, both of which LLVM turns into
SIMD code. Sums accumulate in the input's dtype (the `zero` argument fixes it), like NumPy's, and
no float64 constant enters an inner loop (it would turn float32 work into float64).

That pays for small windows only: above LOOP_MAX multiply-adds per image (a window of more than a
few rows on a 28x28 image, or any on alignDRAW's 60x60 canvas) NumPy's batched matmul runs the
products in BLAS and is 1.5-3.5x faster than the loops, so read and write hand such calls to the
reference (same results: it is the reference). The filterbank itself stays here at every size.

The loops run serially: a call is tens of microseconds of work, so threads would cost more than they
save (and the BLAS calls around them already use the cores).
"""
import numpy as np
from numba import njit

from kernels import vmath
from minicap.nn import filterbank as reference

EPS = 1e-8
EXP_CUTOFF = 40.0   # weights below exp(-40) are 0, as in the reference (denormal floats are slow)

# Let LLVM reorder sums (so a dot product runs in SIMD lanes) and fuse multiply-adds. Never the
# flags that assume no NaN or Inf ("nnan", "ninf"): a NaN must stay visible, not be optimised away.
FASTMATH = {"reassoc", "contract"}
# error_model="numpy": IEEE division (no zero check, which would keep the loops from vectorising).
JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy")


# --- filterbank ------------------------------------------------------------------------------------
@njit(**JIT)
def _bank(mu, half_inv_sigma2, pixels, F, eps, zero):
    """F[n, i, a] = exp(-(pixels[a] - mu[n, i])^2 half_inv_sigma2[n]) / (sum_a ... + eps), in place.

    Every number here has the arrays' dtype (pixels = 1..size, half_inv_sigma2 = 1 / (2 sigma2), eps and
    zero come in already converted), so a float32 bank is float32 work: vmath.exp vectorises.
    """
    Bt, N, size = F.shape
    for n in range(Bt):
        c = half_inv_sigma2[n]
        for i in range(N):
            m = mu[n, i]
            total = eps
            for a in range(size):
                d = pixels[a] - m
                e = -(d * d) * c
                k = vmath.exp(e) if e > -EXP_CUTOFF else zero
                F[n, i, a] = k
                total += k
            for a in range(size):
                F[n, i, a] /= total


def filterbank_forward(gx, gy, sigma2, delta, A, B, N, eps=EPS):
    """Twin of minicap.nn.filterbank.filterbank_forward: returns (Fx (Bt, N, A), Fy (Bt, N, B)), cache."""
    dtype = gx.dtype
    offsets = np.arange(1, N + 1, dtype=dtype) - N / 2 - 0.5
    mu_x = gx[:, None] + offsets * delta[:, None]
    mu_y = gy[:, None] + offsets * delta[:, None]
    half_inv_sigma2 = (0.5 / sigma2).astype(dtype)
    Fx = np.empty((gx.shape[0], N, A), dtype=dtype)
    Fy = np.empty((gx.shape[0], N, B), dtype=dtype)
    eps, zero = dtype.type(eps), dtype.type(0)
    _bank(mu_x, half_inv_sigma2, np.arange(1, A + 1, dtype=dtype), Fx, eps, zero)
    _bank(mu_y, half_inv_sigma2, np.arange(1, B + 1, dtype=dtype), Fy, eps, zero)
    return (Fx, Fy), (sigma2, mu_x, mu_y, Fx, Fy)


@njit(**JIT)
def _bank_backward(dF, F, mu, sigma2, offsets, dg, dsigma2, ddelta):
    """Add one axis's share to dg (sum of dmu), dsigma2 and ddelta (sum of offset * dmu), in place."""
    Bt, N, size = F.shape
    for n in range(Bt):
        s2 = sigma2[n]
        for i in range(N):
            proj = 0.0
            for a in range(size):
                proj += dF[n, i, a] * F[n, i, a]
            dmu = 0.0
            ds2 = 0.0
            for a in range(size):
                dKK = (dF[n, i, a] - proj) * F[n, i, a]      # dK * K
                d = (a + 1) - mu[n, i]
                dmu += dKK * d
                ds2 += dKK * d * d
            dmu /= s2
            dg[n] += dmu
            ddelta[n] += offsets[i] * dmu
            dsigma2[n] += ds2 / (2.0 * s2 * s2)


def filterbank_backward(dFx, dFy, cache):
    """Twin of minicap.nn.filterbank.filterbank_backward: returns dgx, dgy, dsigma2, ddelta, each (Bt,)."""
    sigma2, mu_x, mu_y, Fx, Fy = cache
    Bt, N = mu_x.shape
    offsets = np.arange(1, N + 1, dtype=np.float64) - N / 2 - 0.5
    dgx, dgy = np.zeros(Bt, Fx.dtype), np.zeros(Bt, Fx.dtype)
    dsigma2, ddelta = np.zeros(Bt, Fx.dtype), np.zeros(Bt, Fx.dtype)
    _bank_backward(np.ascontiguousarray(dFx, dtype=Fx.dtype), Fx, mu_x, sigma2, offsets, dgx, dsigma2, ddelta)
    _bank_backward(np.ascontiguousarray(dFy, dtype=Fy.dtype), Fy, mu_y, sigma2, offsets, dgy, dsigma2, ddelta)
    return dgx, dgy, dsigma2, ddelta


# --- read ------------------------------------------------------------------------------------------
# Above this many multiply-adds per image and product (N x B x A), the twins hand read and write to
# the NumPy reference: its batched matmul runs each image's products in BLAS, which beats these loops
# once the window is more than a few rows. Measured with one thread on the AVX-512 machine (NumPy
# 2.4.6, OpenBLAS; ms per call, batch 64, float32, numba / numpy): 28x28 with N = 2 (DRAW's read)
# read 0.017 / 0.015 forward, 0.037 / 0.040 backward, write 0.035 / 0.023, 0.040 / 0.054: about
# level; N = 5 (DRAW's write) write 0.063 / 0.025 and 0.099 / 0.075; 60x60 with N = 8
# (alignDRAW) read 0.205 / 0.057 and 0.395 / 0.130, write 0.319 / 0.109 and 0.532 / 0.184
# (docs/performance.md). The loops stay for the small windows, where NumPy's per-image dispatch
# costs as much as the arithmetic.
LOOP_MAX = 2400


def _loops_pay(N, B, A):
    return N * B * A <= LOOP_MAX


@njit(**JIT)
def _read(x, Fx, Fy, gamma, T, G, out, zero):
    """T = Fy x (N, A); G = T Fx^T (N, N); out = gamma G; per batch row, in place."""
    Bt, B, A = x.shape
    N = Fx.shape[1]
    for n in range(Bt):
        for i in range(N):
            for a in range(A):
                T[n, i, a] = zero
            for y in range(B):                   # T[i] += Fy[i, y] x[y]: whole rows
                c = Fy[n, i, y]
                for a in range(A):
                    T[n, i, a] += c * x[n, y, a]
        for i in range(N):
            for j in range(N):                   # G[i, j] = T[i] . Fx[j]
                s = zero
                for a in range(A):
                    s += T[n, i, a] * Fx[n, j, a]
                G[n, i, j] = s
                out[n, i, j] = gamma[n] * s


def read_forward(x, Fx, Fy, gamma):
    """Twin of minicap.nn.filterbank.read_forward: returns gamma Fy x Fx^T (Bt, N, N), cache."""
    Bt, B, A = x.shape
    N = Fx.shape[1]
    if not _loops_pay(N, B, A):
        return reference.read_forward(x, Fx, Fy, gamma)
    x = np.ascontiguousarray(x)
    T = np.empty((Bt, N, A), dtype=x.dtype)
    G = np.empty((Bt, N, N), dtype=x.dtype)
    out = np.empty((Bt, N, N), dtype=x.dtype)
    _read(x, Fx, Fy, gamma, T, G, out, x.dtype.type(0))
    return out, (x, Fx, Fy, gamma, T, G)


@njit(**JIT)
def _read_backward(dout, x, Fx, Fy, gamma, T, G, dx, dFx, dFy, dgamma, dT, zero, need_dx):
    Bt, B, A = x.shape
    N = Fx.shape[1]
    for n in range(Bt):
        g = gamma[n]
        s = zero
        for i in range(N):
            for j in range(N):
                s += dout[n, i, j] * G[n, i, j]
        dgamma[n] = s
        for i in range(N):                       # dT = dG Fx, dG = gamma dout
            for a in range(A):
                dT[i, a] = zero
            for j in range(N):
                c = g * dout[n, i, j]
                for a in range(A):
                    dT[i, a] += c * Fx[n, j, a]
        for j in range(N):                       # dFx = dG^T T
            for a in range(A):
                dFx[n, j, a] = zero
            for i in range(N):
                c = g * dout[n, i, j]
                for a in range(A):
                    dFx[n, j, a] += c * T[n, i, a]
        for i in range(N):                       # dFy[i, y] = dT[i] . x[y]
            for y in range(B):
                s = zero
                for a in range(A):
                    s += dT[i, a] * x[n, y, a]
                dFy[n, i, y] = s
        if not need_dx:
            continue
        for y in range(B):                       # dx[y] = sum_i Fy[i, y] dT[i]
            for a in range(A):
                dx[n, y, a] = zero
            for i in range(N):
                c = Fy[n, i, y]
                for a in range(A):
                    dx[n, y, a] += c * dT[i, a]


def read_backward(dout, cache, need_dx=True):
    """Twin of minicap.nn.filterbank.read_backward: returns dx (None with need_dx=False), dFx, dFy, dgamma."""
    x, Fx, Fy, gamma, T, G = cache
    Bt, B, A = x.shape
    N = Fx.shape[1]
    if not _loops_pay(N, B, A):
        return reference.read_backward(dout, cache, need_dx=need_dx)
    dx = np.empty_like(x) if need_dx else np.empty((1, 1, 1), x.dtype)
    dFx = np.empty_like(Fx)
    dFy, dgamma = np.empty_like(Fy), np.empty_like(gamma)
    dT = np.empty((N, A), dtype=x.dtype)
    _read_backward(np.ascontiguousarray(dout, dtype=x.dtype), x, Fx, Fy, gamma, T, G, dx, dFx, dFy, dgamma, dT,
                   x.dtype.type(0), need_dx)
    return (dx if need_dx else None), dFx, dFy, dgamma


# --- write -----------------------------------------------------------------------------------------
@njit(**JIT)
def _write(w, Fx, Fy, gamma, Q, out, zero):
    """Q = w Fx (N, A); out = Fy^T Q / gamma (B, A); per batch row, in place, by whole rows."""
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    for n in range(Bt):
        for i in range(N):
            for a in range(A):
                Q[n, i, a] = zero
            for j in range(N):
                c = w[n, i, j]
                for a in range(A):
                    Q[n, i, a] += c * Fx[n, j, a]
        for y in range(B):
            for a in range(A):
                out[n, y, a] = zero
            for i in range(N):
                c = Fy[n, i, y] / gamma[n]
                for a in range(A):
                    out[n, y, a] += c * Q[n, i, a]


def write_forward(w, Fx, Fy, gamma):
    """Twin of minicap.nn.filterbank.write_forward: returns Fy^T w Fx / gamma (Bt, B, A), cache."""
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    if not _loops_pay(N, B, A):
        return reference.write_forward(w, Fx, Fy, gamma)
    w = np.ascontiguousarray(w)
    Q = np.empty((Bt, N, A), dtype=Fx.dtype)
    out = np.empty((Bt, B, A), dtype=Fx.dtype)
    _write(w, Fx, Fy, gamma, Q, out, Fx.dtype.type(0))
    return out, (w, Fx, Fy, gamma, Q)


@njit(**JIT)
def _write_backward(dout, w, Fx, Fy, gamma, Q, dw, dFx, dFy, dgamma, dQ, zero):
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    for n in range(Bt):
        for i in range(N):                       # dQ = Fy dP, dP = dout / gamma
            for a in range(A):
                dQ[i, a] = zero
            for y in range(B):
                c = Fy[n, i, y] / gamma[n]
                for a in range(A):
                    dQ[i, a] += c * dout[n, y, a]
        for i in range(N):                       # dFy[i, y] = Q[i] . dP[y]
            for y in range(B):
                s = zero
                for a in range(A):
                    s += Q[n, i, a] * dout[n, y, a]
                dFy[n, i, y] = s / gamma[n]
        sw = zero
        for i in range(N):                       # dw[i, j] = dQ[i] . Fx[j]
            for j in range(N):
                s = zero
                for a in range(A):
                    s += dQ[i, a] * Fx[n, j, a]
                dw[n, i, j] = s
                sw += w[n, i, j] * s
        dgamma[n] = -sw / gamma[n]
        for j in range(N):                       # dFx = w^T dQ
            for a in range(A):
                dFx[n, j, a] = zero
            for i in range(N):
                c = w[n, i, j]
                for a in range(A):
                    dFx[n, j, a] += c * dQ[i, a]


def write_backward(dout, cache):
    """Twin of minicap.nn.filterbank.write_backward: returns dw, dFx, dFy, dgamma."""
    w, Fx, Fy, gamma, Q = cache
    Bt, N, A = Fx.shape
    if not _loops_pay(N, Fy.shape[2], A):
        return reference.write_backward(dout, cache)
    dw, dFx = np.empty_like(w), np.empty_like(Fx)
    dFy, dgamma = np.empty_like(Fy), np.empty_like(gamma)
    dQ = np.empty((N, A), dtype=Fx.dtype)
    _write_backward(np.ascontiguousarray(dout, dtype=Fx.dtype), w, Fx, Fy, gamma, Q, dw, dFx, dFy, dgamma, dQ,
                    Fx.dtype.type(0))
    return dw, dFx, dFy, dgamma
