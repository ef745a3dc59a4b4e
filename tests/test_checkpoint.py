"""Checkpoints round-trip exactly; bad files give a clear error naming the file."""
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicap import MinicapError, checkpoint
from minicap.checkpoint import check_param_shapes, load_checkpoint, remove_orphan_temp_files, save_checkpoint
from minicap.optim import Adam


def make_state():
    rng = np.random.default_rng(3)
    params = {"Wx": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4)}
    opt = Adam(lr=0.01)
    opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    rng.standard_normal(10)  # advance the run's rng
    return params, opt, rng


def test_round_trip_is_exact(tmp_path):
    params, opt, rng = make_state()
    path = tmp_path / "run" / "ckpt.npz"
    save_checkpoint(path, "toy", params, config={"hidden": 4, "name": "x"}, step=17, optimizer=opt, rng=rng,
                    extra={"vocab": np.array(["<NULL>", "the"])})
    ck = load_checkpoint(path, kind="toy")
    assert ck.step == 17 and ck.config == {"hidden": 4, "name": "x"} and ck.optimizer_name == "adam"
    for k in params:
        np.testing.assert_array_equal(ck.params[k], params[k])
        assert ck.params[k].dtype == params[k].dtype
    assert list(ck.extra["vocab"]) == ["<NULL>", "the"]
    opt2 = Adam()
    opt2.load_state_dict(ck.optimizer_state)
    assert opt2.t == opt.t and opt2.lr == opt.lr
    np.testing.assert_array_equal(opt2.buffers["m"]["Wx"], opt.buffers["m"]["Wx"])
    np.testing.assert_array_equal(ck.rng.standard_normal(5), rng.standard_normal(5))  # same stream


