"""The training loop every model shares: steps, clipping, progress, evaluation, checkpoints, resuming.

A model brings a `train_step(run) -> (loss, grads)` that draws its own batch from run.rng (so the
data order is part of the saved rng state) and may keep extra arrays in run.state (a carried hidden
state, a REINFORCE baseline; assign new arrays there rather than changing them in place). The loop
does the rest:

    for each step:  loss, grads = train_step(run); clip; optimizer.step(params, grads)
    every eval_every steps: scores = evaluate(run); keep best.npz when scores[metric] improves
    every checkpoint_every steps and at the end: write last.npz (atomically)

What is saved is always the state after a whole step: parameters, optimizer, rng, run.state, step,
history, best score and the early-stopping count agree, so a resumed run continues exactly as the
uninterrupted one. SIGINT (Ctrl-C) and SIGTERM are deferred while the loop runs: the step, its
evaluation and its checkpoint finish, then last.npz is written and the run stops (KeyboardInterrupt).
A second signal stops at once; last.npz then keeps the last whole state written. A crash mid-write
leaves the previous file intact (minicap.checkpoint writes atomically).

A run that diverges stops with a MinicapError and writes nothing: a non-finite loss, parameter or
validation score never reaches last.npz or best.npz, and a smoothed loss that climbs to DIVERGED
times the first step's stops the run too.
"""
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minicap.checkpoint import check_param_shapes, load_checkpoint, save_checkpoint
from minicap.errors import MinicapError
from minicap.optim import clip_by_global_norm, clip_by_norm_per_parameter, clip_by_value, make_optimizer


@dataclass
class Run:
    """Everything a training run is: what a checkpoint saves and a resume restores."""
    kind: str
    config: dict
    params: dict
    optimizer: object
    rng: np.random.Generator
    step: int = 0
    state: dict = field(default_factory=dict)   # model-specific arrays carried across steps
    best_score: float = None                     # the best validation score so far (None: not evaluated)
    best_metric: str = None                      # the name of that score: a resumed run must keep it
    bad_evals: int = 0                           # evaluations since it last improved (early stopping)
    history: list = field(default_factory=list)  # (step, loss) every log_every steps

    def save(self, path, extra=None):
        extra_arrays = {f"state/{k}": v for k, v in self.state.items()}
        extra_arrays["best_score"] = np.array(math.nan if self.best_score is None else self.best_score)
        extra_arrays["best_metric"] = np.array(self.best_metric or "")
        extra_arrays["bad_evals"] = np.array(self.bad_evals)
        extra_arrays["history"] = np.array(self.history, dtype=np.float64).reshape(-1, 2)
        extra_arrays.update(extra or {})
        save_checkpoint(path, self.kind, self.params, config=self.config, step=self.step,
                        optimizer=self.optimizer, rng=self.rng, extra=extra_arrays)


def resume_run(path, kind, fresh_params):
    """Rebuild a Run from a checkpoint written by Run.save, checking it matches the model."""
    ck = load_checkpoint(path, kind=kind)
    check_param_shapes(path, ck.params, fresh_params)
    optimizer = make_optimizer(ck.optimizer_name)
    optimizer.load_state_dict(ck.optimizer_state)
    state = {k[len("state/"):]: v for k, v in ck.extra.items() if k.startswith("state/")}
    history = [tuple(row) for row in ck.extra.get("history", np.zeros((0, 2)))]
    best = float(ck.extra.get("best_score", math.nan))
    return Run(kind=kind, config=ck.config, params=ck.params, optimizer=optimizer, rng=ck.rng,
               step=ck.step, state=state, best_score=None if math.isnan(best) or math.isinf(best) else best,
               best_metric=str(ck.extra.get("best_metric", "")) or None,
               bad_evals=int(ck.extra.get("bad_evals", 0)), history=history)


def _clip(grads, clip):
    """clip: None, ("global", max_norm), ("value", limit) or ("per_param", max_norm)."""
    if clip is None:
        return
    kind, limit = clip
    {"global": clip_by_global_norm, "value": clip_by_value, "per_param": clip_by_norm_per_parameter}[kind](grads, limit)


# A smoothed loss this many times the first step's (at least 1) means the run diverged: min-char-rnn
# at --lr 100 climbed from 4.2 to ~4,000 nats per character with finite parameters and exited 0.
DIVERGED = 10.0


def _first_non_finite(params):
    """The name of a parameter holding NaN or inf, or None."""
    return next((name for name, value in params.items() if not np.all(np.isfinite(value))), None)


class DeferredSignals:
    """While active, SIGINT and SIGTERM only set `received`; a second one raises KeyboardInterrupt.

    The training loop checks `received` between steps, so a signal never lands in the middle of a
    parameter update, an evaluation or a checkpoint write. Only the main thread can take signals;
    elsewhere (a loop run from a worker thread) this does nothing.
    """

    def __init__(self, message):
        self.message, self.received, self.previous = message, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"\n{self.received}: {self.message}", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _improved(score, best, higher_is_better):
    return best is None or (score > best if higher_is_better else score < best)


