"""`--encoder scratch` (minicap.models.vqa_pixels): a CNN trained from the pixels with the VQA model.

Whole-model float64 gradient checks including the CNN's weights (every parameter, every model, rgb and
grey), d(features) of every VQA model against finite differences, the Numba twins against NumPy; end
to end on a small generated file whose answers need colour (the scratch CNN learns the colour
question, the frozen digit encoder, which reads grey, stays at chance), exact resume, ask and evaluate
on a scratch checkpoint, and the errors."""
import json

import numpy as np
import pytest
from PIL import Image

from minicap import backend
from minicap.checkpoint import load_checkpoint
from minicap.cli import main
from minicap.commands import vqa as cmd
from minicap.data.vqa_files import EXAMPLE_COLOURS, load_vqa_json, write_example_file
from minicap.errors import MinicapError
from minicap.gradcheck import check_model, numerical_gradient, rel_error
from minicap.models import vqa
from minicap.models import vqa_pixels as vp

TOKENS = np.array([[3, 4, 5, 0, 0],     # padded questions of different lengths
                   [1, 2, 0, 0, 0],
                   [8, 7, 6, 5, 4],
                   [2, 2, 3, 0, 0]])
CASES = [("question", {}), ("image", {}), ("naive", {}), ("naive", {"combine": "concat"}),
         ("memnet", {"hops": 1}), ("memnet", {"hops": 2}), ("san", {"hops": 1}), ("san", {"hops": 2})]


def tiny(model, color="rgb", dtype=np.float64, seed=0, **overrides):
    """A small model on 9x9 images: two blocks (3 and 4 filters) -> a 2x2 grid of 4-vectors; random
    non-zero biases everywhere (a zero bias can hide a wrong bias gradient)."""
    pixels = vp.PixelConfig(channels=(3, 4), color=color, image_size=9)
    config = vqa.VQAConfig(**{**dict(model=model, hops=2, vocab_size=9, n_answers=7, locations=pixels.locations,
                                     feature_size=pixels.feature_size, embed=3, hidden=4, attention_size=3, mlp=5,
                                     feature_scale=0.7), **overrides})
    rng = np.random.default_rng(seed)
    params = vp.init_params(config, pixels, rng, dtype)
    params = {k: (v + 0.2 * rng.standard_normal(v.shape)).astype(dtype) for k, v in params.items()}
    batch = {"images": rng.random((4,) + pixels.image_shape()).astype(dtype), "tokens": TOKENS.copy(),
             "answers": np.array([0, 3, 6, 3])}
    return config, pixels, params, batch


@pytest.fixture
def numpy_backend():
    with backend.using("numpy"):
        yield


# every model on RGB; grey (one input channel: only the first filter's shape changes) on two of them
GRAD_CASES = [(m, o, "rgb") for m, o in CASES] + [("naive", {}, "grey"), ("san", {"hops": 2}, "grey")]


@pytest.mark.parametrize("model,overrides,color", GRAD_CASES, ids=[f"{m}-{o}-{c}" for m, o, c in GRAD_CASES])
def test_whole_model_gradients_with_the_cnn(numpy_backend, model, overrides, color):
    config, pixels, params, batch = tiny(model, color, **overrides)
    errors = check_model(lambda p, b, r: vp.loss(p, b, r, config, pixels), params, batch, max_coords=15)
    assert set(errors) == set(params) and any(k.startswith("pixel_conv") for k in errors)
    if model == "question":   # it never reads the image: the CNN's gradient is exactly zero
        _, grads = vp.loss(params, batch, None, config, pixels)
        assert all(not grads[k].any() for k in grads if k.startswith("pixel_conv"))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("model,overrides", CASES, ids=[f"{m}-{o}" for m, o in CASES])
def test_features_gradient_of_every_model(numpy_backend, model, overrides):
    """vqa.backward(..., features_grad=True) against finite differences in the features themselves
    (what the CNN's backward continues from; if a model's backward changes, this says so)."""
    from minicap.nn.temporal import log_softmax
    config, pixels, params, batch = tiny(model, **overrides)
    feats = np.random.default_rng(5).standard_normal((4, config.locations, config.feature_size))

    def loss_of(f):
        logits, _, cache = vqa.forward(params, f, batch["tokens"], config)
        logp = log_softmax(logits)
        return -logp[np.arange(4), batch["answers"]].mean(), logp, cache

    _, logp, cache = loss_of(feats)
    dlogits = np.exp(logp)
    dlogits[np.arange(4), batch["answers"]] -= 1
    grads, dfeats = vqa.backward(dlogits / 4, cache, params, config, features_grad=True)
    assert dfeats.shape == feats.shape and set(grads) == set(vqa.backward(dlogits / 4, cache, params, config))
    num = numerical_gradient(lambda: loss_of(feats)[0], feats)
    assert rel_error(dfeats, num) < 1e-7 if model != "question" else not dfeats.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_twins_agree(dtype):
    config, pixels, params, batch = tiny("san", dtype=dtype)
    with backend.using("numpy"):
        ref_loss, ref = vp.loss(params, batch, None, config, pixels)
    with backend.using("numba"):
        loss, grads = vp.loss(params, batch, None, config, pixels)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert abs(loss - ref_loss) < tol
    for k in ref:
        np.testing.assert_allclose(grads[k], ref[k], rtol=tol, atol=tol, err_msg=k)


