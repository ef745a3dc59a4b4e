"""exp, sigmoid and tanh that LLVM can vectorise, for use inside Numba kernels.

Why not math.exp / math.tanh? Inside a Numba loop they are calls into the C library, one number at
a time: without Intel's SVML (not a dependency here) a loop over tanh runs ~20x slower than NumPy's
SIMD np.tanh. Written with only +, *, /, floor and a bit trick, the same loop compiles to vector
instructions, and the kernels can fuse the gate math into one pass over memory.

The method (Cody and Waite), for exp(x):

    n = round(x / ln 2),   r = x - n ln 2          so |r| <= ln(2) / 2 and exp(x) = 2**n exp(r)
    exp(r) - 1 = r + r^2/2! + ... + r^K/K!         a short Taylor series (K = 13 in float64, 7 in float32)
    2**n                                            built from its bits: the exponent field holds n + bias

ln 2 is split into a high part with trailing zero bits (n * LN2_HI is exact) and a small low part,
so r keeps full precision. 2**n is formed as 2**(n//2) * 2**(n - n//2) so that results that under-
or overflow become denormals, 0 or inf exactly as IEEE exp does. Accuracy: within 4 units in the
last place of NumPy's exp/tanh in float64 and 8 in float32 (tests/test_kernels.py checks it).

    sigmoid(x) = 1 / (1 + exp(-x))                 exp(-x) = inf for very negative x gives 0, not NaN
    tanh(x)    = m / (m + 2),  m = expm1(2x)       (float64) expm1 keeps tanh accurate near 0; |x| is
                                                   clipped at 20, where tanh is +-1
    tanh(x)    = p(x) / q(x)                       (float32) a rational approximation, cheaper still

NaN in gives NaN out; infinities give the IEEE limits. Kernels that call these must be compiled with
error_model="numpy" (IEEE division: no zero-division check that would block vectorisation).

Each function has one float32 and one float64 version; `@overload` picks the one matching the
argument's type when Numba compiles a kernel, so a kernel written once runs in either precision. Called
from plain Python (NUMBA_DISABLE_JIT=1, as the parity tests do once) the same code runs on NumPy scalars.
"""
import numpy as np
from numba import types
from numba.extending import overload, register_jitable

# --- float64 --------------------------------------------------------------------------------------
LOG2E_64 = 1.4426950408889634
LN2_HI_64 = 0.693147180369123816490   # ln 2 rounded to 32 significant bits: n * LN2_HI_64 is exact
LN2_LO_64 = 1.90821492927058770002e-10  # ln 2 - LN2_HI_64


@register_jitable
def _expm1_reduced_64(x):
    """Split exp(x) = 2**n (1 + p): returns p = expm1(r) and the integer n (x clipped to [-746, 710])."""
    x = min(max(x, -746.0), 710.0)
    n = np.floor(x * LOG2E_64 + 0.5)
    r = (x - n * LN2_HI_64) - n * LN2_LO_64
    p = r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (
        1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))
    return p, np.int64(n)


@register_jitable
def _pow2_64(k):
    """2.0**k for an integer k in [-1022, 1023]: the bits (k + 1023) << 52 read as a float64."""
    return np.int64((k + 1023) << 52).view(np.float64)


@register_jitable
def _exp64(x):
    p, n = _expm1_reduced_64(x)
    half = n >> 1
    y = ((1.0 + p) * _pow2_64(half)) * _pow2_64(n - half)
    return y if x == x else x  # NaN stays NaN


@register_jitable
def _sigmoid64(x):
    return 1.0 / (1.0 + _exp64(-x))


@register_jitable
def _tanh64(x):
    p, n = _expm1_reduced_64(2.0 * min(max(x, -20.0), 20.0))
    scale = _pow2_64(n)
    m = (scale - 1.0) + scale * p  # expm1(2x), exact to the last bits when n == 0
    t = m / (m + 2.0)
    return t if x == x else x


