"""The image encoder: annotation grid and its pixel regions, gradients, encoding and caching, the
shipped frozen weights, `minicap train encoder`, and the bench workload."""

import numpy as np
import pytest

from minicap import MinicapError, backend
from minicap.cli import main
from minicap.gradcheck import check_model
from minicap.data import features
from minicap.models import encoder as enc


def positive_params(seed=0, channels=enc.DEFAULT_CHANNELS):
    """Weights all > 0 and biases 0: a blank image gives all-zero features, and any bright pixel makes
    every unit whose receptive field holds it strictly positive (ReLU and max-pool pass positives)."""
    params = enc.init_params(np.random.default_rng(seed), channels, dtype=np.float64)
    return {k: (np.abs(v) + 0.01 if k.endswith("_w") else np.zeros_like(v)) for k, v in params.items()}


def test_a_60x60_canvas_gives_a_7x7_grid_of_49_vectors():
    assert enc.grid_shape(60) == (7, 7) and enc.grid_shape(36) == (4, 4) and enc.grid_shape((60, 36)) == (7, 4)
    params = enc.init_params(np.random.default_rng(0))
    feats = enc.encode(np.random.default_rng(1).random((3, 60, 60)), params)
    assert feats.shape == (3, 49, 64) and feats.dtype == np.float32
    assert len(enc.location_centres(60)) == len(enc.location_boxes(60)) == len(enc.location_cells(60)) == 49


def test_receptive_field_geometry_follows_from_the_layers():
    """Centres 8 pixels apart starting at 6 (pixel p spans [p, p+1)), fields 34 pixels wide."""
    centres = enc.location_centres(60).reshape(7, 7, 2)
    np.testing.assert_array_equal(centres[:, 0, 0], 6 + 8 * np.arange(7))
    np.testing.assert_array_equal(centres[0, :, 1], 6 + 8 * np.arange(7))
    boxes = enc.location_boxes(60).reshape(7, 7, 4)
    np.testing.assert_array_equal(boxes[3, 4], [13, 21, 34, 34])          # an inner field, not clipped
    np.testing.assert_array_equal(boxes[0, 0], [0, 0, 23, 23])            # [-11, 23) clipped to the canvas
    np.testing.assert_array_equal(enc.location_cells(60).reshape(7, 7, 4)[0, :3],
                                  [[0, 0, 10, 10], [0, 10, 10, 8], [0, 18, 10, 8]])


@pytest.mark.parametrize("pixel", [(0, 0), (30, 30), (17, 44), (59, 3), (59, 59), (5, 21)])
def test_a_single_bright_pixel_changes_exactly_the_locations_whose_box_holds_it(pixel):
    image = np.zeros((1, 60, 60))
    image[0, pixel[0], pixel[1]] = 1.0
    feats = enc.encode(image, positive_params())[0]                       # (L, D)
    changed = np.any(feats != 0, axis=1)   # exact on purpose: sums of zeros are 0 in any order, on any CPU
    r, c, h, w = enc.location_boxes(60).T
    inside = (r <= pixel[0]) & (pixel[0] < r + h) & (c <= pixel[1]) & (pixel[1] < c + w)
    np.testing.assert_array_equal(changed, inside)
    # the location whose centre is nearest the pixel is one of them, and its cell holds the pixel
    nearest = np.argmin(((enc.location_centres(60) - (np.array(pixel) + 0.5)) ** 2).sum(axis=1))
    assert changed[nearest]
    cr, cc, ch, cw = enc.location_cells(60)[nearest]
    assert cr <= pixel[0] < cr + ch and cc <= pixel[1] < cc + cw


def test_with_random_weights_a_pixel_never_reaches_beyond_its_boxes():
    params = enc.init_params(np.random.default_rng(2), dtype=np.float64)
    params = {k: v + (0.05 if k.endswith("_b") else 0) for k, v in params.items()}  # non-zero background
    rng = np.random.default_rng(3)
    base = rng.random((1, 60, 60)) * 0.3
    r, c, h, w = enc.location_boxes(60).T
    for pr, pc in [(10, 50), (44, 7)]:
        bright = base.copy()
        bright[0, pr, pc] = 5.0
        # "changed" beyond rounding: BLAS may round the same location differently when the rest of its
        # input changes (MKL's results depend on memory alignment), while a 5.0 pixel moves it by far more
        changed = ~np.isclose(enc.encode(bright, params)[0], enc.encode(base, params)[0],
                              rtol=50 * np.finfo(np.float32).eps, atol=1e-5).all(axis=1)
        inside = (r <= pr) & (pr < r + h) & (c <= pc) & (pc < c + w)
        assert changed.any() and not np.any(changed & ~inside)


def test_cells_tile_the_canvas_and_attention_maps_keep_their_mass():
    cells = enc.location_cells(60)
    cover = np.zeros((60, 60), int)
    for r, c, h, w in cells:
        cover[r:r + h, c:c + w] += 1
    assert np.all(cover == 1)
    centres = enc.location_centres(60)
    assert np.all((cells[:, 0] <= centres[:, 0]) & (centres[:, 0] < cells[:, 0] + cells[:, 2]))
    alpha = np.random.default_rng(4).dirichlet(np.ones(49), size=(2, 3))   # (N, T, L)
    maps = enc.attention_map(alpha, 60)
    assert maps.shape == (2, 3, 60, 60)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, rtol=1e-6)
    r, c, h, w = cells[10]
    np.testing.assert_allclose(maps[..., r:r + h, c:c + w].sum(axis=(-2, -1)), alpha[..., 10], rtol=1e-6)
    with pytest.raises(ValueError, match="locations"):
        enc.attention_map(np.ones(10), 60)


