"""Real photos end to end: `data export ... --format karpathy`, `train captioner --data karpathy`, and
`evaluate` / `caption` of such a run (minicap/commands/real_photos.py, minicap/data/karpathy.py)."""
import json

import numpy as np
import pytest

from minicap.checkpoint import load_checkpoint
from minicap.cli import main
from minicap.data import Vocabulary
from minicap.data.karpathy import FeatureFile, encode_training_captions, read_karpathy_index
from minicap.errors import MinicapError

SIZES = ["--train-size", "48", "--val-size", "12"]
MODEL = ["--embed", "6", "--hidden", "8", "--attention-size", "5", "--batch", "8", "--eval-every", "3",
         "--log-every", "3"]



@pytest.fixture(scope="module")
def exported(tmp_path_factory, encoder_path):
    """Captioned MNIST exported in Karpathy's format: 48 train, 12 val, 12 test images."""
    root = tmp_path_factory.mktemp("export")
    assert main(["data", "export", "mnist-captions", "--format", "karpathy", "--out", str(root / "mnist"),
                 "--train-size", "48", "--val-size", "12", "--test-size", "12", "--encoder", str(encoder_path),
                 "--cache", str(root / "cache")]) == 0
    return root


def train_karpathy(folder, out, *extra):
    return main(["train", "captioner", "--data", "karpathy", "--json", str(folder / "dataset.json"),
                 "--features", str(folder / "features.npy"), "--out", str(out), *MODEL, *extra])


