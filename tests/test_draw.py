"""DRAW: the whole loss's gradient, the bound's pieces, the backends agree, training and generating work."""
import functools
import json

import numpy as np
import pytest

from minicap import backend, nn
from minicap.cli import main
from minicap.gradcheck import check_layer, check_model, rel_error
from minicap.models import draw

TINY = dict(width=7, height=6, T=3, read_n=2, write_n=3, enc_size=5, dec_size=4, z_size=3)


def tiny_model(attention, seed=0):
    """A float64 DRAW on 7 x 6 images with every parameter (biases, canvas0) random and non-zero."""
    config = draw.default_config(attention=attention, **TINY)
    rng = np.random.default_rng(seed)
    params = draw.init_params(config, rng, np.float64)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = (rng.random((4, 6, 7)) < 0.5).astype(np.float64)
    return config, params, {"x": x}


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("attention", [True, False])
def test_whole_loss_gradient_in_float64(attention, backend_name):
    """Every parameter of the whole DRAW loss, eps held fixed (check_model re-seeds the rng per call).

    h = 1e-4: the loss is ~30 nats through T steps of exps and LSTMs, and its round-off error over
    h = 1e-6 is ~1e-7 relative, too close to the 1e-6 tolerance; at 1e-4 a correct gradient gives ~1e-8
    (the centred difference's own O(h^2) error is still far below the tolerance).
    """
    config, params, batch = tiny_model(attention)
    with backend.using(backend_name):
        errors = check_model(functools.partial(draw.loss, config=config), params, batch, seed=5, h=1e-4)
    assert set(errors) == set(params)
    for name, err in errors.items():
        assert err < 1e-6, f"{name}: relative error {err:.2e}"


def test_backends_give_the_same_loss_and_gradients():
    config, params, batch = tiny_model(attention=True, seed=1)
    results = {}
    for name in ("numpy", "numba"):
        with backend.using(name):
            results[name] = draw.loss(params, batch, np.random.default_rng(3), config)
    assert results["numpy"][0] == pytest.approx(results["numba"][0], rel=1e-12)
    for k in params:
        assert rel_error(results["numpy"][1][k], results["numba"][1][k]) < 1e-10, k


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("attention", [True, False])
def test_lstm_weight_gradients_after_the_loop_equal_the_per_step_sum(backend_name, attention):
    """backward forms the LSTMs' dWx, dWh, db as one product over all T steps after the loop; the
    per-step form (lstm_step_backward at each step, summed) gives the same gradients to round-off."""
    config, params, batch = tiny_model(attention, seed=2)
    eps = np.random.default_rng(4).standard_normal((config["T"], 4, config["z_size"]))
    with backend.using(backend_name):
        _, cache = draw.forward(params, batch["x"], eps, config)
        one_product = draw.backward(cache)
        per_step = draw.backward(cache, per_step_weight_grads=True)
    assert set(one_product) == set(per_step) == set(params)
    for k in params:
        assert rel_error(one_product[k], per_step[k]) < 1e-12, k


def test_latent_layer_kl_and_gradients():
    rng = np.random.default_rng(0)
    h, eps = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    mu_W, mu_b, ls_W, ls_b = rng.standard_normal((4, 2)), rng.standard_normal(2), \
        0.5 * rng.standard_normal((4, 2)), rng.standard_normal(2)
    (z, kl), _ = draw.sample_latent_forward(h, eps, mu_W, mu_b, ls_W, ls_b)
    mu, sigma = h @ mu_W + mu_b, np.exp(h @ ls_W + ls_b)
    np.testing.assert_allclose(z, mu + sigma * eps)
    # KL(N(mu, sigma^2) || N(0, 1)) = log(1/sigma) + (sigma^2 + mu^2)/2 - 1/2, per latent unit
    np.testing.assert_allclose(kl, (np.log(1 / sigma) + (sigma ** 2 + mu ** 2) / 2 - 0.5).sum(axis=1))
    # ... which is 0 exactly when q is the prior: the "-1" constant
    (_, kl0), _ = draw.sample_latent_forward(h, eps, 0 * mu_W, 0 * mu_b, 0 * ls_W, 0 * ls_b)
    np.testing.assert_array_equal(kl0, 0)
    forward = lambda h, *weights: draw.sample_latent_forward(h, eps, *weights)  # noqa: E731
    errors = check_layer(forward, draw.sample_latent_backward, [h, mu_W, mu_b, ls_W, ls_b],
                         [("h", 0), ("mu_W", 1), ("mu_b", 2), ("ls_W", 3), ("ls_b", 4)])
    assert max(errors.values()) < 1e-6, errors


