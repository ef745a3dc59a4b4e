"""Checkpoints round-trip exactly; bad files give a clear error naming the file."""
import numpy as np
import pytest

from minicap import MinicapError
from minicap.checkpoint import check_param_shapes, load_checkpoint, save_checkpoint
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
