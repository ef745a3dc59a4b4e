"""Numba twins of DRAW's Gaussian filterbank, read and write (minicap/nn/filterbank.py).

Same signatures, same caches, same results (to rounding) as the NumPy reference, which is where the
equations are explained. NumPy does each batched product as a stack of tiny matrix products (N is 2
to 12), paying a dispatch per call and temporaries per step; here one compiled loop nest per function
does the whole batch. Accumulators are float64 whatever the input dtype (float32 in, float32 out).

The loops run serially: the work per call is small (tens of microseconds), so threads would cost
more than they save, and every output element belongs to one batch row (nothing is shared).
"""
import math

import numpy as np
from numba import njit

EPS = 1e-8


# --- filterbank ------------------------------------------------------------------------------------
@njit(cache=True)
def _bank(mu, sigma2, F, eps):
    """F[n, i, a] = exp(-(a + 1 - mu[n, i])^2 / (2 sigma2[n])) / (sum_a ... + eps), in place."""
    Bt, N, size = F.shape
    for n in range(Bt):
        inv = 1.0 / (2.0 * sigma2[n])
        for i in range(N):
            total = 0.0
            for a in range(size):
                d = (a + 1) - mu[n, i]
                k = math.exp(-d * d * inv)
                F[n, i, a] = k
                total += k
            scale = 1.0 / (total + eps)
            for a in range(size):
                F[n, i, a] *= scale


def filterbank_forward(gx, gy, sigma2, delta, A, B, N, eps=EPS):
    """Twin of minicap.nn.filterbank.filterbank_forward: returns (Fx (Bt, N, A), Fy (Bt, N, B)), cache."""
    offsets = np.arange(1, N + 1, dtype=gx.dtype) - N / 2 - 0.5
    mu_x = gx[:, None] + offsets * delta[:, None]
    mu_y = gy[:, None] + offsets * delta[:, None]
    Fx = np.empty((gx.shape[0], N, A), dtype=gx.dtype)
    Fy = np.empty((gx.shape[0], N, B), dtype=gx.dtype)
    _bank(mu_x, sigma2, Fx, eps)
    _bank(mu_y, sigma2, Fy, eps)
    return (Fx, Fy), (sigma2, mu_x, mu_y, Fx, Fy)


@njit(cache=True)
def _bank_backward(dF, F, mu, sigma2, offsets, dg, dsigma2, ddelta):
    """Accumulate dg (sum of dmu), dsigma2 and ddelta (sum of offset * dmu) for one axis, in place."""
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
@njit(cache=True)
def _read(x, Fx, Fy, gamma, M, G, out):
    """M = x Fx^T (B, N); G = Fy M (N, N); out = gamma G; per batch row, in place."""
    Bt, B, A = x.shape
    N = Fx.shape[1]
    for n in range(Bt):
        for y in range(B):
            for j in range(N):
                s = 0.0
                for a in range(A):
                    s += x[n, y, a] * Fx[n, j, a]
                M[n, y, j] = s
        for i in range(N):
            for j in range(N):
                s = 0.0
                for y in range(B):
                    s += Fy[n, i, y] * M[n, y, j]
                G[n, i, j] = s
                out[n, i, j] = gamma[n] * s


def read_forward(x, Fx, Fy, gamma):
    """Twin of minicap.nn.filterbank.read_forward: returns gamma Fy x Fx^T (Bt, N, N), cache."""
    Bt, B, A = x.shape
    N = Fx.shape[1]
    x = np.ascontiguousarray(x)
    M = np.empty((Bt, B, N), dtype=x.dtype)
    G = np.empty((Bt, N, N), dtype=x.dtype)
    out = np.empty((Bt, N, N), dtype=x.dtype)
    _read(x, Fx, Fy, gamma, M, G, out)
    return out, (x, Fx, Fy, gamma, M, G)


@njit(cache=True)
def _read_backward(dout, x, Fx, Fy, gamma, M, G, dx, dFx, dFy, dgamma, dM):
    Bt, B, A = x.shape
    N = Fx.shape[1]
    for n in range(Bt):
        g = gamma[n]
        s = 0.0
        for i in range(N):
            for j in range(N):
                s += dout[n, i, j] * G[n, i, j]
        dgamma[n] = s
        for i in range(N):                       # dFy = dG M^T, dG = gamma dout
            for y in range(B):
                s = 0.0
                for j in range(N):
                    s += dout[n, i, j] * M[n, y, j]
                dFy[n, i, y] = g * s
        for y in range(B):                       # dM = Fy^T dG
            for j in range(N):
                s = 0.0
                for i in range(N):
                    s += Fy[n, i, y] * dout[n, i, j]
                dM[y, j] = g * s
        for y in range(B):                       # dx = dM Fx
            for a in range(A):
                s = 0.0
                for j in range(N):
                    s += dM[y, j] * Fx[n, j, a]
                dx[n, y, a] = s
        for j in range(N):                       # dFx = dM^T x
            for a in range(A):
                dFx[n, j, a] = 0.0
            for y in range(B):
                m = dM[y, j]
                for a in range(A):
                    dFx[n, j, a] += m * x[n, y, a]


