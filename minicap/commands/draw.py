"""`minicap train draw`, and DRAW's part of `minicap generate`: train DRAW on MNIST digits, draw samples.

    minicap train draw [--attention | --no-attention] [--steps N] [--out DIR] [--resume]
    minicap generate CHECKPOINT [--n 16] --out FILE.png [--gif FILE.gif]      (see minicap/commands/generate.py)

Training reads the shipped MNIST subset's 4,000 train digits (minicap.data.mnist), binarised afresh
for every batch (pixel ~ Bernoulli(intensity / 255)); every --eval-every steps it prints the bound on
the 500 validation digits (binarised once, with a fixed seed) and keeps the best parameters in
OUT/best.npz. At the end it prints the bound of best.npz on the 500 test digits and writes
OUT/summary.json. OUT/last.npz (kind "draw") resumes the exact run with --resume.

Its pictures are drawn by minicap.viz.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from minicap.commands.runs import merge_settings, open_run_folder, positive_float, positive_int, seed
from minicap.errors import MinicapError

KIND = "draw"
# options that define the model and its data: a resumed run must keep them
FIXED_ON_RESUME = ("attention", "T", "read_n", "write_n", "enc_size", "dec_size", "z_size", "batch", "lr", "clip",
                   "seed")
# read and write 8 x 8 (alignDRAW's MNIST patch size), not the paper's 2 x 2 read and 5 x 5 write: in the
# few thousand steps a laptop gives, a 2 x 2 read never got the latents used (the bound stayed near the
# "average digit", ~200 nats, for 1500 steps) and 5 x 5 trailed 8 x 8 by ~10 nats (see docs/draw.md).
# 5000 steps: at 3000 attention and no attention were still tied; by 5000 attention was 2 nats better.
DEFAULTS = dict(attention=True, T=16, read_n=8, write_n=8, enc_size=256, dec_size=256, z_size=100, batch=64,
                lr=1e-3, clip=10.0, steps=5000, eval_every=250)


def configure(parser):
    parser.add_argument("--attention", action=argparse.BooleanOptionalAction, default=None,
                        help="read and write through Gaussian filterbank windows (the default); --no-attention: "
                             "the paper's baseline, which reads the whole image and writes a whole canvas")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"train up to this many steps in total (default {DEFAULTS['steps']})")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for last.npz, best.npz and summary.json "
                             "(default runs/draw, or runs/draw-no-attention)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    parser.add_argument("--glimpses", dest="T", type=positive_int, default=None,
                        help=f"T, the number of read/write steps (default {DEFAULTS['T']}; the paper used 64)")
    parser.add_argument("--read-n", type=positive_int, default=None, help=f"read patch N x N (default {DEFAULTS['read_n']})")
    parser.add_argument("--write-n", type=positive_int, default=None,
                        help=f"write patch N x N (default {DEFAULTS['write_n']})")
    parser.add_argument("--hidden", type=positive_int, default=None,
                        help=f"encoder and decoder LSTM units (default {DEFAULTS['enc_size']})")
    parser.add_argument("--z-size", type=positive_int, default=None, help=f"latent units per step (default {DEFAULTS['z_size']})")
    parser.add_argument("--batch", type=positive_int, default=None, help=f"digits per step (default {DEFAULTS['batch']})")
    parser.add_argument("--lr", type=positive_float, default=None, help=f"Adam learning rate (default {DEFAULTS['lr']:g})")
    parser.add_argument("--clip", type=positive_float, default=None,
                        help=f"clip the gradient's global norm to this (default {DEFAULTS['clip']:g})")
    parser.add_argument("--eval-every", type=positive_int, default=None,
                        help=f"print the validation bound every N steps (default {DEFAULTS['eval_every']})")
    parser.add_argument("--seed", type=seed, default=None, help="random seed of the initialisation and data (default 0)")


def _settings(args, previous):
    given = {"attention": args.attention, "T": args.T, "read_n": args.read_n, "write_n": args.write_n,
             "enc_size": args.hidden, "dec_size": args.hidden, "z_size": args.z_size, "batch": args.batch,
             "lr": args.lr, "clip": args.clip, "steps": args.steps, "eval_every": args.eval_every, "seed": args.seed}
    return merge_settings(given, previous, dict(DEFAULTS, seed=0), FIXED_ON_RESUME, args.out,
                          flags={"T": "glimpses", "enc_size": "hidden", "dec_size": "hidden"})


def model_config(cfg):
    """The DRAW config (minicap.models.draw.default_config) of a run's settings."""
    from minicap.models import draw
    return draw.default_config(T=cfg["T"], read_n=cfg["read_n"], write_n=cfg["write_n"], enc_size=cfg["enc_size"],
                               dec_size=cfg["dec_size"], z_size=cfg["z_size"], attention=cfg["attention"])


def run(args):
    if getattr(args, "_draw_command", "train") == "train":
        return run_train(args)
    raise AssertionError("unknown DRAW command")


