"""VQA models (minicap.models.vqa): whole-model float64 gradient checks of every model, the new layers
against finite differences, the stacked attention layer against the captioner's soft attention, and
the Numba twin giving the same forward and gradients."""
import numpy as np
import pytest

from minicap import backend
from minicap.gradcheck import check_model
from minicap.gradcheck_cases import check_case
from minicap.models import vqa
from minicap.nn.attention import soft_attention_forward
from minicap.nn.question_attention import stacked_attention_forward

N, T, L, D, V, C = 4, 5, 6, 3, 9, 7
TOKENS = np.array([[3, 4, 5, 0, 0],     # padded questions of different lengths
                   [1, 2, 0, 0, 0],
                   [8, 7, 6, 5, 4],
                   [2, 2, 3, 0, 0]])


def tiny(model, seed=0, **overrides):
    """A float64 model with random non-zero biases (a zero bias can hide a wrong bias gradient)."""
    rng = np.random.default_rng(seed)
    config = vqa.VQAConfig(**dict(dict(model=model, hops=2, vocab_size=V, n_answers=C, locations=L, feature_size=D,
                                       embed=3, hidden=4, attention_size=3, mlp=5, feature_scale=0.7), **overrides))
    params = vqa.init_params(config, rng, np.float64)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
    return config, params


def tiny_batch(seed=1):
    rng = np.random.default_rng(seed)
    return {"features": rng.standard_normal((N, L, D)), "tokens": TOKENS.copy(), "answers": np.array([0, 3, 6, 3])}


@pytest.fixture(autouse=True)
def numpy_backend():
    with backend.using("numpy"):
        yield


CASES = [("question", {}), ("image", {}), ("naive", {}), ("naive", {"combine": "concat"}),
         ("memnet", {"hops": 1}), ("memnet", {"hops": 3}), ("san", {"hops": 1}), ("san", {"hops": 2})]


@pytest.mark.parametrize("model,overrides", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_whole_model_gradients(model, overrides):
    config, params = tiny(model, **overrides)
    errors = check_model(lambda p, b, r: vqa.loss(p, b, r, config), params, tiny_batch(), max_coords=30)
    assert max(errors.values()) < 1e-6, errors
    assert set(errors) == set(params)


@pytest.mark.parametrize("name", ["dot_attention", "stacked_attention"])
def test_new_layers_in_the_gradcheck_suite(name):
    errors = check_case(name)
    assert max(errors.values()) < 1e-6, errors


def test_stacked_attention_is_soft_attention_plus_the_residual():
    rng = np.random.default_rng(3)
    v, u = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 4))
    W_I, b_A, W_Q, w_P = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((4, 3)), \
        rng.standard_normal(3)
    (u_new, p), _ = stacked_attention_forward(v, u, W_I, b_A, W_Q, w_P)
    (z, alpha), _ = soft_attention_forward(v, v @ W_I + b_A, u, W_Q, w_P)
    np.testing.assert_allclose(p, alpha)
    np.testing.assert_allclose(u_new, z + u)
    # by hand: h = tanh(W_I v_i + W_Q u + b_A), p = softmax(w_P . h)
    h = np.tanh(v @ W_I + (u @ W_Q)[:, None, :] + b_A)
    e = h @ w_P
    np.testing.assert_allclose(p, np.exp(e) / np.exp(e).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_san_with_the_numba_twin_agrees(dtype):
    config, params = tiny("san")
    params = {k: v.astype(dtype) for k, v in params.items()}
    batch = tiny_batch()
    batch["features"] = batch["features"].astype(dtype)
    with backend.using("numpy"):
        ref_loss, ref_grads = vqa.loss(params, batch, None, config)
    with backend.using("numba"):
        loss, grads = vqa.loss(params, batch, None, config)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert abs(loss - ref_loss) < tol * max(1, abs(ref_loss))
    for k in ref_grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol)


def test_predict_gives_probabilities_and_one_attention_per_hop():
    config, params = tiny("memnet", hops=3)
    batch = tiny_batch()
    probs, hops = vqa.predict(params, batch["features"], batch["tokens"], config, batch_size=3)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    assert len(hops) == 3 and all(h.shape == (N, L) for h in hops)
    np.testing.assert_allclose(hops[-1].sum(axis=1), 1)
    config, params = tiny("naive")
    assert vqa.predict(params, batch["features"], batch["tokens"], config)[1] == []


def test_question_only_ignores_the_image_and_image_only_the_question():
    batch = tiny_batch()
    config, params = tiny("question")
    a = vqa.forward(params, batch["features"], batch["tokens"], config)[0]
    b = vqa.forward(params, batch["features"] * 3 + 1, batch["tokens"], config)[0]
    np.testing.assert_allclose(a, b)
    config, params = tiny("image")
    a = vqa.forward(params, batch["features"], batch["tokens"], config)[0]
    b = vqa.forward(params, batch["features"], batch["tokens"][::-1], config)[0]
    np.testing.assert_allclose(a, b)


def test_padding_does_not_change_the_question_vector():
    config, params = tiny("san")
    batch = tiny_batch()
    longer = np.concatenate([batch["tokens"], np.zeros((N, 3), np.int64)], axis=1)
    a = vqa.forward(params, batch["features"], batch["tokens"], config)[0]
    b = vqa.forward(params, batch["features"], longer, config)[0]
    np.testing.assert_allclose(a, b)
