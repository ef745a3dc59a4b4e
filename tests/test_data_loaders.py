"""Tests of the real-data loaders (on tiny files the tests write), the text corpus and `data show`."""
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from minicap.cli import main
from minicap.data import load_image_folder, load_karpathy_json, load_text, read_captions_file
from minicap.errors import MinicapError


# --- Karpathy-split JSON with features ----------------------------------------------------------
def _karpathy(tmp_path, images=None):
    images = images if images is not None else [
        {"split": "train", "filename": "a.jpg", "sentences": [{"raw": "A dog runs.", "tokens": ["a", "dog", "runs"]},
                                                              {"raw": "A brown dog."}]},
        {"split": "val", "filename": "b.jpg", "sentences": [{"raw": "Two cats."}]},
        {"split": "restval", "filename": "c.jpg", "sentences": [{"tokens": ["a", "red", "bus"]}]},
        {"split": "test", "filename": "d.jpg", "sentences": [{"raw": "A man, smiling!"}]},
    ]
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text(json.dumps({"images": images, "dataset": "flickr8k"}), encoding="utf-8")
    features = np.arange(len(images) * 3 * 2, dtype=np.float32).reshape(len(images), 3, 2)
    np.save(tmp_path / "feats.npy", features)
    return path, tmp_path / "feats.npy", features


def test_load_karpathy_json_splits_and_features(tmp_path):
    path, feats, features = _karpathy(tmp_path)
    train = load_karpathy_json(path, feats, split="train")
    assert train.names == ["a.jpg", "c.jpg"]  # restval counts as training data
    assert train.references == [["A dog runs.", "A brown dog."], ["a red bus"]]
    assert train.features.dtype == np.float32 and np.array_equal(train.features, features[[0, 2]])
    index, captions = train.pairs()
    assert index.tolist() == [0, 0, 1] and captions == ["A dog runs.", "A brown dog.", "a red bus"]
    strict = load_karpathy_json(path, feats, split="train", include_restval=False)
    assert strict.names == ["a.jpg"] and np.array_equal(strict.features, features[[0]])
    test = load_karpathy_json(path, split="test")
    assert test.names == ["d.jpg"] and test.features is None and len(test) == 1


