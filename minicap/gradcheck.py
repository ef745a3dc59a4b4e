"""Finite-difference gradient checks: the evidence that every backward pass is right.

For a function f with an analytic gradient g, the centred difference

    df/dx_k ~= (f(x + h e_k) - f(x - h e_k)) / (2 h)

has error O(h^2). We compare it with g, one input array at a time, by the relative error

    rel(a, b) = |a - b| / max(|a| + |b|, tiny)

where |.| is the Euclidean norm over the array's checked coordinates. (Judging each coordinate on its
own fails correct code: a coordinate whose gradient is 1e-6 carries the same ~1e-10 round-off as every
other, so its own relative error is ~1e-4. A wrong formula, even in one coordinate, moves the norm by
about its own size.) In float64 with h = 1e-6 a correct backward pass gives rel ~ 1e-9; a wrong one
gives something near 1. In float32 finite differences are too noisy: check in float64.

A layer with a vector output is turned into a scalar by a random projection: L = sum(out * dout), so
dL/dout = dout is what we feed its backward pass.
"""
import numpy as np

TINY = 1e-12


def rel_error(a, b):
    """Relative error ||a-b|| / max(||a|| + ||b||, tiny) between two arrays (Euclidean norms)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    norm = np.linalg.norm
    return float(norm(a - b) / max(norm(a) + norm(b), TINY))


def numerical_gradient(f, x, h=1e-6, indices=None):
    """Centred-difference gradient of the scalar function f() with respect to array x (changed in place).

    f: callable taking no arguments that reads x and returns a float.
    x: float64 array, perturbed in place and restored.
    indices: optional iterable of multi-indices to evaluate (others are left 0); default all.
    Returns an array of x's shape.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.ndindex(x.shape) if indices is None else indices
    for idx in it:
        old = x[idx]
        x[idx] = old + h
        f_plus = f()
        x[idx] = old - h
        f_minus = f()
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _sample_indices(shape, max_coords, rng):
    """All multi-indices of `shape` if there are at most max_coords, else a seeded random sample."""
    size = int(np.prod(shape))
    if max_coords is None or size <= max_coords:
        return list(np.ndindex(shape)) if shape else [()]
    flat = rng.choice(size, size=max_coords, replace=False)
    return [np.unravel_index(k, shape) for k in flat]


def check_layer(forward, backward, args, wrt, kwargs=None, seed=0, h=1e-6, max_coords=None):
    """Check a layer's backward pass against finite differences of its forward pass.

    forward(*args, **kwargs) -> (out, cache), where out is an array or a tuple of arrays (or a float,
    for a loss). backward(*douts, cache) -> the gradients of the inputs named in `wrt`, in that order.

    args: list of forward arguments (float64 arrays for the ones checked).
    wrt: list of (name, position in args) for every differentiable input.
    Returns {name: relative error of that input's gradient}.
    """
    kwargs = kwargs or {}
    rng = np.random.default_rng(seed)
    args = list(args)
    out, cache = forward(*args, **kwargs)
    outs = _as_tuple(out)
    douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
    analytic = _as_tuple(backward(*douts, cache))
    if len(analytic) != len(wrt):
        raise ValueError(f"backward returned {len(analytic)} gradients, expected {len(wrt)} ({[n for n, _ in wrt]})")

    def projected_loss():
        o = _as_tuple(forward(*args, **kwargs)[0])
        return float(sum(np.sum(oi * di) for oi, di in zip(o, douts)))

    errors = {}
    for (name, pos), grad in zip(wrt, analytic):
        x = args[pos]
        if np.shape(grad) != np.shape(x):
            raise ValueError(f"gradient of {name} has shape {np.shape(grad)}, input has {np.shape(x)}")
        idx = _sample_indices(x.shape, max_coords, rng)
        num = numerical_gradient(projected_loss, x, h=h, indices=idx)
        errors[name] = rel_error(np.array([grad[i] for i in idx]), np.array([num[i] for i in idx]))
    return errors


def check_model(loss_fn, params, batch, seed=0, h=1e-6, max_coords=20, names=None):
    """Check a whole model's gradients: loss_fn(params, batch, rng) -> (loss, grads).

    The rng is re-created from `seed` before every call, so a stochastic model (dropout, sampled
    attention, latent noise) sees the same random numbers each time and is a deterministic function of
    its parameters. Up to `max_coords` coordinates of each parameter are checked (a seeded sample for
    large arrays). Returns {param name: relative error}.
    """
    _, grads = loss_fn(params, batch, np.random.default_rng(seed))
    pick = np.random.default_rng(seed + 1)
    errors = {}
    for name in names or sorted(params):
        if name not in grads:
            raise KeyError(f"loss_fn returned no gradient for parameter {name!r}")
        x = params[name]

        def loss_only():
            return float(loss_fn(params, batch, np.random.default_rng(seed))[0])

        idx = _sample_indices(x.shape, max_coords, pick)
        num = numerical_gradient(loss_only, x, h=h, indices=idx)
        errors[name] = rel_error(np.array([grads[name][i] for i in idx]), np.array([num[i] for i in idx]))
    return errors