def run_train(args):
    from minicap.checkpoint import load_checkpoint
    from minicap.data.mnist import load_mnist_5k
    from minicap.models import draw
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    attention = True if args.attention is None else args.attention
    if args.out is None:
        args.out = Path("runs/draw" if attention else "runs/draw-no-attention")
    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last, best = folder.previous, folder.last, folder.best
    cfg = _settings(args, previous)
    config = model_config(cfg)

    train_images, _ = load_mnist_5k("train")
    val = draw.held_out_digits("val")
    rng = np.random.default_rng(cfg["seed"])
    fresh = draw.init_params(config, rng, np.float32)
    if previous:
        run_ = resume_run(last, KIND, fresh)
        print(f"resuming {last} at step {run_.step}")
    else:
        run_ = Run(kind=KIND, config=dict(cfg), params=fresh,
                   optimizer=make_optimizer("adam", lr=cfg["lr"]), rng=rng)
        print(f"DRAW {'with' if cfg['attention'] else 'without'} attention: T = {cfg['T']} glimpses, "
              + (f"read {cfg['read_n']}x{cfg['read_n']}, write {cfg['write_n']}x{cfg['write_n']}, " if cfg['attention'] else "")
              + f"LSTMs {cfg['enc_size']}, z {cfg['z_size']}, {sum(p.size for p in fresh.values())} parameters; "
              f"{len(train_images)} train digits, {len(val)} validation digits")
    run_.config["steps"] = cfg["steps"]
    if run_.step >= cfg["steps"]:
        print(f"the run is already at step {run_.step} (target {cfg['steps']}); raise --steps to train more")
        return 0

    def evaluate(run):
        # the same eps for every evaluation, so the numbers move only because the model does
        b = draw.bound(run.params, val, config, np.random.default_rng(12345)).mean()
        return {"val_bound": float(b)}

    start = time.time()
    train(run_, draw.make_train_step(config, train_images, cfg["batch"]), cfg["steps"], args.out,
          clip=("global", cfg["clip"]), log_every=cfg["eval_every"], evaluate=evaluate,
          eval_every=cfg["eval_every"], metric="val_bound", higher_is_better=False, checkpoint_every=cfg["eval_every"])
    seconds = time.time() - start

    chosen = best if best.exists() else last
    ck = load_checkpoint(chosen, kind=KIND)
    test = draw.held_out_digits("test")
    test_bounds = draw.bound(ck.params, test, config, np.random.default_rng(54321))
    val_bound = float(draw.bound(ck.params, val, config, np.random.default_rng(12345)).mean())
    summary = {"attention": cfg["attention"], "checkpoint": str(chosen), "step": ck.step, "val_bound": val_bound,
               "test_bound": float(test_bounds.mean()), "test_bound_sem": float(test_bounds.std() / np.sqrt(len(test))),
               "train_seconds_this_session": round(seconds, 1), "config": cfg}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{chosen} (step {ck.step}): bound on the {len(test)} test digits {summary['test_bound']:.2f} "
          f"+- {summary['test_bound_sem']:.2f} nats per image (validation {val_bound:.2f})")
    print(f"draw samples: minicap generate {chosen} --out runs/draw_samples.png --gif runs/drawing.gif")
    return 0


# --- minicap generate, for a DRAW checkpoint ------------------------------------------------------
GENERATE_BATCH = 256   # samples drawn at once
ANIMATED = 64          # samples shown in the --gif animation
def generate(ck, path, args):
    """Samples of a DRAW checkpoint (a minicap.checkpoint.Checkpoint read from `path`) as a PNG grid,
    and with --gif an animation of the canvases being drawn. Called by minicap/commands/generate.py."""
    from minicap.checkpoint import check_param_shapes
    from minicap.models import draw
    from minicap.models.encoder import classify_digits
    from minicap.viz import canvas_animation, first_samples, glimpse_strip, image_grid, save_gif, save_png

    if args.captions:
        raise MinicapError(f"{path} holds an unconditional DRAW model: it draws digits, not captions; "
                           f"drop the caption(s), or give an alignDRAW checkpoint")
    config = model_config({**DEFAULTS, **ck.config})
    check_param_shapes(path, ck.params, draw.init_params(config, np.random.default_rng(0)))
    temperature = 1.0 if args.temperature is None else args.temperature
    # in batches, recording the drawing of the first batch only: memory stays bounded for any --n
    rng = np.random.default_rng(args.seed)
    images, history = draw.generate(ck.params, config, min(args.n, GENERATE_BATCH), rng, record=True,
                                    temperature=temperature)
    images = np.concatenate([images] + [draw.generate(ck.params, config, min(GENERATE_BATCH, args.n - start), rng,
                                                      temperature=temperature)
                                        for start in range(GENERATE_BATCH, args.n, GENERATE_BATCH)])
    history = first_samples(history, ANIMATED)
    save_png(image_grid(images, scale=args.scale), args.out)
    print(f"wrote {args.n} samples from {path} (step {ck.step}) to {args.out}")
    named = classify_digits(images)
    if named is not None:
        digits, confidence = named
        print(f"the shipped MNIST classifier (data/encoder_mnist.npz) names {int((confidence > 0.9).sum())} of "
              f"{args.n} samples with confidence > 0.9; row by row: {' '.join(str(d) for d in digits)}")
    if args.gif:
        save_gif(canvas_animation(history, scale=args.scale), args.gif)
        print(f"wrote the drawing of the first {min(args.n, ANIMATED)} samples, {len(history)} glimpses, to {args.gif}")
    if args.strip:
        save_png(np.asarray(glimpse_strip(history, scale=args.scale)), args.strip)
        print(f"wrote the drawing of the first {min(4, args.n)} samples, glimpse by glimpse, to {args.strip}")
    return 0