def test_load_karpathy_json_bad_inputs(tmp_path):
    path, feats, _ = _karpathy(tmp_path)
    with pytest.raises(MinicapError, match="missing.json: caption file not found"):
        load_karpathy_json(tmp_path / "missing.json")
    with pytest.raises(MinicapError, match="nofeats.npy: feature file not found"):
        load_karpathy_json(path, tmp_path / "nofeats.npy")
    np.save(tmp_path / "three.npy", np.zeros((3, 3, 2), np.float32))
    with pytest.raises(MinicapError, match="three.npy: holds features for 3 images but .*lists 4"):
        load_karpathy_json(path, tmp_path / "three.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 6), np.float32))
    with pytest.raises(MinicapError, match="flat.npy: expected an array of shape \\(N, L, D\\)"):
        load_karpathy_json(path, tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(MinicapError, match="junk.npy: not a .npy array file"):
        load_karpathy_json(path, tmp_path / "junk.npy")
    (tmp_path / "bad.json").write_text('{"images": [ {"split": "train",', encoding="utf-8")
    with pytest.raises(MinicapError, match="bad.json: malformed JSON at line 1"):
        load_karpathy_json(tmp_path / "bad.json")
    (tmp_path / "latin1.json").write_bytes('{"images": []} caf\xe9'.encode("latin-1"))
    with pytest.raises(MinicapError, match="latin1.json: not valid UTF-8"):
        load_karpathy_json(tmp_path / "latin1.json")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(MinicapError, match="list.json: expected a JSON object with an \"images\" list"):
        load_karpathy_json(tmp_path / "list.json")
    empty, _, _ = _karpathy(tmp_path, [{"split": "train", "filename": "a.jpg",
                                        "sentences": [{"raw": "ok"}, {"raw": " ! "}]}])
    with pytest.raises(MinicapError, match=r"images\[0\] \(a.jpg\) sentence 1: empty caption"):
        load_karpathy_json(empty)
    nokeys, _, _ = _karpathy(tmp_path, [{"split": "train", "sentences": []}])
    with pytest.raises(MinicapError, match=r"images\[0\] needs \"split\", \"filename\""):
        load_karpathy_json(nokeys)
    with pytest.raises(MinicapError, match="unknown split"):
        load_karpathy_json(path, split="dev")
    onlytrain, _, _ = _karpathy(tmp_path, [{"split": "train", "filename": "a.jpg", "sentences": [{"raw": "x"}]}])
    with pytest.raises(MinicapError, match="no images in split 'val'"):
        load_karpathy_json(onlytrain, split="val")


def _npy_header_only(path, shape, descr="<f4"):
    """A .npy file whose header claims `shape` but which holds no data after the header."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})


def test_load_karpathy_json_refuses_hostile_feature_files(tmp_path):
    path, _, _ = _karpathy(tmp_path)
    (tmp_path / "text.npy").write_text("0.1 0.2 0.3\n", encoding="utf-8")   # was reported as "pickled data"
    np.savez(tmp_path / "arch.npz", feats=np.zeros((4, 3, 2), np.float32))
    _npy_header_only(tmp_path / "huge.npy", (10**9, 196, 512))   # 400 TB claimed: never allocated
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    np.save(tmp_path / "strings.npy", np.full((4, 3, 2), "x"))
    nan = np.zeros((4, 3, 2), np.float32)
    nan[2, 1, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "folder.npy").mkdir()
    cases = {
        "text.npy": "text.npy: not a .npy array file \\(it does not start with the .npy signature",
        "arch.npz": "arch.npz: not a .npy array file \\(this is a .npz archive",
        "huge.npy": "huge.npy: the header promises shape \\(1000000000, 196, 512\\) .* holds 0 bytes",
        "objects.npy": "objects.npy: the feature file holds Python objects",
        "strings.npy": "strings.npy: expected numbers",
        "nan.npy": "nan.npy: row 2 holds NaN",   # row 2 is "c.jpg", in the train split (restval)
        "folder.npy": "folder.npy: feature file should be a file, but this is a folder",
    }
    for name, message in cases.items():
        with pytest.raises(MinicapError, match=message):
            load_karpathy_json(path, tmp_path / name)
    with pytest.raises(MinicapError, match="cannot open the feature file"):
        load_karpathy_json(path, tmp_path / ("x" * 300 + ".npy"))   # a name too long for the OS


def test_load_karpathy_json_refuses_hostile_json(tmp_path):
    cases = {
        "[" * 100_000 + "]" * 100_000: "JSON nested too deeply",
        '{"images": [' + "9" * 5000 + "]}": "holds a number of more than 4300 digits",
        '{"images": [{"split": "train", "filename": 7, "sentences": [{"raw": "x"}]}]}':
            'images\\[0\\]: "filename" must be a non-empty string',
        '{"images": [{"split": ["train"], "filename": "a.jpg", "sentences": [{"raw": "x"}]}]}':
            "images\\[0\\] \\(a.jpg\\) has unknown split \\[",
        '{"images": [{"split": "train", "filename": "a.jpg", "sentences": [{"tokens": ["a", 1]}]}]}':
            'sentence 0 needs a "raw" string or a "tokens" list of strings',
        '{"images": [{"split": "train", "filename": "a.jpg", "sentences": [{"raw": ["x"]}]}]}':
            "sentence 0: a caption must be a string, found list",
    }
    for text, message in cases.items():
        (tmp_path / "hostile.json").write_text(text, encoding="utf-8")
        with pytest.raises(MinicapError, match="hostile.json: .*" + message):
            load_karpathy_json(tmp_path / "hostile.json")


def test_text_files_larger_than_the_cap_are_refused_before_reading(tmp_path, monkeypatch):
    from minicap.data import files
    (tmp_path / "big.json").write_text('{"images": []}' + " " * 2000, encoding="utf-8")
    monkeypatch.setattr(files, "MAX_TEXT_BYTES", 1024)
    with pytest.raises(MinicapError, match="big.json: the caption file is 0.0 MiB, more than minicap reads"):
        load_karpathy_json(tmp_path / "big.json")


# --- folder of images with a captions file ------------------------------------------------------
def _folder(tmp_path, mode="L", size=(6, 5)):
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name in ("x.png", "y.png"):
        shape = size + ((3,) if mode == "RGB" else ())
        arrays[name] = rng.integers(0, 256, size=shape).astype(np.uint8)
        Image.fromarray(arrays[name], mode).save(folder / name)
    (folder / "captions.txt").write_text(
        "x.png#0\tA grey square .\nx.png#1\tNoise, mostly!\n\ny.png\tAnother one\n", encoding="utf-8")
    return folder, arrays


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_load_image_folder(tmp_path, mode):
    folder, arrays = _folder(tmp_path, mode)
    data = load_image_folder(folder)
    assert data.names == ["x.png", "y.png"]
    assert data.references == [["A grey square .", "Noise, mostly!"], ["Another one"]]
    expected_shape = (2, 6, 5) + ((3,) if mode == "RGB" else ())
    assert data.images.shape == expected_shape and data.images.dtype == np.float32
    assert np.allclose(data.images[1] * 255, arrays["y.png"])
    assert read_captions_file(folder / "captions.txt")["y.png"] == ["Another one"]


def test_load_image_folder_bad_inputs(tmp_path):
    folder, _ = _folder(tmp_path)
    with pytest.raises(MinicapError, match="nowhere: image folder not found"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(MinicapError, match="caps.txt: captions file not found"):
        load_image_folder(folder, folder / "caps.txt")
    Image.fromarray(np.zeros((7, 5), np.uint8), "L").save(folder / "big.png")
    Image.fromarray(np.zeros((6, 5, 3), np.uint8), "RGB").save(folder / "rgb.png")
    (folder / "fake.png").write_bytes(b"definitely not a png")
    cases = {
        "x.png\tok\nmissing.png\ta caption\n": "missing.png: image named in .* not found",
        "x.png\tok\nbig.png\ta caption\n": "big.png: image is 7x5 \\(HxW\\), expected 6x5",
        "x.png\tok\nrgb.png\ta caption\n": "rgb.png: image mode 'RGB', expected 'L'",
        "fake.png\ta caption\n": "fake.png: not a readable image",
        "x.png\tok\ny.png\t   \n": "lines.txt: line 2: empty caption",
        "x.png a caption with no tab\n": "lines.txt: line 1: expected \"filename<TAB>caption\"",
        "\n\n": "lines.txt: no captions in the file",
    }
    for text, message in cases.items():
        (folder / "lines.txt").write_text(text, encoding="utf-8")
        with pytest.raises(MinicapError, match=message):
            load_image_folder(folder, folder / "lines.txt")
    (folder / "lines.txt").write_bytes("x.png\tok\ny.png\tcaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(MinicapError, match="lines.txt: not valid UTF-8 \\(byte 18, line 2\\)"):
        load_image_folder(folder, folder / "lines.txt")
    # the explicit fixes
    (folder / "lines.txt").write_text("x.png\tok\nbig.png\tbig\nrgb.png\tcolour\n", encoding="utf-8")
    fixed = load_image_folder(folder, folder / "lines.txt", size=(6, 5), mode="L", resize=True, convert=True)
    assert fixed.images.shape == (3, 6, 5)
    with pytest.raises(MinicapError, match="mode must be"):
        load_image_folder(folder, mode="CMYK")


def _png_claiming(width, height):
    """A small PNG file whose header claims width x height grey pixels (a "decompression bomb")."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit grey, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_load_image_folder_refuses_names_outside_the_folder(tmp_path):
    folder, _ = _folder(tmp_path)
    (tmp_path / "secret.png").write_bytes((folder / "x.png").read_bytes())
    for name in ("../secret.png", "sub/../../secret.png", str(tmp_path / "secret.png"), "/etc/passwd",
                 "..\\secret.png", "C:\\secret.png"):
        (folder / "lines.txt").write_text(f"x.png\tok\n{name}#0\ta caption\n", encoding="utf-8")
        with pytest.raises(MinicapError, match="lines.txt: line 2: image name .* points outside the image folder"):
            load_image_folder(folder, folder / "lines.txt")
    (folder / "sub").mkdir()   # sub-folders inside the image folder are fine
    (folder / "sub" / "z.png").write_bytes((folder / "x.png").read_bytes())
    (folder / "lines.txt").write_text("x.png\tok\nsub/z.png\tanother\n", encoding="utf-8")
    assert load_image_folder(folder, folder / "lines.txt").names == ["x.png", "sub/z.png"]


def test_load_image_folder_refuses_decompression_bombs_before_decoding(tmp_path):
    import warnings
    folder, _ = _folder(tmp_path)
    # 400 megapixels (Pillow itself raises above 179) and 64 megapixels (Pillow would only warn)
    for width, height in ((20000, 20000), (8000, 8000)):
        (folder / "bomb.png").write_bytes(_png_claiming(width, height))
        (folder / "lines.txt").write_text("bomb.png\tboom\n", encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # and no DecompressionBombWarning leaks out either
            with pytest.raises(MinicapError, match="bomb.png: the image is too large .*at most 50 megapixels"):
                load_image_folder(folder, folder / "lines.txt")


def test_load_image_folder_checks_the_whole_stack_before_allocating(tmp_path, monkeypatch):
    from minicap.data import captions
    folder, _ = _folder(tmp_path)
    monkeypatch.setattr(captions, "MAX_FOLDER_BYTES", 100)   # 2 images of 6x5 float32 take 240 bytes
    with pytest.raises(MinicapError, match=r"captions.txt: 2 images of shape \(6, 5\) need .* more than "
                                           r"minicap holds"):
        load_image_folder(folder)
    for size in ((6,), (6, 0), ("6", "5"), (6.5, 5)):
        with pytest.raises(MinicapError, match="size must be \\(height, width\\)"):
            load_image_folder(folder, size=size)


# --- text corpus --------------------------------------------------------------------------------
def test_load_text(tmp_path):
    text = load_text()
    assert 150_000 < len(text) < 300_000 and "MACBETH" in text and "PROSPERO" in text
    with pytest.raises(MinicapError, match="none.txt: text file not found"):
        load_text(tmp_path / "none.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe")
    with pytest.raises(MinicapError, match="bad.txt: not valid UTF-8"):
        load_text(tmp_path / "bad.txt")
    (tmp_path / "blank.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(MinicapError, match="blank.txt: the text file is empty"):
        load_text(tmp_path / "blank.txt")


# --- minicap data show --------------------------------------------------------------------------
def test_data_show_writes_a_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", "mnist-captions", "--n", "5", "--out", str(out), "--split", "novel",
                 "--boxes"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as img:
        assert img.width > 400 and img.height > 200
    printed = capsys.readouterr().out
    assert len([ln for ln in printed.splitlines() if "the digit" in ln]) == 5 and "wrote" in printed
    assert main(["data", "show", "mnist-captions", "--n", "0", "--out", str(out)]) == 2
    assert "--n" in capsys.readouterr().err