def train(run, train_step, steps, out_dir, clip=None, log_every=100, evaluate=None, eval_every=None,
          metric=None, higher_is_better=True, patience=None, checkpoint_every=500, on_log=None, extra=None,
          progress=True):
    """Train `run` in place up to `steps` total steps (a resumed run continues from run.step).

    train_step(run) -> (loss, grads). evaluate(run) -> dict of scores, every eval_every steps;
    `metric` names the score that picks best.npz (the highest, or the lowest with
    higher_is_better=False), and training stops early after `patience` evaluations without
    improvement. on_log(run, smoothed loss) -> a line to print (e.g. with a sample) every log_every
    steps. extra: arrays saved into every checkpoint (e.g. a vocabulary). progress: a progress bar on
    a terminal, a plain line every log_every steps elsewhere (a pipe or a log file). Returns the run.
    Raises KeyboardInterrupt after saving when SIGINT/SIGTERM arrived (see the module docstring).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last, best = out_dir / "last.npz", out_dir / "best.npz"
    if metric is not None and run.best_metric not in (None, metric):
        raise MinicapError(f"this run keeps its best checkpoint by {run.best_metric}, not {metric}; resume it "
                           f"with the same metric, or start a new run")
    run.best_metric = metric if metric is not None else run.best_metric
    if patience is not None and run.bad_evals >= patience:
        print(f"the run stopped early at step {run.step} ({metric} had not improved for {patience} evaluations); "
              f"raise the patience to train it further")
        return run
    interactive = progress and sys.stderr.isatty()
    bar = tqdm(total=steps, initial=run.step, disable=not interactive, dynamic_ncols=True, desc=run.kind)
    smooth, first_loss, start, start_step = None, None, time.time(), run.step

    def save(path):
        bad = _first_non_finite(run.params)
        if bad is not None:
            raise MinicapError(f"parameter {bad} became NaN or infinite by step {run.step}: the run diverged "
                               f"(lower --lr or --clip); {last} keeps the last good state")
        run.save(path, extra)

    phase = "between steps"
    # overflow warnings from a diverging step would only bury the one-line error the checks below give
    with DeferredSignals(f"stopping after this step and saving {last} (again to stop at once)") as signals, \
            np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            while run.step < steps and not signals.received:
                phase = "step"
                rng_before, state_before = run.rng.bit_generator.state, dict(run.state)
                loss, grads = train_step(run)
                if not np.isfinite(loss):
                    raise MinicapError(f"the loss became {loss} at step {run.step + 1}: the run diverged "
                                       f"(lower --lr or --clip); {last} keeps the last good state")
                _clip(grads, clip)
                phase = "update"   # parameters change in place from here: no consistent state until the step ends
                run.optimizer.step(run.params, grads)
                run.step += 1
                phase = "after the update"
                smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                bar.update(1)
                bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)  # redraw at tqdm's own pace, not every step
                first_loss = loss if first_loss is None else first_loss
                if run.step % log_every == 0 or run.step == steps:
                    if smooth > DIVERGED * max(abs(first_loss), 1.0):
                        raise MinicapError(f"the loss rose from {first_loss:.4g} to {smooth:.4g} by step {run.step}: "
                                           f"the run diverged (lower --lr or --clip); {last} keeps the last state "
                                           f"written, which may already be diverging")
                    run.history.append((run.step, float(loss)))
                    line = on_log(run, smooth) if on_log is not None else None
                    if progress and not interactive and line is None:
                        rate = (run.step - start_step) / max(time.time() - start, 1e-9)
                        line = f"{run.kind} step {run.step}/{steps}: loss {smooth:.4f} ({rate:.1f} steps/s)"
                    if line:
                        bar.write(line)
                if evaluate is not None and eval_every and (run.step % eval_every == 0 or run.step == steps):
                    scores = evaluate(run)
                    bad = [k for k, v in scores.items() if not np.isfinite(v)]
                    if bad:
                        raise MinicapError(f"validation {', '.join(bad)} became NaN or infinite at step {run.step}: "
                                           f"the run diverged (lower --lr or --clip); {last} keeps the last good state")
                    bar.write(f"step {run.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
                    if metric is not None and _improved(scores[metric], run.best_score, higher_is_better):
                        run.best_score, run.bad_evals = float(scores[metric]), 0
                        save(best)
                    elif metric is not None:
                        run.bad_evals += 1
                        if patience is not None and run.bad_evals >= patience:
                            bar.write(f"early stop: {metric} has not improved for {patience} evaluations")
                            break
                if run.step % checkpoint_every == 0:
                    save(last)
                phase = "between steps"
            save(last)
        except KeyboardInterrupt:   # a second signal, or one raised by the step itself
            bar.close()
            if phase in ("step", "between steps"):  # before the update: the state at the start of this step
                if phase == "step":
                    run.rng.bit_generator.state, run.state = rng_before, state_before
                save(last)
                print(f"\ninterrupted at step {run.step}; saved {last} (resume with the same command and --resume)",
                      file=sys.stderr)
            else:
                print(f"\ninterrupted during step {run.step} ({phase}); {last} keeps the last whole state written",
                      file=sys.stderr)
            raise
    bar.close()
    if signals.received:
        print(f"stopped at step {run.step} ({signals.received}); saved {last} "
              f"(resume with the same command and --resume)", file=sys.stderr)
        raise KeyboardInterrupt
    if progress:
        print(f"trained to step {run.step} in {time.time() - start:.0f} s; checkpoint {last}")
    return run