def test_default_cnn_gives_the_frozen_encoders_grid_on_60x60():
    pixels = vp.PixelConfig()   # 16, 32, 64 filters: 60 -> 30 -> 15 -> 7
    config = vqa.VQAConfig(model="naive", locations=pixels.locations, feature_size=pixels.feature_size)
    params = vp.init_params(config, pixels, np.random.default_rng(0))
    feats, _ = vp.encoder_forward(params, np.zeros((2, 60, 60, 3), np.uint8), pixels)
    assert feats.shape == (2, 49, 64) and pixels.locations == 49
    # the VQA model's own parameters are drawn first: the same as on frozen features
    plain = vqa.init_params(config, np.random.default_rng(0))
    assert all(np.array_equal(plain[k], params[k]) for k in plain)


def test_wrong_images_are_refused_with_the_shape_expected():
    config, pixels, params, batch = tiny("naive")
    with pytest.raises(MinicapError, match=r"9x9 RGB images.*\(N, 9, 9, 3\); got shape \(4, 9, 9\)"):
        vp.forward(params, batch["images"][..., 0], batch["tokens"], config, pixels)
    with pytest.raises(MinicapError, match=r"got shape \(4, 8, 8, 3\)"):
        vp.forward(params, batch["images"][:, :8, :8], batch["tokens"], config, pixels)
    with pytest.raises(ValueError, match="nothing of a 8x8"):
        vp.PixelConfig(channels=(2, 2, 2, 2), image_size=8)


# --- end to end, on a generated file whose answers need colour ----------------------------------------
SMALL = ["--image-size", "16", "--embed", "8", "--hidden", "16", "--mlp", "16", "--batch", "32", "--eval-every", "100"]


def colour_accuracy(run, folder):
    """Accuracy of a trained run on the colour and on the shape questions of fresh images (another seed)."""
    params, config, encoder, ck = cmd.load_vqa(run)
    s = cmd.image_settings(ck)
    data = load_vqa_json(write_example_file(folder, 150, 16, seed=1), size=(16, 16),
                         mode=cmd.MODES[s["color"]], held_out=0)
    tokens = data.encode(data.questions)
    pixels = cmd.pixel_config(ck)
    if pixels is not None:
        probs, _ = vp.predict(params, data.images, tokens, config, pixels)
    else:
        from minicap.models.encoder import encode
        probs, _ = vqa.predict(params, encode(data.images, encoder), tokens, config)
    said = np.array(ck["answers"])[probs.argmax(axis=1)]
    right = said == np.array(data.answers_text)
    colour = np.array(["colour" in q for q in data.questions])
    return right[colour].mean(), right[~colour].mean()


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    path = write_example_file(root / "data", 120, 16)
    for encoder in ("scratch", "mnist"):
        extra = ["--scratch-channels", "8,16"] if encoder == "scratch" else []
        assert main(["train", "vqa", "--model", "naive", "--data", str(path), "--encoder", encoder, "--steps", "300",
                     "--out", str(root / encoder), "--cache", str(root / "cache"), *SMALL, *extra]) == 0
    return root, path


def test_scratch_learns_colour_that_the_frozen_digit_encoder_cannot_see(colours):
    root, _ = colours
    ck = load_checkpoint(root / "scratch" / "last.npz")
    assert ck.config["settings"]["color"] == "rgb"           # decided from the images
    assert ck.config["pixels"] == {"channels": [8, 16], "color": "rgb", "image_size": 16}
    assert "encoder/conv1_w" not in ck.extra                   # no frozen weights: the CNN is in the params
    scratch_colour, _ = colour_accuracy(root / "scratch", root / "fresh")
    mnist_colour, _ = colour_accuracy(root / "mnist", root / "fresh")
    # 3 colours: chance is 1/3 (on 150 fresh questions, one standard error is 4 points)
    assert scratch_colour > 0.8, (scratch_colour, mnist_colour)
    assert mnist_colour < 0.5, (scratch_colour, mnist_colour)
    # (the shape questions need more than 300 steps on 16x16 images: see docs/vqa.md for a real run)


