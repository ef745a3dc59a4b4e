"""Ctrl-C (SIGINT) or SIGTERM at any moment of a training run saves a state that resumes exactly.

Each test trains a tiny run straight through, then the same run again with a signal sent to this
process at one point (during a step, an evaluation, a logged sample, a checkpoint write), resumes
it, and asks for the two final checkpoints to be identical bit for bit: parameters, optimizer state,
rng state, carried state, history, best score and the early-stopping count. Exactness is the point
here (same process, same shapes, same code path), so the comparison is exact.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from minicap.checkpoint import load_checkpoint, save_checkpoint
from minicap.cli import main


def send_signal_on_call(monkeypatch, module, name, call, sig):
    """Replace module.name by a wrapper that sends `sig` to this process at its `call`-th call (1-based),
    while it runs, then goes on with the real function."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def assert_same_checkpoint(a_path, b_path):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a.step == b.step
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    for group in ("params", "optimizer_state", "extra"):
        left, right = getattr(a, group), getattr(b, group)
        assert sorted(left) == sorted(right), group
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"{group}/{key}")


# --- DRAW -----------------------------------------------------------------------------------------
DRAW = ["train", "draw", "--glimpses", "2", "--read-n", "2", "--write-n", "2", "--hidden", "8", "--z-size", "3",
        "--batch", "8", "--steps", "6", "--eval-every", "2"]


@pytest.fixture(scope="module")
def draw_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("draw") / "straight"
    assert main(DRAW + ["--out", str(out)]) == 0
    return out


def _point(point):
    """(module, function, call) at which to send the signal."""
    import minicap.models.draw as draw_model
    import minicap.train as train_loop
    return {"step": (draw_model, "loss", 3),                  # inside the 3rd step's forward/backward
            "evaluation": (draw_model, "bound", 2),           # during the step-4 validation bound
            "checkpoint write": (train_loop, "save_checkpoint", 2)}[point]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["step", "evaluation", "checkpoint write"])
def test_draw_signal_anywhere_resumes_exactly(tmp_path, monkeypatch, capsys, draw_reference, point, sig):
    module, name, call = _point(point)
    send_signal_on_call(monkeypatch, module, name, call, sig)
    assert main(DRAW + ["--out", str(tmp_path / "split")]) == 130
    assert "stopping after this step" in capsys.readouterr().err
    monkeypatch.undo()
    stopped = load_checkpoint(tmp_path / "split" / "last.npz")
    assert 0 < stopped.step < 6                                    # it did stop early, after a whole step
    assert main(DRAW + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    assert_same_checkpoint(draw_reference / "last.npz", tmp_path / "split" / "last.npz")
    assert_same_checkpoint(draw_reference / "best.npz", tmp_path / "split" / "best.npz")


def test_a_second_signal_stops_at_once_and_keeps_the_last_whole_state(tmp_path, monkeypatch, draw_reference):
    import minicap.models.draw as draw_model
    real, calls = draw_model.bound, {"n": 0}

    def two_signals(*args, **kwargs):   # Ctrl-C twice during the step-4 evaluation
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(draw_model, "bound", two_signals)
    assert main(DRAW + ["--out", str(tmp_path / "split")]) == 130
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "split" / "last.npz").step == 2   # the checkpoint of step 2, untouched
    assert not list((tmp_path / "split").glob("*.tmp"))
    assert main(DRAW + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    assert_same_checkpoint(draw_reference / "last.npz", tmp_path / "split" / "last.npz")


# --- charrnn: a signal while a sample is drawn for the log ------------------------------------------
def test_charrnn_signal_during_the_logged_sample_resumes_exactly(tmp_path, monkeypatch):
    import minicap.models.charrnn as charrnn
    text = tmp_path / "text.txt"
    text.write_text("hello world, hello minicap. " * 20, encoding="utf-8")
    args = ["train", "charrnn", "--text", str(text), "--hidden", "8", "--seq-len", "5", "--steps", "12",
            "--log-every", "3", "--sample-len", "10"]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    send_signal_on_call(monkeypatch, charrnn, "generate", 2, signal.SIGINT)   # the sample at step 6
    assert main(args + ["--out", str(tmp_path / "split")]) == 130
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "split" / "last.npz").step == 6
    assert main(args + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    assert_same_checkpoint(tmp_path / "straight" / "last.npz", tmp_path / "split" / "last.npz")


# --- the captioner: a signal during validation decoding and scoring ----------------------------------
@pytest.mark.parametrize("point", ["evaluation", "step"])
def test_captioner_signal_resumes_exactly(tmp_path, monkeypatch, point):
    import minicap.models.captioner as captioner
    import minicap.models.captioner_eval as captioner_eval
    from minicap.models import encoder as enc
    encoder_path = tmp_path / "encoder.npz"
    channels = (4, 4, 6, 6)
    save_checkpoint(encoder_path, "encoder", enc.init_params(np.random.default_rng(0), channels),
                    config={"channels": channels})
    args = ["train", "captioner", "--encoder", str(encoder_path), "--cache", str(tmp_path / "cache"),
            "--train-size", "48", "--val-size", "12", "--embed", "6", "--hidden", "8", "--attention-size", "5",
            "--batch", "8", "--eval-every", "3", "--log-every", "3", "--steps", "9", "--patience", "2"]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    if point == "evaluation":
        send_signal_on_call(monkeypatch, captioner_eval, "evaluate_model", 2, signal.SIGINT)   # at step 6
    else:
        send_signal_on_call(monkeypatch, captioner, "loss", 4, signal.SIGINT)
    assert main(args + ["--out", str(tmp_path / "split")]) == 130
    monkeypatch.undo()
    assert main(args + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    assert_same_checkpoint(tmp_path / "straight" / "last.npz", tmp_path / "split" / "last.npz")
    assert_same_checkpoint(tmp_path / "straight" / "best.npz", tmp_path / "split" / "best.npz")


# --- a real process and a real signal -----------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_process_saves_exits_130_and_resumes_exactly(tmp_path, sig):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    args = [sys.executable, "-m", "minicap", "train", "charrnn", "--text", str(text), "--hidden", "16",
            "--seq-len", "10", "--steps", "3000", "--log-every", "100", "--sample-len", "5"]
    subprocess.run(args + ["--out", str(tmp_path / "straight")], check=True, capture_output=True)
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "split")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:            # wait until it is training
        if line.startswith("step 200"):
            break
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    stopped = load_checkpoint(tmp_path / "split" / "last.npz")
    assert 200 <= stopped.step < 3000
    subprocess.run(args + ["--out", str(tmp_path / "split"), "--resume"], check=True, capture_output=True)
    assert_same_checkpoint(tmp_path / "straight" / "last.npz", tmp_path / "split" / "last.npz")
