"""Fuzz the readers of user files: random bytes, flipped bytes, cut files and wrong JSON values.

Whatever the file holds, a reader either returns data or raises MinicapError (one line naming the
file); any other exception is a bug. Seeded, a few hundred cases per reader, a few seconds in all.
"""
import gzip
import io
import json

import numpy as np
import pytest
from PIL import Image

from minicap.data import load_image_folder, load_karpathy_json, load_mnist_idx, read_idx
from minicap.errors import MinicapError

CASES = 300


def _mutations(valid, rng, n=CASES):
    """n damaged versions of the bytes `valid`: flipped bytes, cuts, insertions and pure noise."""
    for i in range(n):
        kind = i % 4
        raw = bytearray(valid)
        if kind == 0:   # flip 1-8 random bits
            for _ in range(rng.integers(1, 9)):
                raw[rng.integers(len(raw))] ^= 1 << int(rng.integers(8))
        elif kind == 1:   # overwrite 1-4 bytes with random values (often in a header: the first bytes)
            top = len(raw) if rng.random() < 0.5 else min(len(raw), 32)
            for _ in range(rng.integers(1, 5)):
                raw[rng.integers(top)] = rng.integers(256)
        elif kind == 2:   # cut the file, or insert random bytes somewhere
            at = int(rng.integers(len(raw) + 1))
            raw = raw[:at] if rng.random() < 0.5 else raw[:at] + rng.bytes(int(rng.integers(1, 16))) + raw[at:]
        else:   # noise: random bytes of a random length, sometimes after the valid file's first bytes
            noise = rng.bytes(int(rng.integers(0, 200)))
            raw = bytearray(valid[:int(rng.integers(0, 16))] + noise if rng.random() < 0.5 else noise)
        yield i, bytes(raw)


def _only_minicap_errors(read, i, folder):
    """read(), where the only acceptable failure is a MinicapError: one line naming a file in folder."""
    try:
        read()
    except MinicapError as err:
        assert str(folder) in str(err) and "\n" not in str(err), f"case {i}: {err!r}"
    except Exception as err:  # noqa: BLE001 - any other exception is exactly what this test looks for
        pytest.fail(f"case {i}: {type(err).__name__}: {err}")


# --- Karpathy-split JSON and its features -------------------------------------------------------
KARPATHY = {"images": [
    {"split": "train", "filename": "a.jpg", "sentences": [{"raw": "A dog runs.", "tokens": ["a", "dog"]}]},
    {"split": "restval", "filename": "b.jpg", "sentences": [{"tokens": ["a", "red", "bus"]}]},
    {"split": "val", "filename": "c.jpg", "sentences": [{"raw": "Two cats."}]},
]}


def _random_json_value(rng, depth=0):
    """A random JSON value: what a damaged or foreign file might hold where a field should be."""
    choices = ["int", "float", "str", "null", "bool", "list", "dict"] if depth < 3 else ["int", "str", "null"]
    kind = choices[rng.integers(len(choices))]
    if kind == "int":
        return int(rng.integers(-10**9, 10**9))
    if kind == "float":
        return float(rng.standard_normal()) * 1e10
    if kind == "str":
        return ["", " ", "train", "a.jpg", "x" * 100, "\u00e9\u4e2d"][rng.integers(6)]
    if kind == "null":
        return None
    if kind == "bool":
        return bool(rng.integers(2))
    if kind == "list":
        return [_random_json_value(rng, depth + 1) for _ in range(rng.integers(0, 3))]
    return {k: _random_json_value(rng, depth + 1) for k in ["split", "filename", "sentences", "raw",
                                                              "tokens"][:rng.integers(0, 5)]}


def _replace_a_value(document, rng):
    """A deep copy of document with one value, anywhere in it, replaced by a random one."""
    document = json.loads(json.dumps(document))
    node, path = document, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        key = list(node)[rng.integers(len(node))] if isinstance(node, dict) else int(rng.integers(len(node)))
        path.append((node, key))
        node = node[key]
    if not path:
        return _random_json_value(rng)
    parent, key = path[-1]
    parent[key] = _random_json_value(rng)
    return document


def test_fuzz_karpathy_json_bytes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "dataset.json"
    for i, raw in _mutations(json.dumps(KARPATHY).encode("utf-8"), rng):
        path.write_bytes(raw)
        _only_minicap_errors(lambda: load_karpathy_json(path, split=["train", "val"][i % 2]), i, tmp_path)


def test_fuzz_karpathy_json_values(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "dataset.json"
    for i in range(CASES):
        path.write_text(json.dumps(_replace_a_value(KARPATHY, rng)), encoding="utf-8")
        _only_minicap_errors(lambda: load_karpathy_json(path, split=["train", "val", "test"][i % 3]), i, tmp_path)


def test_fuzz_karpathy_features_file(tmp_path):
    rng = np.random.default_rng(2)
    json_path, features_path = tmp_path / "dataset.json", tmp_path / "feats.npy"
    json_path.write_text(json.dumps(KARPATHY), encoding="utf-8")
    buffer = io.BytesIO()
    np.save(buffer, rng.standard_normal((3, 4, 2)).astype(np.float32))
    for i, raw in _mutations(buffer.getvalue(), rng):
        features_path.write_bytes(raw)
        _only_minicap_errors(lambda: load_karpathy_json(json_path, features_path), i, tmp_path)


# --- folder of images with a captions file ------------------------------------------------------
@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("x.png", "y.png"):
        Image.fromarray(rng.integers(0, 256, (6, 5)).astype(np.uint8), "L").save(folder / name)
    return folder


def test_fuzz_captions_file(image_folder):
    rng = np.random.default_rng(4)
    valid = "x.png#0\tA grey square .\nx.png#1\tNoise, mostly!\n\ny.png\tAnother one\n".encode("utf-8")
    path = image_folder / "captions.txt"
    for i, raw in _mutations(valid, rng):
        path.write_bytes(raw)
        _only_minicap_errors(lambda: load_image_folder(image_folder, path, resize=i % 2 == 0), i, image_folder)


def test_fuzz_image_files(image_folder):
    rng = np.random.default_rng(5)
    (image_folder / "captions.txt").write_text("x.png\tfirst\nz.png\tsecond\n", encoding="utf-8")
    valid = (image_folder / "y.png").read_bytes()
    for i, raw in _mutations(valid, rng):
        (image_folder / "z.png").write_bytes(raw)
        _only_minicap_errors(lambda: load_image_folder(image_folder, convert=True, resize=True), i, image_folder)


# --- IDX files ----------------------------------------------------------------------------------
def _idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_fuzz_idx_files(tmp_path, compress):
    rng = np.random.default_rng(6 + compress)
    images = _idx_bytes(rng.integers(0, 256, (3, 4, 4)))
    labels = _idx_bytes(np.array([1, 2, 3]))
    images_path, labels_path = tmp_path / "images-idx3-ubyte", tmp_path / "labels-idx1-ubyte"
    labels_path.write_bytes(gzip.compress(labels) if compress else labels)
    valid = gzip.compress(images, mtime=0) if compress else images
    for i, raw in _mutations(valid, rng):
        images_path.write_bytes(raw)
        _only_minicap_errors(lambda: read_idx(images_path), i, tmp_path)
        _only_minicap_errors(lambda: load_mnist_idx(images_path, labels_path), i, tmp_path)