def test_bernoulli_nll_is_stable_and_exact():
    logits = np.array([[[-1000.0, -3.0, 0.0, 2.0, 1000.0]]])
    x = np.array([[[0.0, 1.0, 1.0, 0.0, 1.0]]])
    nll, cache = draw.bernoulli_nll_forward(logits, x)
    p = 1 / (1 + np.exp(-logits[0, 0, 1:4]))
    expected = -(np.log(p) * x[0, 0, 1:4] + np.log(1 - p) * (1 - x[0, 0, 1:4])).sum()
    assert np.isfinite(nll).all()
    np.testing.assert_allclose(nll, expected)            # the two saturated pixels cost 0 nats
    np.testing.assert_allclose(draw.bernoulli_nll_backward(np.ones(1), cache), nn.sigmoid(logits) - x)


def test_loss_is_the_mean_of_reconstruction_plus_kl_and_the_canvas_starts_black():
    config, params, batch = tiny_model(attention=True)
    eps = np.random.default_rng(0).standard_normal((config["T"], 4, config["z_size"]))
    (value, parts), _ = draw.forward(params, batch["x"], eps, config)
    assert value == pytest.approx(parts["recon"] + parts["kl"])
    assert value == pytest.approx(parts["bound"].mean()) and parts["kl"] > 0
    fresh = draw.init_params(draw.default_config(), np.random.default_rng(0))
    np.testing.assert_allclose(1 / (1 + np.exp(-fresh["canvas0"])), 1 / (1 + np.exp(6)), rtol=1e-6)