def read_backward(dout, cache):
    """Twin of minicap.nn.filterbank.read_backward: returns dx, dFx, dFy, dgamma."""
    x, Fx, Fy, gamma, M, G = cache
    Bt, B, A = x.shape
    N = Fx.shape[1]
    dx, dFx = np.empty_like(x), np.empty_like(Fx)
    dFy, dgamma = np.empty_like(Fy), np.empty_like(gamma)
    dM = np.empty((B, N), dtype=np.float64)
    _read_backward(np.ascontiguousarray(dout, dtype=x.dtype), x, Fx, Fy, gamma, M, G, dx, dFx, dFy, dgamma, dM)
    return dx, dFx, dFy, dgamma


# --- write -----------------------------------------------------------------------------------------
@njit(cache=True)
def _write(w, Fx, Fy, gamma, Q, out):
    """Q = w Fx (N, A); out = Fy^T Q / gamma (B, A); per batch row, in place."""
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    for n in range(Bt):
        for i in range(N):
            for a in range(A):
                s = 0.0
                for j in range(N):
                    s += w[n, i, j] * Fx[n, j, a]
                Q[n, i, a] = s
        inv = 1.0 / gamma[n]
        for y in range(B):
            for a in range(A):
                s = 0.0
                for i in range(N):
                    s += Fy[n, i, y] * Q[n, i, a]
                out[n, y, a] = s * inv


def write_forward(w, Fx, Fy, gamma):
    """Twin of minicap.nn.filterbank.write_forward: returns Fy^T w Fx / gamma (Bt, B, A), cache."""
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    w = np.ascontiguousarray(w)
    Q = np.empty((Bt, N, A), dtype=Fx.dtype)
    out = np.empty((Bt, B, A), dtype=Fx.dtype)
    _write(w, Fx, Fy, gamma, Q, out)
    return out, (w, Fx, Fy, gamma, Q)


@njit(cache=True)
def _write_backward(dout, w, Fx, Fy, gamma, Q, dw, dFx, dFy, dgamma, dQ):
    Bt, N, A = Fx.shape
    B = Fy.shape[2]
    for n in range(Bt):
        inv = 1.0 / gamma[n]
        for i in range(N):                       # dQ = Fy dP, dP = dout / gamma
            for a in range(A):
                dQ[i, a] = 0.0
            for y in range(B):
                f = Fy[n, i, y] * inv
                for a in range(A):
                    dQ[i, a] += f * dout[n, y, a]
        for i in range(N):                       # dFy = Q dP^T
            for y in range(B):
                s = 0.0
                for a in range(A):
                    s += Q[n, i, a] * dout[n, y, a]
                dFy[n, i, y] = s * inv
        sw = 0.0
        for i in range(N):                       # dw = dQ Fx^T
            for j in range(N):
                s = 0.0
                for a in range(A):
                    s += dQ[i, a] * Fx[n, j, a]
                dw[n, i, j] = s
                sw += w[n, i, j] * s
        dgamma[n] = -sw * inv
        for j in range(N):                       # dFx = w^T dQ
            for a in range(A):
                s = 0.0
                for i in range(N):
                    s += w[n, i, j] * dQ[i, a]
                dFx[n, j, a] = s


def write_backward(dout, cache):
    """Twin of minicap.nn.filterbank.write_backward: returns dw, dFx, dFy, dgamma."""
    w, Fx, Fy, gamma, Q = cache
    Bt, N, A = Fx.shape
    dw, dFx = np.empty_like(w), np.empty_like(Fx)
    dFy, dgamma = np.empty_like(Fy), np.empty_like(gamma)
    dQ = np.empty((N, A), dtype=np.float64)
    _write_backward(np.ascontiguousarray(dout, dtype=Fx.dtype), w, Fx, Fy, gamma, Q, dw, dFx, dFy, dgamma, dQ)
    return dw, dFx, dFy, dgamma
