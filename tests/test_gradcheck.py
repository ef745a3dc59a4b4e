"""The checker itself: it must pass right gradients and catch wrong ones."""
import numpy as np
import pytest

from minicap import nn
from minicap.gradcheck import check_layer, check_model, numerical_gradient, rel_error


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda: float(np.sum(x ** 3)), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 3.0])  # restored


def test_rel_error():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1.0]), np.array([-1.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rel_error(np.zeros(2), np.zeros(3))


def test_check_layer_catches_a_wrong_bias_gradient():
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)]

    def wrong_backward(dout, cache):
        dx, dW, db = nn.affine_backward(dout, cache)
        return dx, dW, db * 0.5

    errors = check_layer(nn.affine_forward, wrong_backward, args, [("x", 0), ("W", 1), ("b", 2)])
    assert errors["x"] < 1e-8 and errors["W"] < 1e-8
    assert errors["b"] > 0.1


def test_check_model_on_a_tiny_model_with_dropout():
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    batch = rng.standard_normal((5, 3))

    def loss_fn(p, x, r):
        out, c1 = nn.affine_forward(x, p["W"], p["b"])
        dropped, c2 = nn.dropout_forward(out, 0.5, r)
        loss = float(np.sum(dropped ** 2))
        dx = nn.dropout_backward(2 * dropped, c2)
        _, dW, db = nn.affine_backward(dx, c1)
        return loss, {"W": dW, "b": db}

    errors = check_model(loss_fn, params, batch)
    assert set(errors) == {"W", "b"} and max(errors.values()) < 1e-7