def test_generate_draws_from_the_prior_and_records_each_glimpse():
    config, params, _ = tiny_model(attention=True)
    images, history = draw.generate(params, config, 5, np.random.default_rng(0), record=True)
    assert images.shape == (5, 6, 7) and ((images >= 0) & (images <= 1)).all()
    assert len(history) == config["T"]
    np.testing.assert_allclose(history[-1]["canvas"], images)
    assert set(history[0]["window"]) >= {"gx", "gy", "delta", "N"}
    again = draw.generate(params, config, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(images, again)


def test_binarisation_is_bernoulli_and_held_out_digits_are_fixed():
    rng = np.random.default_rng(0)
    grey = np.full((200, 10, 10), 64, dtype=np.uint8)
    x = draw.binarize(grey, rng)
    assert set(np.unique(x)) == {0.0, 1.0}
    assert abs(x.mean() - 64 / 255) < 0.01
    np.testing.assert_array_equal(draw.binarize(np.zeros((2, 3, 3), np.uint8), rng), 0)
    np.testing.assert_array_equal(draw.binarize(np.full((2, 3, 3), 255, np.uint8), rng), 1)
    val = draw.held_out_digits("val")
    assert val.shape == (500, 28, 28)
    np.testing.assert_array_equal(val, draw.held_out_digits("val"))
    assert not np.array_equal(val[:50], draw.held_out_digits("test")[:50])


# --- the command line ---------------------------------------------------------------------------
SMALL = ["--glimpses", "3", "--hidden", "16", "--z-size", "4", "--batch", "8", "--eval-every", "5"]


def test_train_resume_and_generate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "draw", "--steps", "10", "--out", str(out)] + SMALL) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attention"] is True and np.isfinite(summary["test_bound"])
    # resuming continues the same run: 10 + 5 steps equal 15 straight steps
    assert main(["train", "draw", "--steps", "15", "--out", str(out), "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main(["train", "draw", "--steps", "15", "--out", str(straight)] + SMALL) == 0
    from minicap.checkpoint import load_checkpoint
    a, b = load_checkpoint(out / "last.npz"), load_checkpoint(straight / "last.npz")
    assert a.step == b.step == 15
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    # a resumed run refuses a changed model
    assert main(["train", "draw", "--steps", "20", "--out", str(out), "--resume", "--hidden", "8"]) == 2
    assert "hidden" in capsys.readouterr().err

    png, gif, strip = tmp_path / "s.png", tmp_path / "d.gif", tmp_path / "strip.png"
    assert main(["generate", str(out), "--n", "4", "--out", str(png), "--gif", str(gif), "--strip", str(strip),
                 "--seed", "0"]) == 0
    from PIL import Image
    grid = np.asarray(Image.open(png))
    assert grid.ndim == 2 and grid.shape == (2 + 2 * (28 * 3 + 2), 2 + 2 * (28 * 3 + 2))
    with Image.open(gif) as anim:
        assert 2 <= anim.n_frames <= 3       # one per glimpse (Pillow merges identical neighbours)
        anim.seek(1)
        rgb = np.asarray(anim.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 100)
    assert red.any(), "the write window is outlined in red"
    strip_rgb = np.asarray(Image.open(strip).convert("RGB"))      # 4 rows (samples) x 3 columns (glimpses)
    grid_height = 2 + 4 * (28 * 3 + 2)
    header = strip_rgb.shape[0] - grid_height                    # the row of glimpse numbers t=1, t=2, ...
    assert strip_rgb.shape[1:] == (2 + 3 * (28 * 3 + 2), 3) and 8 <= header <= 40
    assert (strip_rgb[:header] < 128).any(), "the glimpse numbers are written in the header"


def test_no_attention_run_and_cli_errors(tmp_path, capsys):
    out = tmp_path / "noatt"
    assert main(["train", "draw", "--no-attention", "--steps", "5", "--out", str(out)] + SMALL) == 0
    assert json.loads((out / "summary.json").read_text())["attention"] is False
    # training again into a used folder, without --resume, is refused
    assert main(["train", "draw", "--steps", "5", "--out", str(out)] + SMALL) == 2
    assert "--resume" in capsys.readouterr().err
    # a DRAW checkpoint draws no captions; the GIF has no windows to outline but still animates
    assert main(["generate", str(out / "last.npz"), "a caption", "--out", str(tmp_path / "x.png")]) == 2
    assert "unconditional" in capsys.readouterr().err
    assert main(["generate", str(out / "last.npz"), "--n", "2", "--out", str(tmp_path / "x.png"),
                 "--gif", str(tmp_path / "x.gif")]) == 0
    assert main(["generate", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "y.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_paired_bound_difference_of_a_model_with_itself_is_zero():
    config, params, batch = tiny_model(attention=True)
    mean, se, lower = draw.paired_bound_difference((params, config), (params, config), batch["x"], samples=2)
    assert mean == 0 and se == 0 and lower == 0


@pytest.mark.slow
def test_attention_beats_no_attention_on_held_out_digits(tmp_path):
    """The paper's comparison at this project's scale: 5,000 steps each (~15 + 25 minutes on 2 cores);
    the bound with attention is lower on the test digits, paired by image."""
    from minicap.checkpoint import load_checkpoint
    from minicap.commands.draw import DEFAULTS, model_config
    models = []
    for flag in ("--attention", "--no-attention"):
        out = tmp_path / flag
        assert main(["train", "draw", flag, "--steps", "5000", "--out", str(out)]) == 0
        ck = load_checkpoint(out / "best.npz")
        models.append((ck.params, model_config({**DEFAULTS, **ck.config})))
    mean, se, _ = draw.paired_bound_difference(models[0], models[1], draw.held_out_digits("test"))
    assert mean + 2 * se < 0, (mean, se)
