"""The training loop every model shares: steps, clipping, progress, evaluation, checkpoints, resuming.

A model brings a `train_step(run) -> (loss, grads)` that draws its own batch from run.rng (so the
data order is part of the saved rng state) and may keep extra arrays in run.state (a carried hidden
state, a REINFORCE baseline; assign new arrays there rather than changing them in place). The loop
does the rest:

    for each step:  loss, grads = train_step(run); clip; optimizer.step(params, grads)
    every eval_every steps: scores = evaluate(run); keep best.npz when scores[metric] improves
    every checkpoint_every steps and at the end: write last.npz (atomically)

Resuming loads last.npz: parameters, optimizer state, rng state, run.state and the step count, so
the resumed run continues exactly as the uninterrupted one would have. Ctrl-C rolls the rng and
run.state back to the start of the unfinished step and writes last.npz, so even an interrupted run
resumes exactly; a crash mid-write leaves the previous file intact.
"""
import math
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
    best_score: float = -math.inf
    history: list = field(default_factory=list)  # (step, loss) every log_every steps

    def save(self, path, extra=None):
        extra_arrays = {f"state/{k}": v for k, v in self.state.items()}
        extra_arrays["best_score"] = np.array(self.best_score)
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
    return Run(kind=kind, config=ck.config, params=ck.params, optimizer=optimizer, rng=ck.rng,
               step=ck.step, state=state, best_score=float(ck.extra.get("best_score", -math.inf)),
               history=history)


def _clip(grads, clip):
    """clip: None, ("global", max_norm), ("value", limit) or ("per_param", max_norm)."""
    if clip is None:
        return
    kind, limit = clip
    {"global": clip_by_global_norm, "value": clip_by_value, "per_param": clip_by_norm_per_parameter}[kind](grads, limit)


def train(run, train_step, steps, out_dir, clip=None, log_every=100, evaluate=None, eval_every=None,
          metric=None, patience=None, checkpoint_every=500, on_log=None, extra=None, progress=True):
    """Train `run` in place up to `steps` total steps (a resumed run continues from run.step).

    train_step(run) -> (loss, grads). evaluate(run) -> dict of scores, every eval_every steps;
    `metric` names the score to maximise: best.npz is written when it improves, and training stops
    early after `patience` evaluations without improvement. on_log(run, loss) prints extra output
    (a sample) every log_every steps. extra: arrays saved into every checkpoint (e.g. a vocabulary).
    Returns the run.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last, best = out_dir / "last.npz", out_dir / "best.npz"
    bar = tqdm(total=steps, initial=run.step, disable=not progress, dynamic_ncols=True, desc=run.kind)
    smooth, bad_evals, start = None, 0, time.time()
    updating = False
    try:
        while run.step < steps:
            rng_before, state_before = run.rng.bit_generator.state, dict(run.state)
            loss, grads = train_step(run)
            if not np.isfinite(loss):
                raise MinicapError(f"the loss became {loss} at step {run.step}; lower the learning rate or "
                                   f"clip gradients, and resume from {last} if it exists")
            _clip(grads, clip)
            updating = True  # parameters change in place from here: no consistent state to save
            run.optimizer.step(run.params, grads)
            run.step += 1
            updating = False
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4f}", refresh=False)  # redraw at tqdm's own pace, not every step
            if run.step % log_every == 0 or run.step == steps:
                run.history.append((run.step, float(loss)))
                if on_log is not None:
                    bar.write(on_log(run, smooth) or "")
            if evaluate is not None and eval_every and (run.step % eval_every == 0 or run.step == steps):
                scores = evaluate(run)
                bar.write(f"step {run.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
                if metric is not None and scores[metric] > run.best_score:
                    run.best_score, bad_evals = float(scores[metric]), 0
                    run.save(best, extra)
                else:
                    bad_evals += 1
                    if patience is not None and bad_evals >= patience:
                        bar.write(f"early stop: {metric} has not improved for {patience} evaluations")
                        break
            if run.step % checkpoint_every == 0:
                run.save(last, extra)
    except KeyboardInterrupt:
        bar.close()
        if updating:
            print(f"\ninterrupted during a parameter update; {last} keeps the last checkpoint")
        else:
            run.rng.bit_generator.state, run.state = rng_before, state_before
            run.save(last, extra)
            print(f"\ninterrupted at step {run.step}; saved {last} (resume with the same command and --resume)")
        raise
    bar.close()
    run.save(last, extra)
    if progress:
        print(f"trained to step {run.step} in {time.time() - start:.0f} s; checkpoint {last}")
    return run
