"""`minicap train encoder`: pretrain the image encoder CNN as a digit classifier, then freeze it.

    minicap train encoder [--out runs/encoder] [--steps 1500 | --epochs E] [--resume] [--batch 64] [--lr 2e-3]

Trains on the 4,000 TRAIN digits of the shipped MNIST subset only (each pasted at a random offset in
a 36x36 black square, see minicap.models.encoder), keeps OUT/best.npz by accuracy on the 500 VAL
digits, and finally reports the accuracy of best.npz on the 500 held-out TEST digits. It writes:

    OUT/last.npz     the run (parameters, Adam state, rng, step): --resume continues it exactly
    OUT/best.npz     the run at its best validation accuracy
    OUT/encoder.npz  the frozen encoder: best.npz's parameters only, with its test accuracy in the
                     config; what load_encoder(path) and the captioner read

The shipped data/encoder_mnist.npz is such an encoder.npz (data/README.md gives the command).
"""
import math
from pathlib import Path

import numpy as np

from minicap.commands.runs import merge_settings, open_run_folder, positive_float, positive_int, seed
from minicap.errors import MinicapError
from minicap.optim import cosine_lr

DEFAULTS = {"steps": 1500, "batch": 64, "lr": 2e-3, "eval_every": 250}
FIXED_ON_RESUME = ("batch", "lr", "channels", "seed")
N_TRAIN_DIGITS = 4000


def configure(parser):
    from minicap.models.encoder import DEFAULT_RUN_DIR
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, default=None,
                        help=f"train up to this many steps in total (default {DEFAULTS['steps']}: "
                             f"{DEFAULTS['steps'] * DEFAULTS['batch'] // N_TRAIN_DIGITS} passes over the train digits)")
    length.add_argument("--epochs", type=positive_float, default=None,
                        help="the same length given in passes over the 4,000 train digits (steps = epochs * 4000 / batch)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RUN_DIR,
                        help=f"folder for last.npz, best.npz and the frozen encoder.npz (default {DEFAULT_RUN_DIR})")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    parser.add_argument("--batch", type=positive_int, default=None, help=f"digits per step (default {DEFAULTS['batch']})")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help=f"Adam's starting learning rate, decayed to 0 on a cosine over the run (default {DEFAULTS['lr']})")
    parser.add_argument("--channels", default=None,
                        help="output channels of conv1..conv4, comma-separated (default 16,32,64,64); the last is D")
    parser.add_argument("--eval-every", type=positive_int, default=None,
                        help=f"measure validation accuracy (and keep best.npz) every N steps (default {DEFAULTS['eval_every']})")
    parser.add_argument("--seed", type=seed, default=None, help="random seed of the initialisation and the batches (default 0)")


def _parse_channels(text):
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        channels = ()
    if len(channels) != 4 or min(channels) < 1:
        raise MinicapError(f"--channels wants four positive integers like 16,32,64,64, got {text!r}")
    return channels


def _settings(args, previous):
    """The defaults, then the resumed run's settings, then the command line."""
    from minicap.models.encoder import DEFAULT_CHANNELS
    given = {"batch": args.batch, "lr": args.lr, "eval_every": args.eval_every, "seed": args.seed,
             "channels": _parse_channels(args.channels) if args.channels else None}
    if previous:
        previous = dict(previous, channels=tuple(previous["channels"]))   # JSON gave a list
    cfg = merge_settings(given, previous, dict(DEFAULTS, channels=DEFAULT_CHANNELS, seed=0), FIXED_ON_RESUME, args.out)
    if args.epochs is not None:
        cfg["steps"] = math.ceil(args.epochs * N_TRAIN_DIGITS / cfg["batch"])
    elif args.steps is not None:
        cfg["steps"] = args.steps
    return cfg


def accuracy(params, images, labels):
    """Fraction of digits (N, 28, 28) classified correctly, each centred in a 36x36 square."""
    from minicap.models import encoder
    return float(np.mean(encoder.predict(params, encoder.centred_digits(images)) == labels))


def run(args):
    from minicap.checkpoint import load_checkpoint, save_checkpoint
    from minicap.data import load_mnist_5k, make_captioned_mnist
    from minicap.models import encoder
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    folder = open_run_folder(args.out, encoder.KIND, args.resume)
    previous, last = folder.previous, folder.last
    cfg = _settings(args, previous)

    train_x, train_y = load_mnist_5k("train")
    val_x, val_y = load_mnist_5k("val")
    test_x, test_y = load_mnist_5k("test")
    fresh = encoder.init_params(np.random.default_rng(cfg["seed"]), cfg["channels"])
    if previous:
        run_ = resume_run(last, encoder.KIND, fresh)
        print(f"resuming {last} at step {run_.step}")
    else:
        config = dict(cfg, data="mnist_5k train split, random offsets in 36x36")
        run_ = Run(kind=encoder.KIND, config=config, params=fresh,
                   optimizer=make_optimizer("adam", lr=cfg["lr"]), rng=np.random.default_rng(cfg["seed"]))
        print(f"encoder CNN {'-'.join(map(str, cfg['channels']))}: {sum(p.size for p in fresh.values())} parameters; "
              f"{len(train_x)} train digits, {len(val_x)} val, {len(test_x)} test")
    run_.config["steps"] = cfg["steps"]
    if run_.step >= cfg["steps"]:
        print(f"the run is already at step {run_.step} (target {cfg['steps']}); raise --steps to train more")
        return 0

    def train_step(run):
        # cosine decay from lr to 0 over the run: a function of the step, so a resumed run follows it exactly
        run.optimizer.lr = cosine_lr(cfg["lr"], run.step, cfg["steps"])
        batch = encoder.random_placement_batch(train_x, train_y, cfg["batch"], run.rng)
        return encoder.loss(run.params, batch)

    def evaluate(run):
        return {"val_accuracy": accuracy(run.params, val_x, val_y)}

    train(run_, train_step, cfg["steps"], args.out, log_every=cfg["eval_every"], evaluate=evaluate,
          eval_every=cfg["eval_every"], metric="val_accuracy", checkpoint_every=cfg["eval_every"])

    best = load_checkpoint(args.out / "best.npz", kind=encoder.KIND)
    test_acc = accuracy(best.params, test_x, test_y)
    val_acc = float(best.extra["best_score"])
    canvases = make_captioned_mnist("test", n=500)
    readout = encoder.digit_readout_accuracy(best.params, canvases)
    command = (f"minicap train encoder --steps {cfg['steps']} --batch {cfg['batch']} --lr {cfg['lr']:g} "
               f"--channels {','.join(map(str, cfg['channels']))} --seed {cfg['seed']}")
    frozen = dict(cfg, best_step=best.step, val_accuracy=val_acc,
                  test_accuracy=test_acc, canvas_readout_accuracy=readout, trained_by=command)
    save_checkpoint(args.out / "encoder.npz", encoder.KIND, best.params, config=frozen, step=best.step)
    print(f"best validation accuracy {val_acc:.4f} at step {best.step}")
    print(f"test accuracy {test_acc:.4f} on the {len(test_x)} held-out test digits")
    print(f"on {len(canvases)} captioned-MNIST test canvases (60x60), the head on the mean annotation vector over "
          f"each digit's locations names it: {readout:.4f}")
    print(f"frozen encoder: {args.out / 'encoder.npz'} (load_encoder(path); the captioner's default is the shipped "
          f"{encoder.DEFAULT_WEIGHTS.relative_to(encoder.DEFAULT_WEIGHTS.parent.parent)})")
    return 0