@pytest.mark.parametrize("impl", ["numpy", "numba"])
def test_whole_model_gradients_in_float64(impl):
    """The CNN end to end (4 convs, 3 max-pools, average pool, affine, softmax loss), random non-zero biases."""
    rng = np.random.default_rng(5)
    params = enc.init_params(rng, channels=(3, 4, 4, 5), dtype=np.float64)
    params = {k: v + (0.1 * rng.standard_normal(v.shape) if k.endswith("_b") else 0) for k, v in params.items()}
    batch = (rng.random((3, 14, 14)), np.array([1, 7, 3]))
    with backend.using(impl):
        errors = check_model(enc.loss, params, batch, max_coords=12)
    assert set(errors) == set(params)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: {errors[worst]:.2e}"


def test_encode_is_the_feature_map_flattened_row_major_in_any_batch_size():
    params = enc.init_params(np.random.default_rng(6))
    images = np.random.default_rng(7).random((5, 60, 60)).astype(np.float32)
    feats, _ = enc.features_forward(images, params)
    # Batches of 2 and of 5 are different BLAS calls: equal to float32 rounding, not bit for bit (on
    # some CPUs they differ by ~5 eps of the largest feature). A layout error would be off by O(1).
    tol = 50 * np.finfo(np.float32).eps
    expected = feats.reshape(5, 49, -1)
    atol = tol * np.abs(expected).max()
    np.testing.assert_allclose(enc.encode(images, params, batch_size=2), expected, rtol=tol, atol=atol)
    np.testing.assert_allclose(feats[2, 3, 5], enc.encode(images, params)[2, 3 * 7 + 5], rtol=tol, atol=atol)
    uint8 = (images * 255).round().astype(np.uint8)   # uint8 grey levels are scaled to [0, 1]
    np.testing.assert_allclose(enc.encode(uint8, params), enc.encode(uint8 / 255, params), atol=1e-5)


def test_features_are_cached_once_per_images_and_weights(tmp_path, monkeypatch):
    params = enc.init_params(np.random.default_rng(8))
    images = np.random.default_rng(9).random((4, 60, 60)).astype(np.float32)
    first = features.cached_encode(images, params, tmp_path, name="toy", progress=False)
    assert len(list(tmp_path.glob("features-toy-*.npy"))) == 1

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cached features should have been read")
    monkeypatch.setattr(enc, "encode", no_encoding)
    np.testing.assert_array_equal(features.cached_encode(images, params, tmp_path, name="toy", progress=False), first)
    monkeypatch.undo()
    other = dict(params, conv4_b=params["conv4_b"] + 1)   # other weights: other features, another file
    features.cached_encode(images, other, tmp_path, name="toy", progress=False)
    features.cached_encode(images[:3], params, tmp_path, name="toy", progress=False)   # other images: another file
    assert len(list(tmp_path.glob("features-toy-*.npy"))) == 3


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(MinicapError, match="do not exist.*minicap train encoder"):
        enc.load_encoder(tmp_path / "nothing.npz")


@pytest.mark.skipif(not enc.DEFAULT_WEIGHTS.exists(), reason="the frozen encoder weights are not shipped yet")
def test_the_shipped_encoder_classifies_held_out_digits():
    """data/encoder_mnist.npz: >= 97% on the 500 test digits, and the annotation vectors where a digit
    lies on a 60x60 canvas still say which digit it is (the classifier head on their mean)."""
    from minicap.data import load_mnist_5k, make_captioned_mnist
    params = enc.load_encoder()
    test_x, test_y = load_mnist_5k("test")
    assert np.mean(enc.predict(params, enc.centred_digits(test_x)) == test_y) >= 0.97
    data = make_captioned_mnist("test", n=100)
    assert enc.digit_readout_accuracy(params, data) >= 0.9
    assert enc.digit_readout_accuracy(enc.init_params(np.random.default_rng(0)), data) < 0.4   # untrained: ~chance


def test_train_encoder_command_writes_a_frozen_encoder_and_resumes(tmp_path, capsys):
    out = tmp_path / "enc"
    args = ["train", "encoder", "--out", str(out), "--steps", "4", "--batch", "8", "--eval-every", "2",
            "--channels", "2,3,3,4"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and (out / "encoder.npz").exists() and (out / "best.npz").exists()
    params = enc.load_encoder(out)                  # a folder means its encoder.npz
    assert params["conv4_w"].shape == (3, 3, 3, 4)
    assert enc.encode(np.zeros((1, 60, 60)), params).shape == (1, 49, 4)
    assert main(args) == 2                          # refuses to overwrite a run without --resume
    assert "--resume" in capsys.readouterr().err
    assert main(args[:5] + ["6", "--resume"]) == 0  # continues from step 4 to 6
    from minicap.checkpoint import load_checkpoint
    assert load_checkpoint(out / "last.npz").step == 6
    assert main(args[:5] + ["8", "--resume", "--batch", "16"]) == 2


def test_bench_workload_runs_for_both_backends():
    for impl in ("numpy", "numba"):
        with backend.using(impl):
            assert np.isfinite(enc.bench_conv_encoder(np.float32, quick=True)())


@pytest.mark.slow
def test_default_training_reaches_97_percent(tmp_path, capsys):
    assert main(["train", "encoder", "--out", str(tmp_path)]) == 0
    from minicap.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path / "encoder.npz").config["test_accuracy"] >= 0.97
