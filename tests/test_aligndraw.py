"""alignDRAW: whole-model gradients, the alignment over words, the learned prior, generation, the CLI."""
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicap.data import Vocabulary
from minicap.errors import MinicapError
from minicap.gradcheck import check_model
from minicap.gradcheck_cases import TOLERANCE, check_case
from minicap.models import aligndraw as ad

ROOT = Path(__file__).resolve().parents[1]

# A 6 x 5 canvas, 3 steps and tiny LSTMs: every piece of the model runs, in well under a second.
TINY = dict(width=6, height=5, T=3, read_n=2, write_n=2, enc_size=5, dec_size=6, z_size=3, embed_size=4,
            lang_size=3, align_size=5, vocab_size=8, canvas_init=-1.0)
# three captions of 4, 2 and 1 words, padded with <NULL> = 0
WORDS = np.array([[4, 5, 6, 7], [4, 6, 0, 0], [7, 0, 0, 0]])


def tiny_model(align=True, seed=0, **overrides):
    """A float64 model whose parameters are all random and non-zero (biases and start states too)."""
    config = ad.default_config(**dict(TINY, align=align, **overrides))
    rng = np.random.default_rng(seed)
    params = ad.init_params(config, rng, np.float64)
    for name in params:
        params[name] = params[name] + 0.5 * rng.standard_normal(params[name].shape)
    x = (rng.random((len(WORDS), config["height"], config["width"])) < 0.5).astype(np.float64)
    return config, params, {"x": x, "words": WORDS, "mask": WORDS != 0}


@pytest.mark.parametrize("encoder", ["bilstm", "words", "bilstm+words"])
@pytest.mark.parametrize("align", [True, False], ids=["alignment", "mean-of-words"])
def test_whole_model_gradient_check(align, encoder):
    """Every parameter, through T steps of read, inference, prior, KL, alignment, generator and write,
    and back through the caption encoder (the bidirectional LSTM, with or without each word's own
    embedding beside it, or the words encoder's embeddings and position vectors; max_words 5 > the 4 words here, so one position row must get exactly zero).
    The noise is fixed (check_model re-seeds the rng before every call). h = 1e-5: the loss is ~ 60
    nats, so h = 1e-6 leaves round-off of ~1e-10 / 1e-6 on gradients of ~1e-4, which alone reaches
    1e-6; the O(h^2) error at 1e-5 is far below that."""
    config, params, batch = tiny_model(align, caption_encoder=encoder, position_size=3, max_words=5)
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    assert set(errors) == set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"
    if encoder == "words":
        grads = ad.loss(params, batch, np.random.default_rng(3), config)[1]
        assert grads["position_W"][:4].any(axis=1).all() and not grads["position_W"][4].any()


@pytest.mark.parametrize("encoder,layout_encoder", [("bilstm", None), ("words", None), ("words", "bilstm"),
                                                    ("bilstm", "words")])
@pytest.mark.parametrize("align", [True, False], ids=["alignment", "mean-of-words"])
def test_layout_path_gradient_check(align, encoder, layout_encoder):
    """layout=True: the write windows come from the layout LSTM (its own attention over the words), the
    patches from the generator; the layout path reads the generator's word states or (layout_encoder)
    those of its own encoder, which shares the word embedding. Every parameter, the layout path's and
    both encoders' included, against finite differences."""
    config, params, batch = tiny_model(align, caption_encoder=encoder, position_size=3, max_words=5, layout=True,
                                       layout_size=4, layout_encoder=layout_encoder)
    assert ("lang_f_Wx" in params) == ("bilstm" in (encoder, layout_encoder))
    assert ("position_W" in params) == ("words" in (encoder, layout_encoder))
    assert params["write_att_W"].shape == (4, 5)            # the window reads h^lay, not h^gen
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    assert set(errors) == set(params) and {"lay_Wx", "lay_align_v", "lay_h0"} <= set(errors)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"


@pytest.mark.parametrize("encoder,layout_encoder", [("bilstm", None), ("words", "bilstm")])
def test_layout_with_hidden_words_gradient_check_and_blindness(encoder, layout_encoder):
    """layout_hidden: the layout path reads those words as <UNK>. The whole model still matches finite
    differences (the shared embedding gets both paths' gradients), and swapping one hidden word for
    another moves no write window, while the drawings change."""
    config, params, batch = tiny_model(caption_encoder=encoder, position_size=3, max_words=5, layout=True,
                                       layout_size=4, layout_encoder=layout_encoder, layout_hidden=[5, 6])
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"
    swapped = np.where(WORDS == 5, 6, np.where(WORDS == 6, 5, WORDS))   # the two hidden words swapped
    windows, images = [], []
    for words in (WORDS, swapped):
        image, history = ad.generate(params, words, words != 0, config, np.random.default_rng(1), record=True)
        windows.append([h["window"]["gx"] for h in history]), images.append(image)
    np.testing.assert_array_equal(np.array(windows[0]), np.array(windows[1]))
    assert not np.allclose(images[0], images[1])


