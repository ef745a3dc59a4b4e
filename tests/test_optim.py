"""Optimizers reach the minimum of a quadratic; clipping does what it says; state round-trips."""
import numpy as np
import pytest

from minicap import optim

TARGET = np.array([1.0, -2.0, 3.0])
SCALES = np.array([1.0, 4.0, 0.5])  # an anisotropic bowl: f(w) = 0.5 sum s (w - target)^2


def quadratic_grads(params):
    return {"w": SCALES * (params["w"] - TARGET)}


@pytest.mark.parametrize("name,hyper,steps", [
    ("sgd", dict(lr=0.2), 300), ("momentum", dict(lr=0.05, momentum=0.9), 400),
    ("adagrad", dict(lr=0.5), 2000), ("rmsprop", dict(lr=0.01), 3000), ("adam", dict(lr=0.05), 2000)])
def test_optimizer_minimises_a_quadratic(name, hyper, steps):
    params = {"w": np.zeros(3)}
    opt = optim.make_optimizer(name, **hyper)
    for _ in range(steps):
        opt.step(params, quadratic_grads(params))
    np.testing.assert_allclose(params["w"], TARGET, atol=2e-2)


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_optimizer_state_round_trip_continues_exactly(name):
    params_a = {"w": np.zeros(3)}
    opt_a = optim.make_optimizer(name, lr=0.01)
    for _ in range(5):
        opt_a.step(params_a, quadratic_grads(params_a))
    params_b = {"w": params_a["w"].copy()}
    opt_b = optim.make_optimizer(name, lr=0.5)  # lr is restored from the state too
    opt_b.load_state_dict({k: v.copy() for k, v in opt_a.state_dict().items()})
    for _ in range(5):
        opt_a.step(params_a, quadratic_grads(params_a))
        opt_b.step(params_b, quadratic_grads(params_b))
    np.testing.assert_array_equal(params_a["w"], params_b["w"])


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="choose from"):
        optim.make_optimizer("lbfgs")


def test_clip_by_global_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm = optim.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert optim.global_norm(grads) == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])  # direction kept
    small = {"a": np.array([0.1])}
    optim.clip_by_global_norm(small, 1.0)
    np.testing.assert_array_equal(small["a"], [0.1])


def test_clip_by_value_and_per_parameter_norm():
    grads = {"a": np.array([-7.0, 2.0, 9.0])}
    optim.clip_by_value(grads, 5.0)
    np.testing.assert_array_equal(grads["a"], [-5.0, 2.0, 5.0])
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([0.3, 0.4])}
    optim.clip_by_norm_per_parameter(grads, 1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.8])
    np.testing.assert_allclose(grads["b"], [0.3, 0.4])
