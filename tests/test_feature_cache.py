"""Tests of the feature cache (minicap/data/features.py): where it lives, that damaged files are
rebuilt with one warning, and that concurrent writers never expose a partial file."""
import inspect
import json
import multiprocessing
import re
import threading

import numpy as np
import pytest

from minicap.data import features
from minicap.models import encoder as enc


@pytest.fixture
def params():
    return enc.init_params(np.random.default_rng(0))


@pytest.fixture
def images():
    return np.random.default_rng(1).random((4, 60, 60)).astype(np.float32)


@pytest.fixture
def encode_calls(monkeypatch):
    """Replace the encoder by a fast, deterministic stand-in of the right shape; count its calls."""
    calls = []

    def fake_encode(images, params, batch_size=256):
        calls.append(len(images))
        out = np.empty((len(images), 49, params["conv4_w"].shape[-1]), np.float32)
        out[:] = np.asarray(images, np.float32).reshape(len(images), -1)[:, :49, None]
        return out
    monkeypatch.setattr(enc, "encode", fake_encode)
    return calls


def _encode(images, params, cache_dir):
    return features.cached_encode(images, params, cache_dir, name="toy", progress=False)


# --- where the cache lives ----------------------------------------------------------------------
def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINICAP_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert features.default_cache_dir() == tmp_path / "home" / ".cache" / "minicap"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert features.default_cache_dir() == tmp_path / "xdg" / "minicap"
    monkeypatch.setenv("MINICAP_CACHE", str(tmp_path / "mine"))
    assert features.default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("MINICAP_CACHE", "")   # empty counts as unset
    assert features.default_cache_dir() == tmp_path / "xdg" / "minicap"


def test_no_cache_dir_means_the_default_folder_not_the_working_directory(
        monkeypatch, tmp_path, params, images, encode_calls):
    monkeypatch.setenv("MINICAP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    first = features.cached_encode(images, params, name="toy", progress=False)
    assert len(list((tmp_path / "cache").glob("features-toy-*.npy"))) == 1
    assert list((tmp_path / "work").iterdir()) == []   # no runs/cache left behind
    np.testing.assert_array_equal(features.cached_encode(images, params, name="toy", progress=False), first)
    assert encode_calls == [4]
    for function in (features.cached_encode, features.encode_dataset, features.load_split):
        assert inspect.signature(function).parameters["cache_dir"].default is None


# --- checked reads --------------------------------------------------------------------------------
def _flip_a_data_byte(path):
    raw = bytearray(path.read_bytes())
    raw[-7] ^= 0x01   # one bit of one feature value
    path.write_bytes(bytes(raw))


def _wrong_shape(path):   # a whole, self-consistent file, just not what this encoder gives
    other = np.zeros((4, 49, 32), np.float32)
    np.save(path, other)
    path.with_suffix(".json").write_text(json.dumps(features._checksum(other)))


def _huge_header(path):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (10**9, 49, 64)})


DAMAGE = {
    "flipped byte": (_flip_a_data_byte, "its checksum does not match"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or damaged"),
    "wrong shape": (_wrong_shape, r"holds float32 \(4, 49, 32\), the encoder gives float32 \(4, 49, 64\)"),
    "huge header": (_huge_header, r"header promises shape \(1000000000, 49, 64\)"),
    "not a .npy": (lambda p: p.write_text("hello"), "not a .npy array file"),
    "no checksum file": (lambda p: p.with_suffix(".json").unlink(), "it has no checksum file"),
    "bad checksum file": (lambda p: p.with_suffix(".json").write_text("{"), "its checksum file is unreadable"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_file_is_rebuilt_with_one_warning(damage, tmp_path, params, images,
                                                          encode_calls, capsys):
    first = _encode(images, params, tmp_path)
    [path] = tmp_path.glob("features-toy-*.npy")
    harm, reason = DAMAGE[damage]
    harm(path)
    capsys.readouterr()
    rebuilt = _encode(images, params, tmp_path)
    err = capsys.readouterr().err
    np.testing.assert_array_equal(rebuilt, first)
    assert encode_calls == [4, 4]   # recomputed, not used
    assert len(err.splitlines()) == 1, err
    assert "minicap: warning: the feature cache file" in err and "is damaged" in err
    assert "rebuilding it" in err
    assert re.search(reason, err), err
    np.testing.assert_array_equal(_encode(images, params, tmp_path), first)   # replaced: read silently
    assert encode_calls == [4, 4] and capsys.readouterr().err == ""


def test_an_unwritable_cache_folder_warns_and_carries_on(tmp_path, params, images, encode_calls, capsys):
    (tmp_path / "afile").write_text("not a folder")
    feats = _encode(images, params, tmp_path / "afile")
    assert feats.shape == (4, 49, 64)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "could not write the feature cache" in err and "MINICAP_CACHE" in err


# --- concurrency ----------------------------------------------------------------------------------
def _write_and_read(path, feats, rounds, start):
    """One of several processes: rewrite the cache and read it back, `rounds` times."""
    start.wait()
    for _ in range(rounds):
        features._write_cache(path, feats)
        read, problem = features._read_cache(path, feats.shape)
        assert problem is None, problem
        assert np.array_equal(read, feats)


def test_concurrent_writers_never_expose_a_partial_file(tmp_path):
    feats = np.random.default_rng(2).random((300, 49, 64)).astype(np.float32)   # 3.8 MB: slow to write
    path = tmp_path / "features-toy-0-0.npy"
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    workers = [context.Process(target=_write_and_read, args=(path, feats, 15, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.with_suffix(".json").name, path.name]


def test_threads_filling_the_same_cache_at_once(tmp_path, params, images, encode_calls, capsys):
    results, start = [None] * 8, threading.Barrier(8)

    def fill(i):
        start.wait()
        results[i] = _encode(images, params, tmp_path)
    threads = [threading.Thread(target=fill, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_array_equal(result, results[0])
    assert capsys.readouterr().err == ""   # no writer saw another's half-written file
    assert len(list(tmp_path.iterdir())) == 2   # one .npy, one .json, no temporary files left