@pytest.mark.parametrize("encoder,layout_encoder,hidden", [("bilstm", None, []), ("words", "bilstm", [5, 6])])
def test_layout_max_span_caps_the_write_window_and_gradient_checks(encoder, layout_encoder, hidden):
    """layout_max_span: no write window spans (first to last filter centre) more than the cap, and the
    smooth minimum that caps it has the right gradient (the whole model against finite differences)."""
    config, params, batch = tiny_model(caption_encoder=encoder, position_size=3, max_words=5, layout=True,
                                       layout_size=4, layout_encoder=layout_encoder, layout_hidden=hidden,
                                       layout_max_span=2.0)
    params["write_att_b"][3] += 3.0                         # windows that would span the canvas without the cap
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"
    _, history = ad.generate(params, batch["words"], batch["mask"], config, np.random.default_rng(0), record=True)
    spans = np.array([(config["write_n"] - 1) * step["window"]["delta"] for step in history])
    assert spans.max() < 2.0
    _, history = ad.generate(params, batch["words"], batch["mask"], dict(config, layout_max_span=0.0),
                             np.random.default_rng(0), record=True)
    assert max((config["write_n"] - 1) * step["window"]["delta"].max() for step in history) > 2.0


@pytest.mark.parametrize("align,encoder,layout_encoder,hidden", [(True, "bilstm", None, []),
                                                             (True, "words", "bilstm", [5, 6]),
                                                             (False, "words", "bilstm", [5, 6])])
def test_layout_to_generator_gradient_check_and_what_it_changes(align, encoder, layout_encoder, hidden):
    """layout_to_generator: h^lay_t joins the generator's input (and its alignment query). The whole model
    matches finite differences; the generator's input weights grow by the layout state's width; the
    layout path's windows still ignore the hidden words, while the drawings now follow them."""
    config, params, batch = tiny_model(align, caption_encoder=encoder, position_size=3, max_words=5, layout=True,
                                       layout_size=4, layout_encoder=layout_encoder, layout_hidden=hidden,
                                       layout_max_span=3.0, layout_to_generator=True)
    S = ad.lang_width(config)
    assert params["dec_Wx"].shape == (config["z_size"] + S + 4, 4 * config["dec_size"])
    assert ("align_W" in params) == align and (not align or params["align_W"].shape == (config["dec_size"] + 4, 5))
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    assert set(errors) == set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"
    # the layout state reaches the loss through the generator too: zeroing its rows changes the gradient
    grads = ad.loss(params, batch, np.random.default_rng(3), config)[1]
    cut = dict(params, dec_Wx=params["dec_Wx"].copy())
    cut["dec_Wx"][config["z_size"] + S:] = 0
    if align:
        cut["align_W"] = params["align_W"].copy()
        cut["align_W"][config["dec_size"]:] = 0
    grads_cut = ad.loss(cut, batch, np.random.default_rng(3), config)[1]
    assert not np.allclose(grads["lay_Wx"], grads_cut["lay_Wx"])
    if hidden:
        swapped = np.where(WORDS == 5, 6, np.where(WORDS == 6, 5, WORDS))
        runs = [ad.generate(params, w, w != 0, config, np.random.default_rng(1), record=True) for w in (WORDS, swapped)]
        for a, b in zip(runs[0][1], runs[1][1]):
            np.testing.assert_array_equal(a["window"]["gx"], b["window"]["gx"])
        assert not np.allclose(runs[0][0], runs[1][0])
    with pytest.raises(ValueError, match="layout_to_generator=True needs layout=True"):
        ad.default_config(layout_to_generator=True)


def test_layout_windows_depend_on_the_caption_only():
    """With the layout path the write windows are the same whatever the latents: two generations of one
    caption with different noise put every glimpse in the same place, and draw different images."""
    config, params, batch = tiny_model(layout=True, layout_size=4)
    words, mask = batch["words"], batch["mask"]
    runs = [ad.generate(params, words, mask, config, np.random.default_rng(seed), record=True) for seed in (1, 2)]
    for a, b in zip(runs[0][1], runs[1][1]):
        for key in ("gx", "gy", "delta", "sigma2", "gamma"):
            np.testing.assert_array_equal(a["window"][key], b["window"][key])
    assert not np.allclose(runs[0][0], runs[1][0])
    plain_config, plain, _ = tiny_model()                  # without it, the window follows the generator
    plain_runs = [ad.generate(plain, words, mask, plain_config, np.random.default_rng(seed), record=True)
                  for seed in (1, 2)]
    assert not np.allclose(plain_runs[0][1][-1]["window"]["gx"], plain_runs[1][1][-1]["window"]["gx"])
    with pytest.raises(ValueError, match="layout=True needs attention=True"):
        ad.default_config(layout=True, attention=False)


def test_kl_weight_scales_only_the_kl_and_its_gradient_checks():
    """kl_weight = beta: the loss is recon + beta KL (batch means) while parts["bound"] stays recon + KL,
    and the whole model's gradient (every parameter) matches finite differences of that loss."""
    config, params, batch = tiny_model(kl_weight=3.0)
    eps = np.random.default_rng(5).standard_normal((config["T"], len(WORDS), config["z_size"]))
    (value, parts), _ = ad.forward(params, batch["x"], batch["words"], batch["mask"], eps, config)
    assert value == pytest.approx(parts["recon"] + 3.0 * parts["kl"], rel=1e-12)
    assert parts["bound"].mean() == pytest.approx(parts["recon"] + parts["kl"], rel=1e-12)
    (plain, plain_parts), _ = ad.forward(params, batch["x"], batch["words"], batch["mask"], eps,
                                         dict(config, kl_weight=1.0))
    assert plain == pytest.approx(plain_parts["bound"].mean(), rel=1e-12) and plain < value
    errors = check_model(functools.partial(ad.loss, config=config), params, batch, seed=3, h=1e-5)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"gradient of {worst}: relative error {errors[worst]:.2e}"
    with pytest.raises(ValueError, match="kl_weight must be positive"):
        ad.default_config(kl_weight=0)