# --- float32 --------------------------------------------------------------------------------------
_f32 = np.float32
LOG2E_32 = _f32(1.44269504)
LN2_HI_32 = _f32(0.693359375)        # 0.693359375 = 355/512: n * LN2_HI_32 is exact
LN2_LO_32 = _f32(-2.12194440e-4)     # ln 2 - LN2_HI_32
_C2, _C3, _C4, _C5, _C6, _C7 = (_f32(1 / 2), _f32(1 / 6), _f32(1 / 24), _f32(1 / 120), _f32(1 / 720), _f32(1 / 5040))
_ONE, _TWO, _HALF = _f32(1), _f32(2), _f32(0.5)
_LO_32, _HI_32 = _f32(-104), _f32(89)


@register_jitable
def _expm1_reduced_32(x):
    x = min(max(x, _LO_32), _HI_32)
    n = np.floor(x * LOG2E_32 + _HALF)
    r = (x - n * LN2_HI_32) - n * LN2_LO_32
    p = r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * _C7))))))
    return p, np.int32(n)


@register_jitable
def _pow2_32(k):
    """2.0**k for an integer k in [-126, 127]: the bits (k + 127) << 23 read as a float32."""
    return np.int32((k + 127) << 23).view(np.float32)


@register_jitable
def _exp32(x):
    p, n = _expm1_reduced_32(x)
    half = n >> 1
    y = ((_ONE + p) * _pow2_32(half)) * _pow2_32(n - half)
    return y if x == x else x


@register_jitable
def _sigmoid32(x):
    return _ONE / (_ONE + _exp32(-x))


# tanh in float32: a rational function p(x) / q(x) (odd degree 13 over even degree 6; the coefficients
# of Eigen's float tanh), about half the work of the exp route and within a few float32 ulp on the clip
# range; beyond |x| = 7.9 float32 tanh is +-1 to within an ulp. Tiny |x| returns x (tanh x = x - x^3/3).
_T1, _T3, _T5, _T7 = _f32(4.89352455891786e-03), _f32(6.37261928875436e-04), _f32(1.48572235717979e-05), \
    _f32(5.12229709037114e-08)
_T9, _T11, _T13 = _f32(-8.60467152213735e-11), _f32(2.00018790482477e-13), _f32(-2.76076847742355e-16)
_U0, _U2, _U4, _U6 = _f32(4.89352518554385e-03), _f32(2.26843463243900e-03), _f32(1.18534705686654e-04), \
    _f32(1.19825839466702e-06)
_TANH_CLIP_32, _TANH_TINY_32 = _f32(7.90531110763549805), _f32(0.0004)


@register_jitable
def _tanh32(x):
    v = min(max(x, -_TANH_CLIP_32), _TANH_CLIP_32)
    v2 = v * v
    p = ((((((_T13 * v2 + _T11) * v2 + _T9) * v2 + _T7) * v2 + _T5) * v2 + _T3) * v2 + _T1) * v
    q = ((_U6 * v2 + _U4) * v2 + _U2) * v2 + _U0
    t = p / q if abs(x) >= _TANH_TINY_32 else x
    return t if x == x else x


# --- the generic names the kernels call -----------------------------------------------------------
def exp(x):
    """exp(x) for a float32 or float64 scalar, in its own precision."""
    return _exp32(x) if isinstance(x, np.float32) else _exp64(x)


def sigmoid(x):
    """1 / (1 + exp(-x)) for a float32 or float64 scalar."""
    return _sigmoid32(x) if isinstance(x, np.float32) else _sigmoid64(x)


def tanh(x):
    """tanh(x) for a float32 or float64 scalar."""
    return _tanh32(x) if isinstance(x, np.float32) else _tanh64(x)


def _by_precision(impl32, impl64):
    def choose(x):
        return impl32 if x == types.float32 else impl64
    return choose


overload(exp)(_by_precision(_exp32, _exp64))
overload(sigmoid)(_by_precision(_sigmoid32, _sigmoid64))
overload(tanh)(_by_precision(_tanh32, _tanh64))
