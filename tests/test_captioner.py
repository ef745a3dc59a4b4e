"""Show, Attend and Tell models: whole-model gradient checks, REINFORCE against the exact gradient,
padding, and decoding that agrees with training."""
import functools

import numpy as np
import pytest

from minicap import backend
from minicap.decode import beam_search, greedy
from minicap.gradcheck import check_model, numerical_gradient, rel_error
from minicap.models import captioner as C
from minicap.models import hard_attention as HA

N, L, D, V = 3, 4, 4, 8   # L = 4: a 2x2 grid of locations
CAPTIONS = np.array([[1, 4, 5, 6, 2, 0],     # <START> w w w <END> <NULL>: padded
                     [1, 3, 3, 2, 0, 0],
                     [1, 6, 5, 4, 7, 2]])


def tiny_model(attention, seed=0, **overrides):
    """A float64 model with random non-zero biases (a zero bias can hide a wrong bias gradient)."""
    rng = np.random.default_rng(seed)
    config = C.CaptionerConfig(**dict(dict(attention=attention, embed=3, hidden=4, attention_size=3,
                                           dropout=0.3, feature_scale=0.5), **overrides))
    params = C.init_params(config, V, D, rng, np.float64, locations=L)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in params.items()}
    return config, params


def tiny_batch(seed=1):
    rng = np.random.default_rng(seed)
    return {"features": rng.standard_normal((N, L, D)), "captions": CAPTIONS.copy()}


@pytest.fixture(autouse=True)
def numpy_backend():
    with backend.using("numpy"):
        yield


@pytest.mark.parametrize("attention, overrides", [
    ("none", {}),
    ("none", {"image_every_step": False}),
    ("none", {"image_feature": "flat"}),
    ("none", {"image_feature": "flat", "image_every_step": False}),
    ("soft", {}),                                   # beta gate, penalty, dropout
    ("soft", {"gate": False, "deep_tanh": False}),
    ("soft", {"penalty": 3.0, "dropout": 0.0}),
])
def test_whole_model_gradients(attention, overrides):
    config, params = tiny_model(attention, **overrides)
    errors = check_model(functools.partial(C.loss, config=config), params, tiny_batch(), seed=3, max_coords=30)
    assert set(errors) == set(params)
    assert max(errors.values()) < 1e-6, errors


def test_gradients_with_the_numba_backend_match_numpy():
    config, params = tiny_model("soft")
    batch = tiny_batch()
    loss_np, grads_np = C.loss(params, batch, np.random.default_rng(5), config)
    with backend.using("numba"):
        loss_nb, grads_nb = C.loss(params, batch, np.random.default_rng(5), config)
    assert loss_nb == pytest.approx(loss_np, rel=1e-12)
    for name in params:
        assert rel_error(grads_nb[name], grads_np[name]) < 1e-10, name


def test_penalty_and_loss_ignore_padding():
    """A padded caption gives the same loss and gradients as the same caption alone, unpadded."""
    config, params = tiny_model("soft", dropout=0.0)
    batch = tiny_batch()
    one = {"features": batch["features"][1:2], "captions": batch["captions"][1:2]}
    short = {"features": one["features"], "captions": one["captions"][:, :4]}   # <START> w w <END>
    loss_pad, grads_pad = C.loss(params, one, None, config)
    loss_short, grads_short = C.loss(params, short, None, config)
    assert loss_pad == pytest.approx(loss_short, rel=1e-12)
    for name in params:
        np.testing.assert_allclose(grads_pad[name], grads_short[name], rtol=1e-10, atol=1e-14)


def test_penalty_is_lambda_times_the_doubly_stochastic_term():
    config, params = tiny_model("soft", dropout=0.0)
    batch = tiny_batch()
    plain = C.loss(params, batch, None, C.CaptionerConfig(**dict(config.to_dict(), penalty=0.0)))[0]
    logits, alphas, _, _ = C.forward(params, config, batch["features"], batch["captions"])
    mask = C.caption_mask(batch["captions"])[:, :, None]
    by_hand = np.sum((1 - np.sum(alphas * mask, axis=1)) ** 2) / N
    assert C.loss(params, batch, None, config)[0] == pytest.approx(plain + config.penalty * by_hand, rel=1e-12)