def test_one_step_model_uses_the_standard_normal_prior():
    """P(Z_1) = N(0, I): with T = 1 the learned prior is never used, so its gradient is exactly zero,
    and the KL is DRAW's KL(q || N(0, I))."""
    config, params, batch = tiny_model(T=1)
    _, grads = ad.loss(params, batch, np.random.default_rng(0), config)
    for name in ("prior_mu_W", "prior_mu_b", "prior_ls_W", "prior_ls_b"):
        assert not grads[name].any()
    assert grads["mu_W"].any() and grads["align_W"].any()


@pytest.mark.parametrize("name", ["aligndraw_prior", "gaussian_kl"])
def test_new_layers_gradients(name):
    errors = check_case(name, seed=5)
    assert max(errors.values()) < TOLERANCE, errors


def test_gaussian_kl_values():
    zero = np.zeros((1, 1))
    # KL(N(1, 2^2) || N(0, 1)) = 0.5 (4 + 1 - 1 - log 4) = 2 - log 2
    kl, _ = ad.gaussian_kl_forward(np.ones((1, 1)), np.full((1, 1), np.log(2.0)), zero, zero)
    assert kl[0] == pytest.approx(2 - np.log(2), rel=1e-12)
    # KL(N(0, 1) || N(3, e^2)) = 1 + (1 + 9) / (2 e^2) - 1/2
    kl, _ = ad.gaussian_kl_forward(zero, zero, np.full((1, 1), 3.0), np.ones((1, 1)))
    assert kl[0] == pytest.approx(1 + 10 / (2 * np.e ** 2) - 0.5, rel=1e-12)
    # zero when the two are the same, and a sum over the last axis
    rng = np.random.default_rng(0)
    mu, ls = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    kl, _ = ad.gaussian_kl_forward(mu, ls, mu, ls)
    np.testing.assert_allclose(kl, 0, atol=1e-12)


def test_alignment_sums_to_one_over_real_words_and_ignores_padding():
    config, params, batch = tiny_model()
    eps = np.random.default_rng(1).standard_normal((config["T"], len(WORDS), config["z_size"]))
    (_, parts), _ = ad.forward(params, batch["x"], batch["words"], batch["mask"], eps, config)
    alphas = parts["alphas"]                                  # (T, Bt, L)
    assert alphas.shape == (config["T"],) + WORDS.shape
    np.testing.assert_allclose(alphas.sum(axis=2), 1, rtol=1e-12)
    assert np.all(alphas[:, WORDS == 0] == 0)                # exactly zero, not small
    assert np.all(alphas[:, WORDS != 0] > 0)
    assert np.all(alphas[:, 2, 0] == 1)                       # a one-word caption: all weight on it
    # the weights move with the generator state: not the same at every step
    assert np.abs(alphas[1:, 0] - alphas[:1, 0]).max() > 1e-6


