"""The shared training loop: it trains, checkpoints, resumes exactly, and survives Ctrl-C."""
import numpy as np
import pytest

from minicap.optim import Adam
from minicap.train import Run, resume_run, train

TARGET = np.array([1.0, -2.0, 3.0])


def new_run(seed=0):
    return Run(kind="toy", config={"lr": 0.05}, params={"w": np.zeros(3)}, optimizer=Adam(lr=0.05),
               rng=np.random.default_rng(seed))


def noisy_quadratic_step(run):
    """A stochastic objective: the gradient carries rng noise and a running count in run.state."""
    noise = run.rng.standard_normal(3) * 0.1
    run.state["calls"] = run.state.get("calls", np.array(0)) + 1
    diff = run.params["w"] - TARGET
    return float(0.5 * diff @ diff), {"w": diff + noise}


def test_train_reaches_the_minimum_and_writes_checkpoints(tmp_path):
    run = train(new_run(), noisy_quadratic_step, steps=600, out_dir=tmp_path, progress=False)
    np.testing.assert_allclose(run.params["w"], TARGET, atol=0.1)
    assert (tmp_path / "last.npz").exists() and run.step == 600 and int(run.state["calls"]) == 600


def test_resume_continues_exactly(tmp_path):
    straight = train(new_run(), noisy_quadratic_step, steps=40, out_dir=tmp_path / "a", progress=False)
    train(new_run(), noisy_quadratic_step, steps=25, out_dir=tmp_path / "b", progress=False)
    resumed = resume_run(tmp_path / "b" / "last.npz", "toy", {"w": np.zeros(3)})
    assert resumed.step == 25
    train(resumed, noisy_quadratic_step, steps=40, out_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])
    assert int(resumed.state["calls"]) == 40


def test_ctrl_c_mid_step_saves_a_state_that_resumes_exactly(tmp_path):
    straight = train(new_run(), noisy_quadratic_step, steps=30, out_dir=tmp_path / "a", progress=False)

    def interrupted_step(run):
        if run.step == 12:
            run.rng.standard_normal(3)  # the step had started drawing its batch
            raise KeyboardInterrupt
        return noisy_quadratic_step(run)

    with pytest.raises(KeyboardInterrupt):
        train(new_run(), interrupted_step, steps=30, out_dir=tmp_path / "b", progress=False)
    resumed = resume_run(tmp_path / "b" / "last.npz", "toy", {"w": np.zeros(3)})
    assert resumed.step == 12
    train(resumed, noisy_quadratic_step, steps=30, out_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(resumed.params["w"], straight.params["w"])


def test_best_checkpoint_and_early_stopping(tmp_path):
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    run = train(new_run(), noisy_quadratic_step, steps=100, out_dir=tmp_path, progress=False,
                evaluate=lambda run: {"score": next(scores)}, eval_every=10, metric="score", patience=3)
    assert run.step == 50 and run.best_score == 0.5  # stopped after three evaluations without improvement
    best = resume_run(tmp_path / "best.npz", "toy", {"w": np.zeros(3)})
    assert best.step == 20


def test_nan_loss_gives_a_clear_error(tmp_path):
    from minicap import MinicapError
    with pytest.raises(MinicapError, match="the loss became nan"):
        train(new_run(), lambda run: (float("nan"), {"w": np.zeros(3)}), steps=5, out_dir=tmp_path, progress=False)