def test_missing_and_wrong_kind(tmp_path):
    with pytest.raises(MinicapError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.npz")
    params, opt, rng = make_state()
    save_checkpoint(tmp_path / "c.npz", "toy", params)
    with pytest.raises(MinicapError, match="'toy' model, not a 'draw' model"):
        load_checkpoint(tmp_path / "c.npz", kind="draw")


def test_truncated_and_corrupt_files(tmp_path):
    params, opt, rng = make_state()
    path = tmp_path / "c.npz"
    save_checkpoint(path, "toy", params, optimizer=opt, rng=rng)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MinicapError, match="truncated.npz is truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(MinicapError, match="garbage.npz is truncated or corrupt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(MinicapError, match="not written by minicap"):
        load_checkpoint(foreign)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    params, opt, rng = make_state()
    path = tmp_path / "c.npz"
    save_checkpoint(path, "toy", params, step=1)

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        save_checkpoint(path, "toy", params, config={"bad": Unserialisable()}, step=2)
    assert load_checkpoint(path).step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_param_shape_mismatch_names_the_file(tmp_path):
    with pytest.raises(MinicapError, match=r"c.npz does not match this model: missing b; Wx: \(3, 4\) \(expected \(3, 5\)\)"):
        check_param_shapes("c.npz", {"Wx": np.zeros((3, 4))}, {"Wx": np.zeros((3, 5)), "b": np.zeros(2)})


# --- files that are not what they claim: each refused with one line naming the file ------------------
def npy_bytes(array, allow_pickle=False):
    """What np.save writes for array: the bytes of one archive member."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def rewrite(path, out, compression=zipfile.ZIP_STORED, **members):
    """Copy the archive at path to out with some members (name without '.npy' -> bytes) replaced or added.
    The zip stays valid (fresh CRCs): only what is inside the members is wrong."""
    with zipfile.ZipFile(path) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    contents.update({f"{name.replace('__', '/')}.npy": data for name, data in members.items()})
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return out


@pytest.fixture
def saved(tmp_path):
    params, opt, rng = make_state()
    path = tmp_path / "c.npz"
    save_checkpoint(path, "toy", params, config={"hidden": 4}, step=3, optimizer=opt, rng=rng)
    return path


def good_meta(path):
    with np.load(path) as archive:
        return json.loads(str(archive["meta"]))


def test_a_plain_npy_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(MinicapError, match=r"weights.npy is a single .npy array, not a checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("change, message", [
    (lambda meta: [meta], "malformed meta entry .a JSON list, not an object"),
    (lambda meta: {k: v for k, v in meta.items() if k != "kind"}, "malformed meta entry .no 'kind'"),
    (lambda meta: dict(meta, kind=7), "kind is 7, not a str"),
    (lambda meta: dict(meta, step="3"), "step is '3', not a int"),
    (lambda meta: dict(meta, step=True), "step is True, not a int"),
    (lambda meta: dict(meta, step=-1), "step is -1"),
    (lambda meta: dict(meta, config=[1, 2]), r"config is \[1, 2\], not a dict"),
    (lambda meta: dict(meta, rng="PCG64"), "rng is 'PCG64', not a dict or NoneType"),
    (lambda meta: dict(meta, rng={"bit_generator": "seed"}), "rng bit_generator 'seed' is none of PCG64"),
    (lambda meta: dict(meta, rng=dict(meta["rng"], state={"state": "x", "inc": 1})), "malformed meta entry .rng state"),
    (lambda meta: dict(meta, format=2), "has format 2, this minicap reads 1"),
])
def test_hand_made_meta_with_wrong_fields_is_refused(saved, tmp_path, change, message):
    meta = change(good_meta(saved))
    bad = rewrite(saved, tmp_path / "bad.npz", meta=npy_bytes(np.array(json.dumps(meta))))
    with pytest.raises(MinicapError, match=f"bad.npz .*{message}"):
        load_checkpoint(bad)


@pytest.mark.parametrize("meta, message", [
    (npy_bytes(np.array('{"format": 1, "kind": "toy", "conf')), "truncated or corrupt .meta is not valid JSON"),
    (npy_bytes(np.array("[" * 100000)), "truncated or corrupt .meta is not valid JSON"),  # RecursionError
    (npy_bytes(np.arange(3.0)), "malformed meta entry .a float64 array of shape .3,., not a JSON string"),
    # byte flips that reach the .npy header of the meta member (numpy's parser raises many kinds)
    (npy_bytes(np.array("{}")).replace(b"'descr'", b"'de\x00cr'"), "truncated or corrupt"),
    (npy_bytes(np.array("{}")).replace(b"False", b"Fa(se"), "truncated or corrupt"),
    (npy_bytes(np.array("{}")).replace(b"'shape': ()", b"'shape': (\""), "truncated or corrupt"),
    (npy_bytes(np.array("{}"))[:-3], "truncated or corrupt .meta.npy claims shape"),
])
def test_a_garbled_meta_member_is_refused(saved, tmp_path, meta, message):
    bad = rewrite(saved, tmp_path / "bad.npz", meta=meta)
    with pytest.raises(MinicapError, match=f"bad.npz .*{message}"):
        load_checkpoint(bad)


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(saved, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    bad = rewrite(saved, tmp_path / "bad.npz", param__b=header.getvalue() + bytes(32))  # claims 8 TB, holds 32 bytes
    with pytest.raises(MinicapError, match=r"bad.npz is truncated or corrupt .param/b.npy claims shape \(1000000000000,\)"):
        load_checkpoint(bad)


def test_pickled_objects_and_non_numeric_parameters_are_refused(saved, tmp_path):
    pickled = rewrite(saved, tmp_path / "pickled.npz", extra__x=npy_bytes(np.array([{"a": 1}], dtype=object), True))
    with pytest.raises(MinicapError, match="pickled.npz: extra/x.npy holds Python objects"):
        load_checkpoint(pickled)
    words = rewrite(saved, tmp_path / "words.npz", param__b=npy_bytes(np.array(["a", "b"])))
    with pytest.raises(MinicapError, match="words.npz: param/b is a <U1 array, not numbers"):
        load_checkpoint(words)
    stray = tmp_path / "stray.npz"
    shutil.copy(saved, stray)
    with zipfile.ZipFile(stray, "a") as archive:
        archive.writestr("README.txt", "hello")
    with pytest.raises(MinicapError, match="stray.npz holds 'README.txt', which is not an array"):
        load_checkpoint(stray)


def test_a_zip_bomb_is_refused_from_its_sizes(saved, tmp_path, monkeypatch):
    """A deflated member of zeros is tiny on disk and huge unpacked; the cap is lowered so the test stays small."""
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", 2**20)
    bomb = rewrite(saved, tmp_path / "bomb.npz", zipfile.ZIP_DEFLATED, extra__zeros=npy_bytes(np.zeros(2**18)))
    assert bomb.stat().st_size < 2**16
    with pytest.raises(MinicapError, match=r"bomb.npz would unpack to 0.0 GiB, more than the 0 GiB"):
        load_checkpoint(bomb)
    monkeypatch.undo()
    assert load_checkpoint(bomb).extra["zeros"].shape == (2**18,)  # under the real cap: a fine (compressed) file


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoints_get_the_users_normal_file_mode(tmp_path, umask):
    """Not mkstemp's private 0600: what open() would have made, 0666 less the umask."""
    params, opt, rng = make_state()
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "c.npz", "toy", params)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.npz").stat().st_mode) == 0o666 & ~umask


def test_remove_orphan_temp_files_clears_only_what_save_checkpoint_leaves(tmp_path):
    params, opt, rng = make_state()
    save_checkpoint(tmp_path / "last.npz", "toy", params)
    orphans = []
    for name in ("last.npz", "best.npz"):   # what a kill -9 during save_checkpoint leaves: its mkstemp names
        fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=tmp_path)
        os.close(fd)
        orphans.append(Path(tmp))
    for keep in ("notes.tmp", "last.npz.txt", "data.npy.x.tmp"):
        (tmp_path / keep).write_text("mine")
    assert sorted(remove_orphan_temp_files(tmp_path)) == sorted(orphans)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npy.x.tmp", "last.npz", "last.npz.txt", "notes.tmp"]
    assert remove_orphan_temp_files(tmp_path) == []
    assert load_checkpoint(tmp_path / "last.npz").kind == "toy"