def write_dataset(folder, sentences_per_image=(1, 3, 2, 5), splits=None, features=None, n=12, L=4, D=3, seed=0):
    """A small Karpathy-format dataset of random captions and features; returns the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = "a dog cat runs on the grass beach in red ball".split()
    splits = splits or ["train"] * (n - 4) + ["val"] * 2 + ["test"] * 2
    images = [{"split": splits[i], "filename": f"im{i}.jpg",
               "sentences": [{"raw": " ".join(rng.choice(words, rng.integers(3, 8)))}
                             for _ in range(sentences_per_image[i % len(sentences_per_image)])]}
              for i in range(n)]
    (folder / "dataset.json").write_text(json.dumps({"images": images}))
    np.save(folder / "features.npy", rng.standard_normal((n, L, D)).astype(np.float32) if features is None else features)
    return folder


def test_export_writes_the_karpathy_format(exported):
    folder = exported / "mnist"
    images = json.loads((folder / "dataset.json").read_text())["images"]
    assert [im["split"] for im in images] == ["train"] * 48 + ["val"] * 12 + ["test"] * 12
    assert all(len(im["sentences"]) == 1 for im in images[:48])           # training: the dataset's caption
    assert any(len(im["sentences"]) == 2 for im in images[48:])           # val/test: both true phrasings
    assert images[0]["sentences"][0]["tokens"][:2] == ["the", "digit"]
    feats = np.load(folder / "features.npy", mmap_mode="r")
    assert feats.shape[:2] == (72, 49) and feats.dtype == np.float32
    assert len(list((folder / "images").glob("*.png"))) == 72
    assert main(["data", "export", "mnist-captions", "--out", str(folder), "--train-size", "2"]) == 2  # not over it


def test_the_karpathy_path_trains_exactly_like_the_native_path(exported, encoder_path, tmp_path, capsys):
    """Same data, same seed: the plumbing loses nothing (one caption per training image, min count 1)."""
    assert main(["train", "captioner", "--out", str(tmp_path / "native"), "--steps", "9", "--encoder",
                 str(encoder_path), "--cache", str(exported / "cache"), *SIZES, *MODEL]) == 0
    assert train_karpathy(exported / "mnist", tmp_path / "karpathy", "--steps", "9", "--min-count", "1",
                          "--val-size", "12") == 0
    native = load_checkpoint(tmp_path / "native" / "last.npz")
    karpathy = load_checkpoint(tmp_path / "karpathy" / "last.npz")
    assert native.extra["vocab"].tolist() == karpathy.extra["vocab"].tolist()
    for name in native.params:
        np.testing.assert_allclose(karpathy.params[name], native.params[name], rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    scores = []
    for run in ("native", "karpathy"):
        assert main(["evaluate", str(tmp_path / run / "last.npz"), "--split", "test", "--n", "12", "--json",
                     "--cache", str(exported / "cache")]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    for metric in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert scores[1][metric] == pytest.approx(scores[0][metric], abs=1e-6)


def test_evaluate_scores_against_every_reference_and_caption_draws_over_the_photo(exported, tmp_path, capsys):
    assert train_karpathy(exported / "mnist", tmp_path / "run", "--steps", "3", "--min-count", "1") == 0
    out = tmp_path / "captions.json"
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test", "--beam", "3", "--captions-out", str(out)]) == 0
    table = capsys.readouterr().out
    for metric in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert metric in table
    rows = json.loads(out.read_text())
    images = json.loads((exported / "mnist" / "dataset.json").read_text())["images"]
    assert len(rows) == 12 and rows[0]["filename"] == "test_00000.png"
    assert all(r["references"] == [s["raw"] for s in images[r["row"]]["sentences"]] for r in rows)
    png = tmp_path / "attention.png"
    assert main(["caption", str(tmp_path / "run"), "test:1", "val_00002.png", "--image-folder",
                 str(exported / "mnist" / "images"), "--attention-png", str(png)]) == 0
    assert png.stat().st_size > 0 and "reference:" in capsys.readouterr().out
    assert main(["caption", str(tmp_path / "run"), "test:12"]) == 2
    assert main(["caption", str(tmp_path / "run"), "test:1", "--attention-png", str(png)]) == 2
    assert "--image-folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "run"), "--split", "novel"]) == 2


def test_many_references_vocabulary_truncation_and_exact_resume(tmp_path, capsys):
    """1 to 5 captions per image, one drawn per image per step; 8 straight steps = 4, then 4 resumed."""
    data = write_dataset(tmp_path / "d")
    assert train_karpathy(data, tmp_path / "straight", "--steps", "8", "--max-length", "4", "--min-count", "2") == 0
    err = capsys.readouterr().err
    assert "cut to 4 words" in err and "became <UNK>" in err
    assert train_karpathy(data, tmp_path / "split", "--steps", "4", "--max-length", "4", "--min-count", "2") == 0
    assert train_karpathy(data, tmp_path / "split", "--steps", "8", "--resume") == 0
    a, b = load_checkpoint(tmp_path / "straight" / "last.npz"), load_checkpoint(tmp_path / "split" / "last.npz")
    assert a.step == b.step == 8 and a.config["data"]["max_length"] == 4
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert train_karpathy(data, tmp_path / "split", "--steps", "9", "--resume", "--min-count", "3") == 2
    assert "min_count = 2" in capsys.readouterr().err


def test_training_draws_one_caption_per_image_from_all_its_references(tmp_path):
    index = read_karpathy_index(write_dataset(tmp_path, sentences_per_image=(1, 3)) / "dataset.json")
    rows = index.split_rows("train")
    vocab = Vocabulary.build([c for r in rows for c in index.references[r]])
    caps = encode_training_captions(index, rows, vocab, max_length=20)
    assert len(caps.captions) == sum(len(index.references[r]) for r in rows)
    rng = np.random.default_rng(0)
    picked = np.concatenate([caps.pick(np.array([1, 3]), rng) for _ in range(200)])
    assert set(picked.tolist()) == {1, 2, 3, 5, 6, 7}        # every reference of images 1 and 3
    assert np.all(caps.image[picked] == np.tile([1, 3], 200))
    one = encode_training_captions(index, rows[::2], vocab, 20)  # one caption each: the rng is not touched
    state = rng.bit_generator.state
    assert one.pick(np.array([0, 2]), rng).tolist() == [0, 2] and rng.bit_generator.state == state


def test_features_are_gathered_from_the_map_in_any_order(tmp_path):
    data = write_dataset(tmp_path)
    feats = FeatureFile(data / "features.npy", 12, data / "dataset.json")
    full = np.load(data / "features.npy")
    rows = np.array([7, 2, 7, 0])
    np.testing.assert_array_equal(feats.gather(rows), full[rows])
    assert isinstance(feats.array, np.memmap)
    assert feats.rms(np.arange(12)) == pytest.approx(float(np.sqrt(np.mean(full.astype(np.float64) ** 2))))


def test_synthetic_export_trains(tmp_path):
    assert main(["data", "export", "synthetic", "--images", "40", "--locations", "4", "--dim", "3",
                 "--out", str(tmp_path / "s")]) == 0
    assert np.load(tmp_path / "s" / "features.npy", mmap_mode="r").shape == (40, 4, 3)
    assert train_karpathy(tmp_path / "s", tmp_path / "run", "--steps", "2", "--min-count", "1") == 0


def _bad(tmp_path, name, **kwargs):
    return write_dataset(tmp_path / name, **kwargs)


@pytest.mark.parametrize("problem, expected", [
    ("n_mismatch", "holds features for 11 images"),
    ("no_sentences", "has no sentences"),
    ("no_val", "no images in split 'val'"),
    ("only_unknown", "has only words rarer than the minimum word count"),
    ("int_dtype", "expected floating-point features"),
    ("rank", "expected features of shape (N, L, D)"),
    ("not_square", "square grid"),
    ("not_npy", "not a .npy array file"),
])
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written_over(tmp_path, capsys, problem, expected):
    good = write_dataset(tmp_path / "good")
    assert train_karpathy(good, tmp_path / "run", "--steps", "2", "--min-count", "1") == 0
    before = (tmp_path / "run" / "last.npz").read_bytes()
    rng = np.random.default_rng(1)
    if problem == "n_mismatch":
        data = _bad(tmp_path, problem, features=rng.standard_normal((11, 4, 3)).astype(np.float32))
    elif problem == "int_dtype":
        data = _bad(tmp_path, problem, features=np.ones((12, 4, 3), np.int64))
    elif problem == "rank":
        data = _bad(tmp_path, problem, features=np.ones((12, 12), np.float32))
    elif problem == "not_square":
        data = _bad(tmp_path, problem, features=np.ones((12, 5, 3), np.float32))
    elif problem == "no_val":
        data = _bad(tmp_path, problem, splits=["train"] * 10 + ["test"] * 2)
    else:
        data = _bad(tmp_path, problem)
        d = json.loads((data / "dataset.json").read_text())
        if problem == "no_sentences":
            d["images"][3]["sentences"] = []
        elif problem == "only_unknown":
            d["images"][0]["sentences"] = [{"raw": "zebra"}, {"raw": "a dog"}]
        (data / "dataset.json").write_text(json.dumps(d))
        if problem == "not_npy":
            (data / "features.npy").write_bytes(b"not numpy")
    capsys.readouterr()
    if problem == "only_unknown":   # "zebra" is seen once: rarer than --min-count 2 (a new run in another folder)
        assert train_karpathy(data, tmp_path / "run2", "--steps", "4", "--min-count", "2") == 2
        assert not (tmp_path / "run2" / "last.npz").exists()
    else:
        assert train_karpathy(data, tmp_path / "run", "--steps", "4", "--resume", "--min-count", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minicap: error: ") and expected in err, err
    assert str(data) in err
    assert (tmp_path / "run" / "last.npz").read_bytes() == before


def test_option_mistakes(tmp_path, capsys):
    data = write_dataset(tmp_path / "d")
    assert main(["train", "captioner", "--json", str(data / "dataset.json"), "--out", str(tmp_path / "r")]) == 2
    assert "add --data karpathy" in capsys.readouterr().err
    assert main(["train", "captioner", "--data", "karpathy", "--out", str(tmp_path / "r")]) == 2
    assert "needs --json" in capsys.readouterr().err
    assert train_karpathy(data, tmp_path / "r", "--metric", "accuracy") == 2
    assert "CIDEr" in capsys.readouterr().err
    with pytest.raises(MinicapError, match="unknown split"):
        read_karpathy_index(data / "dataset.json").split_rows("restval")


@pytest.mark.parametrize("attention", ["hard", "none"])
def test_hard_attention_and_the_baseline_train_on_real_photo_data(tmp_path, attention, capsys):
    data = write_dataset(tmp_path / "d")
    assert train_karpathy(data, tmp_path / "run", "--attention", attention, "--steps", "3", "--min-count", "1") == 0
    assert main(["evaluate", str(tmp_path / "run"), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["attention"] == attention
    if attention == "hard":   # the photo figure outlines the glimpsed grid cell; photos of any size and mode
        from PIL import Image
        photos = tmp_path / "photos"
        photos.mkdir()
        for i in range(12):
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)).save(
                photos / f"im{i}.jpg")
        png = tmp_path / "hard.png"
        assert main(["caption", str(tmp_path / "run"), "test:0", "im3.jpg", "--image-folder", str(photos),
                     "--attention-png", str(png)]) == 0
        assert png.stat().st_size > 0
    # the native path refuses to resume it (it would look for captioned MNIST)
    assert main(["train", "captioner", "--out", str(tmp_path / "run"), "--resume", "--steps", "4"]) == 2
    assert "--data karpathy" in capsys.readouterr().err


def test_resume_finds_its_data_and_evaluate_follows_moved_files(tmp_path, capsys):
    data = write_dataset(tmp_path / "d")
    assert train_karpathy(data, tmp_path / "run", "--steps", "2", "--min-count", "1") == 0
    assert main(["train", "captioner", "--data", "karpathy", "--out", str(tmp_path / "run"), "--resume",
                 "--steps", "3"]) == 0                          # --json and --features from the checkpoint
    assert load_checkpoint(tmp_path / "run" / "last.npz").step == 3
    moved = tmp_path / "moved"
    data.rename(moved)
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test", "--data-json", str(moved / "dataset.json"),
                 "--features", str(moved / "features.npy")]) == 0


def test_a_row_of_nan_features_is_named_when_it_is_read(tmp_path, capsys):
    feats = np.random.default_rng(0).standard_normal((12, 4, 3)).astype(np.float32)
    feats[5, 2, 1] = np.nan
    data = write_dataset(tmp_path / "d", features=feats)
    assert train_karpathy(data, tmp_path / "run", "--steps", "50", "--min-count", "1", "--batch", "8") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "features.npy: row 5 holds NaN" in err


@pytest.mark.parametrize("point", ["step", "validation"])
def test_a_signal_during_a_step_or_validation_resumes_exactly(tmp_path, monkeypatch, point):
    """Ctrl-C while a minibatch (and its captions, drawn from the run's rng) is in use, or while the val
    captions are scored: the resumed run ends bit-identical to the straight one."""
    import os
    import signal

    import minicap.commands.real_photos as real_photos
    import minicap.models.captioner as captioner
    data = write_dataset(tmp_path / "d")
    args = ["--steps", "9", "--min-count", "1", "--patience", "5"]
    assert train_karpathy(data, tmp_path / "straight", *args) == 0
    module, name, call = (captioner, "loss", 4) if point == "step" else (real_photos, "score", 2)
    real, calls = getattr(module, name), {"n": 0}

    def wrapper(*a, **k):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapper)
    assert train_karpathy(data, tmp_path / "split", *args) == 130
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "split" / "last.npz").step < 9
    assert train_karpathy(data, tmp_path / "split", *args, "--resume") == 0
    for which in ("last.npz", "best.npz"):
        a, b = load_checkpoint(tmp_path / "straight" / which), load_checkpoint(tmp_path / "split" / which)
        assert a.step == b.step and a.rng.bit_generator.state == b.rng.bit_generator.state
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