@pytest.mark.parametrize("align", [True, False], ids=["alignment", "mean-of-words"])
def test_extra_padding_changes_nothing(align):
    """The caption encoder reverses each caption within its own length and the alignment (or the mean)
    skips padding: more <NULL>s at the end must not change the bound or the gradients."""
    config, params, batch = tiny_model(align)
    padded = dict(batch, words=np.pad(WORDS, ((0, 0), (0, 3))))
    padded["mask"] = padded["words"] != 0
    loss1, grads1 = ad.loss(params, batch, np.random.default_rng(4), config)
    loss2, grads2 = ad.loss(params, padded, np.random.default_rng(4), config)
    assert loss1 == pytest.approx(loss2, rel=1e-12)
    for name in grads1:
        np.testing.assert_allclose(grads1[name], grads2[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_caption_changes_the_bound():
    """The generator reads the caption: the same images with other captions get another bound."""
    config, params, batch = tiny_model()
    other = dict(batch, words=np.array([[5, 4, 7, 6], [7, 5, 0, 0], [4, 0, 0, 0]]))
    a, _ = ad.loss(params, batch, np.random.default_rng(4), config)
    b, _ = ad.loss(params, other, np.random.default_rng(4), config)
    assert abs(a - b) > 1e-6


def test_generate_shapes_and_history():
    config, params, batch = tiny_model()
    images, history = ad.generate(params, batch["words"], batch["mask"], config, np.random.default_rng(0), record=True)
    assert images.shape == (3, 5, 6) and np.all((images > 0) & (images < 1))
    assert len(history) == config["T"]
    np.testing.assert_allclose(history[-1]["canvas"], images)
    for step in history:
        np.testing.assert_allclose(step["alpha"].sum(axis=1), 1)
        assert np.all(step["alpha"][WORDS == 0] == 0)
        assert set(step["window"]) >= {"gx", "gy", "delta"}
    again = ad.generate(params, batch["words"], batch["mask"], config, np.random.default_rng(0))
    np.testing.assert_array_equal(images, again)


def test_temperature_scales_the_prior_noise():
    """z_t = mu' + tau sigma' eps: tau = 0 follows the prior's mean (the same image whatever the seed),
    tau = 1 is the default sampling, and images drift away from the mean image as tau grows."""
    config, params, batch = tiny_model()
    args = (params, batch["words"], batch["mask"], config)
    mean_a = ad.generate(*args, np.random.default_rng(0), temperature=0.0)
    mean_b = ad.generate(*args, np.random.default_rng(7), temperature=0.0)
    np.testing.assert_array_equal(mean_a, mean_b)   # exact: same code and shapes, and 0 * eps is 0 whatever eps
    np.testing.assert_array_equal(ad.generate(*args, np.random.default_rng(3), temperature=1.0),
                                  ad.generate(*args, np.random.default_rng(3)))
    spread = [np.abs(ad.generate(*args, np.random.default_rng(3), temperature=tau) - mean_a).mean()
              for tau in (0.25, 1.0)]
    assert 0 < spread[0] < spread[1]


def test_canvas_starts_black():
    """sigmoid(canvas0) ~ 0: the empty canvas is black like the background, not grey (sigmoid(0) = 0.5)."""
    config = ad.default_config(vocab_size=10)
    params = ad.init_params(config, np.random.default_rng(0))
    assert params["canvas0"].shape == (60, 60)
    assert np.all(1 / (1 + np.exp(-params["canvas0"])) < 0.01)


def test_encode_words_and_unknown_words():
    vocab = Vocabulary.build(["the digit three is at the top of the digit one"])
    ids, mask = ad.encode_words(["the digit one", "the digit three is at the top"], vocab)
    assert ids.shape == (2, 7) and mask.sum(axis=1).tolist() == [3, 7]
    assert vocab.decode(ids[0][mask[0]]) == "the digit one"
    with pytest.raises(MinicapError) as err:
        ad.encode_words(["the digit seven is on the left of the digit one"], vocab)
    message = str(err.value)
    for word in ("'seven'", "'left'", "'on'"):                # every unknown word is named ...
        assert word in message
    assert "three" in message and "top" in message           # ... and the vocabulary listed
    with pytest.raises(MinicapError):
        ad.encode_words(["..."], vocab)


def test_train_step_learns_a_little():
    """A few Adam steps on a tiny captioned-MNIST stream lower the bound of a fixed held-out batch."""
    from minicap.data import make_captioned_mnist
    from minicap.optim import make_optimizer
    from minicap.train import Run
    data = make_captioned_mnist("train", n=64, seed=0)
    vocab = Vocabulary.build(data.captions)
    words, mask = ad.encode_words(data.captions, vocab)
    config = ad.default_config(vocab_size=len(vocab), T=4, enc_size=16, dec_size=16, z_size=4, embed_size=8,
                               lang_size=8, align_size=8)
    run = Run(kind="aligndraw", config=config, params=ad.init_params(config, np.random.default_rng(0)),
              optimizer=make_optimizer("adam", lr=1e-2), rng=np.random.default_rng(1))
    _, x, val_words, val_mask = ad.held_out_set("val", 32, vocab)

    def held_out_bound():
        return ad.bound(run.params, x, val_words, val_mask, config, np.random.default_rng(2)).mean()

    before = held_out_bound()
    step = ad.make_train_step(config, data.images, words, mask, batch_size=16)
    for _ in range(25):
        _, grads = step(run)
        run.optimizer.step(run.params, grads)
    assert held_out_bound() < 0.8 * before


def test_sample_captioned_mnist_draws_from_the_rng_and_keeps_the_held_out_combinations_out():
    """Fresh canvases: the same rng state gives the same canvases, the next draw new ones; training canvases
    never hold a held-out (template, slot, digit) combination and novel ones always do; training digits only."""
    from minicap.data import banned_digits, caption_accuracy
    from minicap.data.captioned_mnist import N_DIGITS, _violates_ban, sample_captioned_mnist
    from minicap.data.mnist import mnist_5k_split_indices
    a = sample_captioned_mnist(np.random.default_rng(5), 300)
    b = sample_captioned_mnist(np.random.default_rng(5), 300)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions and len(a) == 300 and a.images.shape == (300, 60, 60)
    rng = np.random.default_rng(5)
    sample_captioned_mnist(rng, 300)
    assert not np.array_equal(sample_captioned_mnist(rng, 300).images, a.images)
    assert not _violates_ban(a.template, a.digits, banned_digits()).any()
    novel = sample_captioned_mnist(np.random.default_rng(6), 200, "novel")
    assert _violates_ban(novel.template, novel.digits, banned_digits()).all()
    assert np.isin(a.source[a.source >= 0], mnist_5k_split_indices()["train"]).all()
    assert caption_accuracy(a.captions, a) == 1.0 and (a.n_digits == N_DIGITS[a.template]).all()
    with pytest.raises(MinicapError):
        sample_captioned_mnist(np.random.default_rng(0), 4, "nope")


def test_learning_rate_halves_every_halflife():
    assert ad.learning_rate(1e-3, 0, 1500) == 1e-3
    assert ad.learning_rate(1e-3, 1500, 1500) == pytest.approx(5e-4)
    assert ad.learning_rate(1e-3, 4500, 1500) == pytest.approx(1.25e-4)
    assert ad.learning_rate(1e-3, 4500, 0) == 1e-3


def test_fresh_canvas_train_step_sets_the_learning_rate_and_draws_new_canvases():
    """make_train_step without a fixed set: every batch is new (two steps from the same state agree, the
    next one differs), and the optimizer's rate follows learning_rate(lr, run.step, halflife)."""
    from minicap.data import make_captioned_mnist
    from minicap.optim import make_optimizer
    from minicap.train import Run
    vocab = Vocabulary.build(make_captioned_mnist("train", n=64).captions)
    config = ad.default_config(vocab_size=len(vocab), T=2, enc_size=6, dec_size=6, z_size=3, embed_size=4,
                               lang_size=3, align_size=4)
    params = ad.init_params(config, np.random.default_rng(0))

    def fresh_run(step):
        return Run(kind="aligndraw", config=config, params=params, optimizer=make_optimizer("adam", lr=1.0),
                   rng=np.random.default_rng(1), step=step)
    step = ad.make_train_step(config, None, None, None, 8, vocab=vocab, lr=1e-3, lr_halflife=10)
    one, two = fresh_run(20), fresh_run(20)
    first = step(one)
    assert one.optimizer.lr == pytest.approx(2.5e-4)
    assert step(two)[0] == first[0]
    assert step(one)[0] != first[0]
    with pytest.raises(ValueError):
        ad.make_train_step(config, None, None, None, 8)


def test_settings_of_a_run_from_before_fresh_canvases_keep_the_fixed_set():
    """A checkpoint whose config has no 'canvases' / 'lr_halflife' was trained on a fixed set at a constant
    rate: resuming it keeps both (the new defaults are for new runs)."""
    import argparse
    from minicap.commands import aligndraw as aligndraw_cli
    parser = argparse.ArgumentParser(prog="minicap train aligndraw")
    aligndraw_cli.configure(parser)
    args = parser.parse_args([])
    old = {k: v for k, v in aligndraw_cli._settings(args).items() if k not in ("canvases", "lr_halflife")}
    resumed = aligndraw_cli._settings(args, old)
    assert resumed["canvases"] == "fixed" and resumed["lr_halflife"] == 0
    new = aligndraw_cli._settings(args, None)
    assert new["canvases"] == "fresh" and new["lr_halflife"] == aligndraw_cli.DEFAULTS["lr_halflife"]
    with pytest.raises(MinicapError, match="lr-halflife"):     # fixed on resume, like the other training options
        aligndraw_cli._settings(parser.parse_args(["--lr-halflife", "100"]), old)


def test_new_runs_are_the_where_what_split_and_paper_gives_the_paper_architecture(tmp_path):
    """The command's default model is the where/what split (a layout path that reads the caption with its
    digit words hidden, windows at most 28 px, the generator on the words encoder told where it writes);
    --paper gives the paper's architecture, exactly the default before (no layout path, bidirectional LSTM);
    a run from before the layout options resumes as the paper's model, and a where/what run refuses --paper."""
    import argparse
    from minicap.commands import aligndraw as aligndraw_cli
    parser = argparse.ArgumentParser(prog="minicap train aligndraw")
    aligndraw_cli.configure(parser)
    split = aligndraw_cli._settings(parser.parse_args([]))
    assert {k: split[k] for k in aligndraw_cli.WHERE_WHAT} == aligndraw_cli.WHERE_WHAT
    assert split["steps"] == 7000 and split["kl_weight"] == 2.0
    paper = aligndraw_cli._settings(parser.parse_args(["--paper"]))
    assert {k: paper[k] for k in aligndraw_cli.PAPER} == aligndraw_cli.PAPER
    model = ad.default_config()                       # the model module's own defaults are the paper's
    assert all(model[k] == v for k, v in aligndraw_cli.PAPER.items() if k != "layout_hides_digits")
    variant = aligndraw_cli._settings(parser.parse_args(["--paper", "--layout", "--layout-max-span", "20"]))
    assert variant["layout"] and variant["layout_max_span"] == 20.0 and variant["caption_encoder"] == "bilstm"
    assert variant["layout_encoder"] is None and not variant["layout_hides_digits"] and not variant["layout_to_generator"]
    before = {k: v for k, v in paper.items() if not k.startswith("layout")}     # a checkpoint of the 3rd session
    assert aligndraw_cli._settings(parser.parse_args([]), before)["layout"] is False
    with pytest.raises(MinicapError, match="drop --paper"):
        aligndraw_cli._settings(parser.parse_args(["--paper", "--out", str(tmp_path)]), split)


def test_new_runs_train_with_kl_weight_2_and_older_runs_resume_with_the_bound():
    """The command's default KL weight is 2 (the model's own default stays 1, the paper's bound); a
    checkpoint from before --kl-weight existed was trained on the bound and resumes with weight 1."""
    import argparse
    from minicap.commands import aligndraw as aligndraw_cli
    parser = argparse.ArgumentParser(prog="minicap train aligndraw")
    aligndraw_cli.configure(parser)
    args = parser.parse_args([])
    assert aligndraw_cli._settings(args)["kl_weight"] == 2.0 and ad.default_config()["kl_weight"] == 1.0
    old = {k: v for k, v in aligndraw_cli._settings(args).items() if k != "kl_weight"}
    assert aligndraw_cli._settings(args, old)["kl_weight"] == 1.0
    assert aligndraw_cli._settings(parser.parse_args(["--kl-weight", "1"]))["kl_weight"] == 1.0


# --- the command line -------------------------------------------------------------------------------
def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "minicap", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("aligndraw") / "run"
    result = _cli("train", "aligndraw", "--out", out, "--steps", 4, "--T", 2, "--enc", 8, "--dec", 8, "--z", 4,
                  "--canvases", "fixed", "--train-size", 32, "--val-size", 8, "--eval-every", 2, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return out, result


def test_cli_train_writes_checkpoints_and_bounds(tiny_run):
    out, result = tiny_run
    assert (out / "last.npz").exists() and (out / "best.npz").exists()
    assert "test bound" in result.stdout and "novel bound" in result.stdout
    again = _cli("train", "aligndraw", "--out", out, "--steps", 4, cwd=out.parent)
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.parametrize("canvases", ["fresh", "fixed"])
def test_cli_resume_continues_exactly(tmp_path, canvases):
    """4 steps, then --resume to 6, equal 6 straight steps bit for bit (parameters, optimizer, rng, data order),
    with fresh canvases drawn from the run's rng and with a fixed set, the learning rate halving every 3 steps."""
    from minicap.checkpoint import load_checkpoint
    small = ["--T", 2, "--enc", 8, "--dec", 8, "--z", 4, "--train-size", 32, "--val-size", 8, "--eval-every", 2,
             "--canvases", canvases, "--lr-halflife", 3]
    assert _cli("train", "aligndraw", "--out", tmp_path / "split", "--steps", 4, *small, cwd=tmp_path).returncode == 0
    result = _cli("train", "aligndraw", "--out", tmp_path / "split", "--steps", 6, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _cli("train", "aligndraw", "--out", tmp_path / "straight", "--steps", 6, *small, cwd=tmp_path).returncode == 0
    a, b = load_checkpoint(tmp_path / "split" / "last.npz"), load_checkpoint(tmp_path / "straight" / "last.npz")
    assert a.step == b.step == 6
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert a.config["canvases"] == canvases and a.optimizer_state["lr"] == b.optimizer_state["lr"] == 1e-3 * 2 ** (-5 / 3)


def test_cli_generate_png_and_gif(tiny_run):
    from PIL import Image
    out, _ = tiny_run
    result = _cli("generate", out, "the digit 3 is at the top of the digit one", "the digit seven is at the top "
                  "left of the image", "--n", 3, "--out", out / "g.png", "--gif", out / "g.gif", "--seed", 1,
                  cwd=out.parent)
    assert result.returncode == 0, result.stderr
    assert Image.open(out / "g.png").size[0] > 3 * 60
    gif = Image.open(out / "g.gif")
    assert gif.n_frames == 2                                   # one frame per drawing step (T = 2)


def test_cli_generate_unknown_words_and_missing_caption(tiny_run):
    out, _ = tiny_run
    result = _cli("generate", out, "a cat is at the top", "--out", out / "x.png", cwd=out.parent)
    assert result.returncode == 2
    assert "'a'" in result.stderr and "'cat'" in result.stderr and "digit" in result.stderr
    assert "Traceback" not in result.stderr
    result = _cli("generate", out, "--out", out / "x.png", cwd=out.parent)
    assert result.returncode == 2 and "caption" in result.stderr and "Traceback" not in result.stderr
    result = _cli("generate", out, "the digit seven is at the top left of the image", "--temperature", -1,
                  "--out", out / "x.png", cwd=out.parent)
    assert result.returncode == 2 and "--temperature" in result.stderr and "Traceback" not in result.stderr


def test_cli_roundtrip_reports_both_splits_and_draws_the_figure(tiny_run, tmp_path):
    """`minicap roundtrip` end to end, with a tiny captioner (random small encoder): JSON with every key,
    the figure written, a bad --temperature refused."""
    from minicap.checkpoint import save_checkpoint
    from minicap.models import encoder as enc
    from minicap.commands.aligndraw import SAMPLE_TEMPERATURE
    out, _ = tiny_run
    channels = (4, 4, 6, 6)
    save_checkpoint(tmp_path / "enc.npz", "encoder", enc.init_params(np.random.default_rng(0), channels),
                    config={"channels": channels})
    result = _cli("train", "captioner", "--out", tmp_path / "cap", "--encoder", tmp_path / "enc.npz", "--cache",
                  tmp_path / "cache", "--steps", 2, "--train-size", 32, "--val-size", 8, "--embed", 6, "--hidden", 8,
                  "--attention-size", 5, "--batch", 8, "--eval-every", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = _cli("roundtrip", out, "--captioner", tmp_path / "cap", "--n", 6, "--png", tmp_path / "rt.png", "--json",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["temperature"] == SAMPLE_TEMPERATURE
    for split in ("test", "novel"):
        assert 0 <= report[f"{split}_round_trip_accuracy"] <= 1 and report[f"{split}_prompts"] >= 1
        assert 0 <= report[f"{split}_captioner_accuracy_on_real_images"] <= 1 and report[f"{split}_bound"] > 0
    assert (tmp_path / "rt.png").stat().st_size > 0
    for split in ("test", "novel"):
        table = report[f"{split}_by_template"]
        assert sum(r["prompts"] for r in table.values()) == report[f"{split}_prompts"]
        for r in table.values():
            assert 0 <= r["correct"] <= min(r["digits"], r["layout"]) <= 1
    result = _cli("roundtrip", out, "--captioner", tmp_path / "cap", "--n", 6, "--no-bound", cwd=tmp_path)
    assert result.returncode == 0 and "novel prompts by template" in result.stdout
    result = _cli("roundtrip", out, "--captioner", tmp_path / "cap", "--temperature", -0.5, cwd=tmp_path)
    assert result.returncode == 2 and "--temperature" in result.stderr and "Traceback" not in result.stderr


def test_round_trip_counts_captions_that_state_the_prompt(tiny_run):
    """round_trip with stand-in captioners: one that repeats the prompt in the other word order
    ("X left of Y" as "Y right of X") is always right, one that says something else never is."""
    from minicap.data import parse_caption, render_caption
    from minicap.commands import aligndraw as aligndraw_cli
    out, _ = tiny_run
    prompts = []

    def swapped(images):
        flips = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
        out_ = []
        for caption in prompts[-1]:
            m = parse_caption(caption)
            out_.append(render_caption(flips[m.template], m.digits[1], m.digits[0]) if m.template in flips
                        else caption)
        return out_

    def remember(data):
        prompts.append(list(data.captions))

    for split in ("test", "novel"):
        from minicap.data import make_captioned_mnist
        remember(make_captioned_mnist(split, n=12))
        result = aligndraw_cli.round_trip(out, swapped, split=split, n=12, only_seen=False)
        assert result["accuracy"] == 1.0 and result["n"] == 12 and result["images"].shape == (12, 60, 60)
        wrong = aligndraw_cli.round_trip(out, lambda im: ["the digit one is at the top left of the image ."] * len(im),
                                         split=split, n=12, only_seen=False)
        assert wrong["accuracy"] < 0.5
    # the tiny run trained on 32 captions: only prompts among them count as seen
    seen = aligndraw_cli.round_trip(out, lambda im: [""] * len(im), split="test", n=50, only_seen=True)
    assert 0 < seen["n"] < 50 and seen["n_prompts"] == 50
    # pixels="sample": 0/1 pixels drawn from the means
    sampled = aligndraw_cli.round_trip(out, lambda im: [""] * len(im), split="novel", n=5, only_seen=False,
                                       pixels="sample")
    assert set(np.unique(sampled["images"])) <= {0.0, 1.0}
    assert not set(np.unique(wrong["images"])) <= {0.0, 1.0}


def test_encode_words_refuses_an_empty_list_in_one_line():
    with pytest.raises(MinicapError, match="no captions"):
        ad.encode_words([], Vocabulary.build(["the digit one ."]))


def test_accuracy_by_template_tells_swapped_digits_from_wrong_ones():
    """Per template: right, right digits (any order), right layout (any digits). Two digits swapped
    keep both and are wrong unless the two are equal; a corner read as another corner has the wrong
    layout; an unreadable caption is wrong on all three."""
    from minicap.data import TEMPLATE_NAMES, accuracy_by_template, make_captioned_mnist, parse_caption, render_caption
    data = make_captioned_mnist("test", n=200)
    swapped, corner = [], []
    for caption in data.captions:
        m = parse_caption(caption)
        swapped.append(render_caption(m.template, *m.digits[::-1]))
        corner.append(render_caption({"top left": "top right"}.get(m.template, m.template), *m.digits))
    table = accuracy_by_template(swapped, data)
    assert list(table) == list(TEMPLATE_NAMES) and sum(r["prompts"] for r in table.values()) == 200
    for t, (name, r) in enumerate(table.items()):
        assert r["digits"] == r["layout"] == 1.0
        digits = data.digits[data.template == t]
        same = 1.0 if name in ("top left", "top right", "bottom left", "bottom right") else (digits[:, 0] == digits[:, 1]).mean()
        assert r["correct"] == pytest.approx(same)
    table = accuracy_by_template(corner, data)
    assert (table["top left"]["correct"], table["top left"]["digits"], table["top left"]["layout"]) == (0.0, 1.0, 0.0)
    assert table["top right"]["correct"] == 1.0
    nonsense = accuracy_by_template(["nonsense"] * 200, data)["left"]
    assert (nonsense["correct"], nonsense["digits"], nonsense["layout"]) == (0.0, 0.0, 0.0)


def test_words_encoder_cli_keeps_its_encoder_on_resume_and_refuses_long_captions(tmp_path):
    """--caption-encoder words: trains, is recorded, a resume with the other encoder is refused, and a
    caption longer than the model's position vectors is refused in one line."""
    from minicap.checkpoint import load_checkpoint
    from minicap.commands.aligndraw import load_model
    small = ["--T", 1, "--enc", 4, "--dec", 4, "--z", 2, "--val-size", 4, "--eval-every", 1]
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 1, "--paper", "--caption-encoder", "words",
                  *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "caption encoder words" in result.stdout
    ck = load_checkpoint(tmp_path / "run" / "last.npz")
    assert ck.config["model"]["caption_encoder"] == "words" and "position_W" in ck.params
    assert not any(k.startswith("lang_") for k in ck.params)
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 2, "--resume", "--caption-encoder",
                  "bilstm", cwd=tmp_path)
    assert result.returncode == 2 and "caption_encoder" in result.stderr and "Traceback" not in result.stderr
    assert _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 2, "--resume", cwd=tmp_path).returncode == 0
    params, model, vocab = load_model(tmp_path / "run")
    words, mask = ad.encode_words(["the digit one is at the top of the digit " + "one " * 10], vocab)
    with pytest.raises(MinicapError, match="at most 16"):
        ad.generate(params, words, mask, model, np.random.default_rng(0))
    result = _cli("generate", tmp_path / "run", "the digit one is at the top of the digit " + "one " * 10, "--out",
                  tmp_path / "g.png", cwd=tmp_path)
    assert result.returncode == 2 and "at most 16" in result.stderr and "Traceback" not in result.stderr


def test_kl_weight_and_bilstm_words_cli_are_recorded_and_kept_on_resume(tmp_path):
    """--kl-weight 3 --caption-encoder bilstm+words: trains, both are recorded in the model config, the log
    says the loss is not the bound, a resume with another weight is refused, and a weight of 0 is refused
    in one line."""
    from minicap.checkpoint import load_checkpoint
    small = ["--T", 2, "--enc", 4, "--dec", 4, "--z", 2, "--val-size", 4, "--eval-every", 1]
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 1, "--kl-weight", 3,
                  "--caption-encoder", "bilstm+words", *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "KL weight 3" in result.stdout and "caption encoder bilstm+words" in result.stdout
    assert "training loss (recon + 3 KL)" in result.stdout
    model = load_checkpoint(tmp_path / "run" / "last.npz").config["model"]
    assert model["kl_weight"] == 3.0 and model["caption_encoder"] == "bilstm+words"
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 2, "--resume", "--kl-weight", 1,
                  cwd=tmp_path)
    assert result.returncode == 2 and "kl_weight" in result.stderr and "Traceback" not in result.stderr
    result = _cli("train", "aligndraw", "--out", tmp_path / "other", "--kl-weight", 0, cwd=tmp_path)
    assert result.returncode == 2 and "--kl-weight" in result.stderr and "Traceback" not in result.stderr


def test_layout_cli_is_recorded_and_kept_on_resume(tmp_path):
    """--layout trains, is recorded in the model config and said in the log; a resume keeps it without the
    flag, and a run without it cannot be resumed with it."""
    from minicap.checkpoint import load_checkpoint
    small = ["--T", 2, "--enc", 4, "--dec", 4, "--z", 2, "--val-size", 4, "--eval-every", 1]
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 1, "--paper", "--layout", *small,
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "write windows from the layout path (bilstm encoder)" in result.stdout
    assert load_checkpoint(tmp_path / "run" / "last.npz").config["model"]["layout"] is True
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 2, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "run" / "last.npz").config["model"]["layout"] is True
    result = _cli("train", "aligndraw", "--out", tmp_path / "plain", "--steps", 1, "--paper", *small, cwd=tmp_path)
    assert result.returncode == 0 and "write windows" not in result.stdout, result.stderr
    result = _cli("train", "aligndraw", "--out", tmp_path / "plain", "--steps", 2, "--resume", "--layout", cwd=tmp_path)
    assert result.returncode == 2 and "layout" in result.stderr and "Traceback" not in result.stderr
    result = _cli("train", "aligndraw", "--out", tmp_path / "mixed", "--steps", 1, "--paper", "--layout",
                  "--caption-encoder", "words", "--layout-encoder", "bilstm", *small, cwd=tmp_path)
    assert result.returncode == 0 and "layout path (bilstm encoder)" in result.stdout, result.stderr
    model = load_checkpoint(tmp_path / "mixed" / "last.npz").config["model"]
    assert model["caption_encoder"] == "words" and model["layout_encoder"] == "bilstm"
    result = _cli("train", "aligndraw", "--out", tmp_path / "blind", "--steps", 1, "--paper", "--layout",
                  "--layout-hides-digits", "--layout-max-span", 28, *small, cwd=tmp_path)
    assert result.returncode == 0 and "digit words hidden, windows at most 28 px" in result.stdout, result.stderr
    ck = load_checkpoint(tmp_path / "blind" / "last.npz")
    assert ck.config["model"]["layout_max_span"] == 28.0
    vocab = Vocabulary(ck.config["vocab"])
    assert sorted(vocab.words[i] for i in ck.config["model"]["layout_hidden"]) == sorted(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    for flag in (["--layout-encoder", "bilstm"], ["--layout-max-span", 28], ["--layout-hides-digits"],
                 ["--layout-to-generator"]):
        result = _cli("train", "aligndraw", "--out", tmp_path / "nolayout", "--paper", *flag, cwd=tmp_path)
        assert result.returncode == 2 and "add --layout" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "nolayout").exists()
    result = _cli("train", "aligndraw", "--out", tmp_path / "guided", "--steps", 1, "--paper", "--layout",
                  "--layout-to-generator", *small, cwd=tmp_path)
    assert result.returncode == 0 and "the generator sees the layout" in result.stdout, result.stderr
    result = _cli("train", "aligndraw", "--out", tmp_path / "guided", "--steps", 2, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / "guided" / "last.npz").config["model"]["layout_to_generator"] is True


def test_a_fresh_canvas_run_has_seen_every_test_prompt(tmp_path):
    """Trained on fresh canvases, every combination the test split holds was a training combination."""
    from minicap.commands import aligndraw as aligndraw_cli
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 1, "--T", 1, "--enc", 4, "--dec", 4,
                  "--z", 2, "--val-size", 4, "--eval-every", 1, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fresh training canvases" in result.stdout
    seen = aligndraw_cli.round_trip(tmp_path / "run", lambda im: [""] * len(im), split="test", n=20, only_seen=True)
    assert seen["n"] == seen["n_prompts"] == 20


@pytest.mark.slow
def test_short_default_training_learns_positions(tmp_path):
    """300 steps of the default model (a few minutes): the validation bound falls well below the empty
    canvas's (~900 nats), and drawings for a caption put their ink where the caption says."""
    from minicap.commands import aligndraw as aligndraw_cli
    result = _cli("train", "aligndraw", "--out", tmp_path / "run", "--steps", 300, "--eval-every", 300,
                  "--val-size", 200, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bounds = aligndraw_cli.test_bounds(tmp_path / "run", n=200)
    assert bounds["test"] < 400 and bounds["novel"] < 400
    params, model, vocab = aligndraw_cli.load_model(tmp_path / "run")
    rng = np.random.default_rng(0)
    for caption, (rows, cols) in (("the digit seven is at the bottom left of the image", (slice(30, 60), slice(0, 30))),
                                  ("the digit two is at the top right of the image", (slice(0, 30), slice(30, 60)))):
        images = aligndraw_cli.generate_for_captions(params, model, vocab, [caption] * 8, rng)
        ink_in_quadrant = images[:, rows, cols].sum() / images.sum()
        assert ink_in_quadrant > 0.6, (caption, ink_in_quadrant)
