"""Fuzzing the checkpoint reader: whatever happens to the bytes of a checkpoint, load_checkpoint either
reads it or raises one MinicapError line naming the file, never any other exception.

Two kinds of damage, seeded so a failure replays: damage to the file as a disk or a copy would do it
(flipped bits, a cut-off end, a run of random bytes), which the zip's CRC mostly catches; and damage
inside one member of an otherwise valid zip (fresh CRCs), which reaches numpy's .npy header parser and
the JSON meta, the parts the CRC cannot protect from a hand-edited or badly written file.
"""
import zipfile

import numpy as np
import pytest

from minicap import MinicapError
from minicap.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from minicap.optim import Adam

CASES = 300   # per kind of damage: about a second each


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A small real checkpoint: parameters of two dtypes, Adam state, the rng, a vocabulary."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4)}
    optimizer = Adam(lr=0.01)
    optimizer.step(params, {k: np.ones_like(v) for k, v in params.items()})
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    save_checkpoint(path, "toy", params, config={"hidden": 4, "words": ["a", "b"]}, step=5, optimizer=optimizer,
                    rng=rng, extra={"vocab": np.array(["<NULL>", "the"])})
    return path


def damage_file(data, rng):
    """One of: 1-3 flipped bits, the file cut at a random point, a run of 1-64 random bytes written over it."""
    data = bytearray(data)
    kind = rng.integers(3)
    if kind == 0:
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        data = data[:rng.integers(len(data))]
    else:
        start, n = rng.integers(len(data)), rng.integers(1, 65)
        data[start:start + n] = rng.bytes(n)[:len(data) - start]
    return bytes(data)


def assert_loads_or_refuses_cleanly(path):
    try:
        ck = load_checkpoint(path)
    except MinicapError as err:
        message = str(err)
        assert str(path) in message and "\n" not in message and len(message) < 600, message
    else:
        assert isinstance(ck, Checkpoint)


def test_damaged_files_load_or_raise_minicap_error(original, tmp_path):
    rng = np.random.default_rng(1)
    data = original.read_bytes()
    bad = tmp_path / "bad.npz"
    for _ in range(CASES):
        bad.write_bytes(damage_file(data, rng))
        assert_loads_or_refuses_cleanly(bad)


def test_damaged_members_of_a_valid_zip_load_or_raise_minicap_error(original, tmp_path):
    rng = np.random.default_rng(2)
    with zipfile.ZipFile(original) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    names = sorted(members)
    bad = tmp_path / "bad.npz"
    for case in range(CASES):
        name = "meta.npy" if case % 2 else names[rng.integers(len(names))]   # the meta member half the time
        data = bytearray(members[name])
        header_end = data.index(b"\n") + 1
        for _ in range(rng.integers(1, 4)):   # overwrite bytes, mostly in the header (the data has no parser)
            data[rng.integers(header_end if rng.random() < 0.7 else len(data))] = int(rng.integers(256))
        with zipfile.ZipFile(bad, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, bytes(data) if member == name else content)
        assert_loads_or_refuses_cleanly(bad)
