"""The run folder every training command shares (minicap/commands/runs.py), the options it refuses,
and what a diverged run does: one run per folder, clear errors, nothing a user had is lost."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minicap import MinicapError
from minicap.checkpoint import load_checkpoint
from minicap.cli import main
from minicap.commands import runs

TINY_DRAW = ["train", "draw", "--glimpses", "2", "--read-n", "2", "--write-n", "2", "--hidden", "8", "--z-size", "3",
             "--batch", "8", "--eval-every", "2"]


def test_a_second_run_on_a_held_folder_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path):
    holder = runs.open_run_folder(tmp_path / "run", "toy", resume=False)
    assert (tmp_path / "run" / runs.LOCK_NAME).read_text().strip() == str(os.getpid())
    # another process cannot take it while this one holds it
    probe = ("import sys; from minicap.commands import runs\n"
             "try:\n    runs.open_run_folder(sys.argv[1], 'toy', resume=False)\n"
             "except Exception as err:\n    print(err); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run")], capture_output=True, text=True)
    assert other.returncode == 3 and f"pid {os.getpid()}" in other.stdout and "another --out" in other.stdout
    runs.release(holder)
    assert subprocess.run([sys.executable, "-c", probe, str(tmp_path / "run")]).returncode == 0
    # a run killed with its lock file left behind: the kernel dropped its lock, the folder is taken over
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / runs.LOCK_NAME).write_text("999999\n")
    taken = runs.open_run_folder(tmp_path / "dead", "toy", resume=False)
    assert (tmp_path / "dead" / runs.LOCK_NAME).read_text().strip() == str(os.getpid())
    runs.release(taken)


def test_two_training_commands_on_one_out_never_both_run(tmp_path):
    holder = runs.open_run_folder(tmp_path / "run", "draw", resume=False)
    try:
        result = subprocess.run([sys.executable, "-m", "minicap", *TINY_DRAW, "--steps", "2", "--out",
                                 str(tmp_path / "run")], capture_output=True, text=True)
    finally:
        runs.release(holder)
    assert result.returncode == 2 and "another minicap run" in result.stderr
    assert not (tmp_path / "run" / "last.npz").exists()


def test_leftover_temporary_files_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / "run").mkdir()
    orphan = tmp_path / "run" / "last.npz.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    runs.release(runs.open_run_folder(tmp_path / "run", "toy", resume=False))
    assert not orphan.exists()


@pytest.mark.parametrize("make", ["file", "under a file"])
def test_out_that_is_a_file_gives_one_line(tmp_path, capsys, make):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if make == "file" else tmp_path / "f" / "run"
    assert main(TINY_DRAW + ["--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minicap: error: --out") and err.count("\n") == 1 and "not a folder" in err


@pytest.mark.parametrize("args, flag", [
    (["--lr", "nan"], "--lr"), (["--lr", "-1"], "--lr"), (["--clip", "nan"], "--clip"), (["--clip", "inf"], "--clip"),
    (["--seed", "-1"], "--seed"), (["--steps", "0"], "--steps"), (["--batch", "x"], "--batch"),
])
def test_bad_numbers_are_refused_before_anything_runs(tmp_path, capsys, args, flag):
    assert main(TINY_DRAW + args + ["--out", str(tmp_path / "r")]) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", [
    ["train", "charrnn"], ["train", "encoder"], ["train", "aligndraw"], ["train", "captioner"],
    ["sample", "x.npz"], ["generate", "x.npz", "--out", "x.png"], ["data", "show", "mnist-captions"],
    ["roundtrip", "x.npz", "--captioner", "y.npz"],
])
def test_a_negative_seed_is_refused_by_every_command(capsys, command):
    assert main(command + ["--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def test_temperature_inf_and_output_files_are_checked_up_front(tmp_path, capsys):
    assert main(["sample", "x.npz", "--temperature", "inf"]) == 2
    assert main(["generate", "x.npz", "--out", "x.jpg"]) == 2
    (tmp_path / "file").write_text("x")
    assert main(["generate", "x.npz", "--out", str(tmp_path / "file" / "x.png")]) == 2
    assert main(["evaluate", "x.npz", "--captions-out", str(tmp_path / "c.txt")]) == 2
    assert main(["caption", "x.npz", "test:1", "--attention-png", str(tmp_path / "file" / "a.png")]) == 2
    assert main(["data", "show", "mnist-captions", "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["generate", "x.npz", "--n", "100000", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 7


def test_settings_fixed_on_resume_are_refused_when_changed(tmp_path, capsys):
    assert main(TINY_DRAW + ["--steps", "2", "--out", str(tmp_path / "r")]) == 0
    assert main(TINY_DRAW + ["--steps", "4", "--out", str(tmp_path / "r"), "--resume", "--seed", "3"]) == 2
    assert "seed = 0" in capsys.readouterr().err
    assert main(TINY_DRAW + ["--steps", "4", "--out", str(tmp_path / "r"), "--resume", "--lr", "0.5"]) == 2
    assert "drop --lr" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "r" / "last.npz").step == 2      # untouched


def test_merge_settings_order_and_refusal():
    defaults = {"lr": 1.0, "steps": 10, "metric": "CIDEr"}
    assert runs.merge_settings({"steps": None}, None, defaults, ("lr",), "out") == defaults
    assert runs.merge_settings({"steps": 20}, {"lr": 2.0, "steps": 15}, defaults, ("lr",), "out")["steps"] == 20
    assert runs.merge_settings({"lr": None}, {"lr": 2.0}, defaults, ("lr",), "out")["lr"] == 2.0
    with pytest.raises(MinicapError, match="metric = 'CIDEr', not 'accuracy'"):
        runs.merge_settings({"metric": "accuracy"}, {"lr": 2.0}, defaults, ("metric",), "out")


def test_resume_refuses_another_metric_in_the_training_loop(tmp_path):
    from minicap.optim import Adam
    from minicap.train import Run, resume_run, train

    def step(run):
        return 0.0, {"w": np.zeros(2)}

    run = Run(kind="toy", config={}, params={"w": np.zeros(2)}, optimizer=Adam(), rng=np.random.default_rng(0))
    train(run, step, 2, tmp_path, evaluate=lambda run: {"CIDEr": 8.1, "accuracy": 0.5}, eval_every=1,
          metric="CIDEr", progress=False)
    resumed = resume_run(tmp_path / "last.npz", "toy", {"w": np.zeros(2)})
    assert resumed.best_metric == "CIDEr" and resumed.best_score == 8.1
    with pytest.raises(MinicapError, match="keeps its best checkpoint by CIDEr, not accuracy"):
        train(resumed, step, 4, tmp_path, evaluate=lambda run: {"accuracy": 0.9}, eval_every=1, metric="accuracy",
              progress=False)


@pytest.mark.parametrize("bad", ["loss", "parameter", "score"])
def test_a_diverged_run_stops_with_an_error_and_never_becomes_best(tmp_path, bad):
    from minicap.optim import SGD
    from minicap.train import Run, train

    def step(run):
        if run.step == 3 and bad == "loss":
            return float("inf"), {"w": np.zeros(2)}
        grad = np.full(2, np.inf) if run.step == 3 and bad == "parameter" else np.ones(2)
        return 1.0, {"w": grad}

    scores = iter([1.0, 2.0, 3.0, float("nan"), 5.0])
    run = Run(kind="toy", config={}, params={"w": np.zeros(2)}, optimizer=SGD(lr=0.1), rng=np.random.default_rng(0))
    with pytest.raises(MinicapError, match="diverged"):
        train(run, step, 10, tmp_path, evaluate=lambda run: {"s": next(scores)}, eval_every=1, metric="s",
              checkpoint_every=1, progress=False)
    for name in ("last.npz", "best.npz"):
        ck = load_checkpoint(tmp_path / name)
        assert ck.step == 3 and np.all(np.isfinite(ck.params["w"]))


def test_draw_at_a_huge_learning_rate_fails_and_suggests_nothing(tmp_path, capsys):
    assert main(TINY_DRAW + ["--steps", "3", "--lr", "1e30", "--out", str(tmp_path / "r")]) == 2
    out = capsys.readouterr()
    assert "diverged" in out.err and "minicap generate" not in out.out
    assert not (tmp_path / "r" / "best.npz").exists()


def test_a_run_whose_loss_climbs_stops_with_an_error(tmp_path, capsys):
    """min-char-rnn at --lr 100 keeps finite parameters while its loss climbs ~1000-fold: not a success."""
    assert main(["train", "charrnn", "--lr", "100", "--steps", "500", "--log-every", "250",
                 "--out", str(tmp_path / "r")]) == 2
    assert "the run diverged" in capsys.readouterr().err