def test_annotations_are_scaled_features_plus_grid_coordinates():
    coords = C.location_coordinates(64)
    np.testing.assert_allclose(coords[[0, 7, 8, 63]], [[-1, -1], [-1, 1], [-1 + 2 / 7, -1], [1, 1]], rtol=1e-6)
    with pytest.raises(ValueError, match="square grid"):
        C.location_coordinates(5)
    config = C.CaptionerConfig(feature_scale=0.25)
    features = np.ones((2, 4, 3), np.float32)
    a = C.annotations(config, features)
    assert a.shape == (2, 4, 5) and a.dtype == np.float32
    np.testing.assert_array_equal(a[1, :, :3], 0.25)
    np.testing.assert_array_equal(a[1, :, 3:], [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    assert C.annotations(C.CaptionerConfig(coordinates=False), features).shape == (2, 4, 3)


# --- hard attention ----------------------------------------------------------------------------
def test_hard_model_gradients_for_fixed_locations():
    """With the locations s given, log p(y|s,a), the penalty and the entropy bonus are differentiable
    functions of the parameters: check them all (the REINFORCE term is checked statistically below)."""
    config, params = tiny_model("hard", reward_weight=0.0, entropy_weight=0.3)
    batch = dict(tiny_batch(), locations=np.random.default_rng(2).integers(0, L, (N, CAPTIONS.shape[1] - 1)))

    def loss_with_entropy(params, batch, rng):
        value, grads, info = HA.forward_backward(params, batch, rng, config, baseline=0.0)
        alphas, mask = info["alphas"], C.caption_mask(batch["captions"])[:, :, None]
        entropy = -np.sum(mask * alphas * np.log(alphas)) / N
        return value - config.entropy_weight * entropy, grads   # the surrogate's differentiable part

    errors = check_model(loss_with_entropy, params, batch, seed=3, max_coords=30)
    assert max(errors.values()) < 1e-6, errors


def test_hard_model_with_expected_context_is_the_soft_model():
    config, params = tiny_model("hard", sample_prob=0.0)
    soft = C.CaptionerConfig(**dict(config.to_dict(), attention="soft"))
    batch = tiny_batch()
    value, grads, info = HA.forward_backward(params, batch, np.random.default_rng(4), config)
    # the hard model draws its sample-or-expected coin first; replay the same rng for soft
    rng = np.random.default_rng(4)
    rng.random()
    soft_value, soft_grads = C.loss(params, batch, rng, soft)
    # exact on purpose: with sample_prob 0 the hard model runs the soft model's very code, same shapes
    assert not info["sampled"] and value == soft_value
    for name in params:
        np.testing.assert_array_equal(grads[name], soft_grads[name])


def reinforce_setup():
    rng = np.random.default_rng(0)
    config = C.CaptionerConfig(attention="hard", embed=3, hidden=4, attention_size=3, dropout=0.0, penalty=0.0,
                               reward_weight=1.0, entropy_weight=0.0, sample_prob=1.0, coordinates=False)
    params = C.init_params(config, 6, 3, rng, np.float64)   # L = 3 locations (no grid coordinates)
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in params.items()}
    features = 2 * rng.standard_normal((2, 3, 3))                # N = 2 images, L = 3 locations
    captions = np.array([[1, 4, 5, 2], [1, 3, 2, 0]])            # T = 3 steps: 3^3 = 27 location sequences
    exact = {k: -numerical_gradient(lambda: HA.expected_log_likelihood(params, config, features, captions), v)
             for k, v in params.items()}
    return config, params, features, captions, exact


def flat(grads, names):
    return np.concatenate([grads[k].ravel() for k in names])


def test_reinforce_estimate_matches_the_exact_gradient_of_the_expectation():
    """The average REINFORCE estimate over M samples per image approaches -dL_s/dW, where
    L_s = sum_s p(s|a) log p(y|s,a) is computed exactly by enumerating all 27 location sequences.
    The baseline b = -2 (any constant) must not bias it. Measured: relative error ~0.025 at M = 1,000,
    ~0.01 at 10,000, ~0.003 at 100,000 (it shrinks like 1/sqrt(M)); we use M = 20,000 and allow 0.03."""
    config, params, features, captions, exact = reinforce_setup()
    M = 20000
    batch = {"features": np.tile(features, (M, 1, 1)), "captions": np.tile(captions, (M, 1))}
    _, grads, info = HA.forward_backward(params, batch, np.random.default_rng(1), config, baseline=-2.0)
    assert info["sampled"]
    assert rel_error(flat(grads, params), flat(exact, params)) < 0.03
    attention = ["W_att", "b_att", "W_att_h", "w_att"]   # these learn ONLY through the REINFORCE term
    assert rel_error(flat(grads, attention), flat(exact, attention)) < 0.05

    # without the REINFORCE term the attention gets no gradient at all: the estimate is biased
    no_reinforce = C.CaptionerConfig(**dict(config.to_dict(), reward_weight=0.0))
    _, grads0, _ = HA.forward_backward(params, batch, np.random.default_rng(1), no_reinforce, baseline=-2.0)
    assert rel_error(flat(grads0, attention), flat(exact, attention)) > 0.9


def test_expected_log_likelihood_with_one_location_is_the_plain_log_likelihood():
    config, params = tiny_model("hard", dropout=0.0)
    features = np.random.default_rng(3).standard_normal((N, 1, D))
    logits, _, _, _ = C.forward(params, config, features, CAPTIONS, glimpse="expected")
    plain = C.caption_log_likelihood(logits, CAPTIONS[:, 1:], C.caption_mask(CAPTIONS)).mean()
    assert HA.expected_log_likelihood(params, config, features, CAPTIONS) == pytest.approx(plain, rel=1e-12)


def test_baseline_update_is_a_moving_average():
    assert HA.update_baseline(None, np.array([-4.0, -2.0])) == -3.0
    assert HA.update_baseline(-3.0, np.array([-1.0])) == pytest.approx(0.9 * -3.0 + 0.1 * -1.0)


def test_sampled_locations_follow_alpha():
    alpha = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    s = np.stack([C.sample_locations(alpha, np.random.default_rng(i)) for i in range(4000)])
    np.testing.assert_allclose(np.bincount(s[:, 0], minlength=3) / 4000, alpha[0], atol=0.03)
    assert (s[:, 1] == 2).all()


# --- decoding agrees with training ---------------------------------------------------------------
@pytest.mark.parametrize("attention", ["none", "soft", "hard"])
def test_greedy_decoding_scores_match_teacher_forcing(attention):
    """The decode step and the training forward pass are the same model: the log-probability greedy
    decoding reports for its caption equals the teacher-forced log-likelihood of that caption."""
    config, params = tiny_model(attention)
    params["bo"][:2] = -50  # <NULL>, <START>: never targets, so a trained model never emits them
    features = tiny_batch()["features"]
    step = C.make_step(params, config)
    hyps = greedy(step, C.initial_state(params, config, features), 1, 2, max_len=6)
    for n, hyp in enumerate(hyps):
        caption = np.array([[1] + hyp.tokens + ([2] if hyp.finished else [])])
        glimpse = "argmax" if attention == "hard" else "expected"
        logits, alphas, _, _ = C.forward(params, config, features[n:n + 1], caption, glimpse=glimpse)
        logp = C.caption_log_likelihood(logits, caption[:, 1:], C.caption_mask(caption))[0]
        assert hyp.log_prob == pytest.approx(logp, rel=1e-10)
        if attention != "none":
            np.testing.assert_allclose(hyp.extras["alpha"], alphas[0], rtol=1e-10)
            assert hyp.extras["alpha"].shape == (len(hyp.tokens) + hyp.finished, L)


def test_sampled_glimpse_decoding_replays_under_teacher_forcing():
    """glimpse="sample" decoding draws each location from alpha with the rng it is given: the log-probability
    it reports equals the teacher-forced one with those locations, and the same seed gives the same captions."""
    config, params = tiny_model("hard")
    params["bo"][:2] = -50
    features = tiny_batch()["features"]
    with pytest.raises(ValueError, match="rng"):
        C.generate(params, config, features, glimpse="sample")
    hyps = C.generate(params, config, features, glimpse="sample", rng=np.random.default_rng(5), max_len=6)
    again = C.generate(params, config, features, glimpse="sample", rng=np.random.default_rng(5), max_len=6)
    assert [h.tokens for h in hyps] == [h.tokens for h in again]
    for n, hyp in enumerate(hyps):
        caption = np.array([[1] + hyp.tokens + ([2] if hyp.finished else [])])
        locations = hyp.extras["location"][None]
        logits, _, _, _ = C.forward(params, config, features[n:n + 1], caption, glimpse="sample", locations=locations)
        logp = C.caption_log_likelihood(logits, caption[:, 1:], C.caption_mask(caption))[0]
        assert hyp.log_prob == pytest.approx(logp, rel=1e-10)


def with_choice_gaps(step):
    """step, wrapped to record at each call the smallest gap between any row's two likeliest tokens.

    Greedy and beam search choose tokens by comparing floats; their tokens can be compared exactly
    only when no choice was a near-tie that a different rounding (another batching, another CPU) flips."""
    gaps = []

    def recording(tokens, state):
        out = step(tokens, state)
        top2 = np.sort(out[0], axis=1)[:, -2:]
        gaps.append(float(np.min(top2[:, 1] - top2[:, 0])))
        return out
    return recording, gaps


def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_well():
    config, params = tiny_model("soft")
    features = tiny_batch()["features"]
    step, gaps = with_choice_gaps(C.make_step(params, config))
    state = C.initial_state(params, config, features)
    g = greedy(step, state, 1, 2, max_len=6)
    b1 = beam_search(step, state, 1, 2, max_len=6, beam_size=1)
    # beam search adds its running score before the argmax; float64 rounding is ~1e-15
    assert min(gaps) > 1e-9, "a near-tie: the token comparisons below could flip"
    b4 = beam_search(step, state, 1, 2, max_len=6, beam_size=4)
    for n in range(N):
        assert b1[n][0].tokens == g[n].tokens
        if g[n].finished and b4[n][0].finished:
            assert b4[n][0].log_prob >= g[n].log_prob - 1e-12
    assert [h.tokens for h in C.generate(params, config, features, beam_size=1, max_len=6)] == [h.tokens for h in g]