def test_evaluate_and_ask_a_scratch_checkpoint(colours, tmp_path, capsys):
    root, _ = colours
    capsys.readouterr()
    assert main(["evaluate", str(root / "scratch"), "--split", "val", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["encoder"] == "scratch" and set(scores["per_answer"]) <= set(EXAMPLE_COLOURS) | {"square", "circle"}
    # an RGB PNG of another size is read as training read the file: resized to 16x16
    pixels = np.zeros((40, 40, 3), np.uint8)
    pixels[10:30, 10:30] = EXAMPLE_COLOURS["blue"]
    Image.fromarray(pixels).save(tmp_path / "blue.png")
    assert main(["ask", str(root / "scratch"), str(tmp_path / "blue.png"), "what colour is the shape ?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("what colour is the shape ? -> ") and len(out.splitlines()) == 4
    # a grey image for an rgb model: converted (three equal channels), with a note
    Image.fromarray(pixels[..., 0]).save(tmp_path / "grey.png")
    assert main(["ask", str(root / "scratch"), str(tmp_path / "grey.png"), "what shape is it ?"]) == 0
    assert "is grey; the model reads RGB" in capsys.readouterr().err


def test_ask_errors_on_a_scratch_checkpoint(colours, tmp_path, capsys):
    root, _ = colours
    run = str(root / "scratch")
    for argv, message in [
        ([run, str(tmp_path / "nope.png"), "what shape is it ?"], "nope.png"),
        ([run, "test:3", "what shape is it ?"], "give an image file"),
        ([run, __file__, "what shape is it ?"], "not a readable image"),
        ([run, str(root / "data" / "img" / "0000.png"), "what size is it ?"], "'size'"),
    ]:
        assert main(["ask", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["train", "vqa", "--model", "san", "--hops", "1", "--data", str(root / "data" / "questions.json"),
                 "--encoder", "scratch", "--scratch-channels", "2", "--steps", "1", "--out", str(tmp_path / "san"),
                 *SMALL]) == 0
    assert main(["ask", str(tmp_path / "san"), str(tmp_path / "a.png"), "what shape is it ?",
                 "--attention-png", str(tmp_path / "att.png")]) == 2
    assert "cannot draw" in capsys.readouterr().err


def test_resume_is_exact_and_refuses_other_image_settings(colours, tmp_path, capsys):
    _, path = colours
    common = ["train", "vqa", "--model", "san", "--hops", "1", "--data", str(path), "--encoder", "scratch",
              "--scratch-channels", "4,4", "--color", "rgb", *SMALL, "--eval-every", "3", "--lr-decay", "none"]
    assert main([*common, "--steps", "6", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--steps", "3", "--out", str(tmp_path / "resumed")]) == 0
    for change in (["--encoder", "mnist"], ["--color", "grey"], ["--image-size", "20"], ["--scratch-channels", "4"]):
        assert main([*common, *change, "--steps", "6", "--out", str(tmp_path / "resumed"), "--resume"]) == 2, change
        assert "drop --" in capsys.readouterr().err
    assert main(["train", "vqa", "--steps", "6", "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    a, b = load_checkpoint(tmp_path / "straight" / "last.npz"), load_checkpoint(tmp_path / "resumed" / "last.npz")
    assert a.step == b.step == 6 and set(a.params) == set(b.params)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


def test_scratch_on_mnist_vqa_plumbing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vqa", "--model", "naive", "--encoder", "scratch", "--scratch-channels", "2,2,3",
                 "--train-size", "20", "--val-size", "5", "--steps", "2", "--embed", "3", "--hidden", "4",
                 "--mlp", "4", "--batch", "4", "--eval-every", "2", "--out", str(out)]) == 0
    assert load_checkpoint(out / "last.npz").config["pixels"]["image_size"] == 60
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "novel", "--n", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8
    assert main(["ask", str(out), "test:3", "is there a seven ?"]) == 0


@pytest.mark.parametrize("argv,message", [
    (["--color", "rgb"], "--color rgb needs --encoder scratch"),
    (["--encoder", "scratch", "--model", "question"], "never looks at the image"),
    (["--encoder", "scratch", "--image-size", "32"], "mnist-vqa scenes are 60x60"),
    (["--scratch-channels", "8"], "is for --encoder scratch"),
    (["--encoder", "scratch", "--scratch-channels", "8,x"], "comma-separated"),
    (["--encoder", "no/such/weights.npz"], "weights.npz"),
    (["--encoder", "scratch", "--scratch-channels", "8,8,8,8,8"], "1 to 4"),
    (["--data", "x.json", "--image-size", "11"], "use 12 or more"),
])
def test_option_errors(tmp_path, capsys, argv, message):
    assert main(["train", "vqa", *argv, "--out", str(tmp_path / "run"), "--train-size", "5"]) == 2
    assert message in capsys.readouterr().err


def test_too_many_blocks_for_the_image_size_is_one_line(colours, tmp_path, capsys):
    _, path = colours
    assert main(["train", "vqa", "--data", str(path), "--encoder", "scratch", "--image-size", "8",
                 "--scratch-channels", "2,2,2,2", "--out", str(tmp_path / "run")]) == 2
    assert "nothing of a 8x8 image" in capsys.readouterr().err
