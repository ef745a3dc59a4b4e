"""Short training runs for the lessons: the set-up Lessons 3-6, 8 and 9 share.

The command line (`minicap.commands`) owns real runs: an output folder with a lock, checkpoints,
resuming, best and last. A lesson wants less: train a model for a few minutes in front of the
reader, keep nothing on disk, and record what it will plot. These helpers do that with the same
training loop (`minicap.train.train`), so what a lesson trains is what the command trains.

    train_quietly(run, train_step, steps, clip)      any model: train in a throw-away folder, timed
    train_bound_model(draw, config, ...)             DRAW / alignDRAW with their validation bound curve
    captioning_data(n_train, n_val, n_test)          captioned MNIST encoded for a captioner
"""
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from minicap.optim import Adam
from minicap.train import Run, train

VALIDATION_NOISE_SEED = 12345   # the eps every validation bound is computed with


def train_quietly(run, train_step, steps, clip, evaluate=None, eval_every=None, log_every=None):
    """minicap.train.train in a temporary folder: no progress bar, no checkpoint left behind.

    evaluate(run) -> scores runs every eval_every steps (and its line `step N: ...` is printed);
    run.history records the training loss every log_every steps (default: six times over the run).
    Trains `run` in place and returns the seconds it took.
    """
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out_dir:
        train(run, train_step, steps, out_dir, clip=clip, log_every=log_every or max(steps // 6, 1),
              evaluate=evaluate, eval_every=eval_every, progress=False, checkpoint_every=10 ** 9)
    return time.time() - t0


@dataclass
class BoundRun:
    """A DRAW-family model trained by train_bound_model, and its validation curve (nats per image)."""
    run: Run
    steps: np.ndarray    # (E,) the step of each evaluation
    recon: np.ndarray    # (E,) reconstruction term L^x at each
    kl: np.ndarray       # (E,) KL term L^z at each
    seconds: float       # training time

    @property
    def bound(self):
        """(E,) the negative bound L^x + L^z: the validation curve."""
        return self.recon + self.kl

    def summary(self, per="image"):
        return (f"{self.run.step} steps in {self.seconds:.0f} s; validation bound {self.bound[-1]:.1f} nats per "
                f"{per} = reconstruction {self.recon[-1]:.1f} + KL {self.kl[-1]:.1f}")


def train_bound_model(model, config, train_data, val_data, steps, eval_every, clip, seed=0, lr=1e-3,
                      batch_size=64):
    """Train DRAW (Lesson 8) or alignDRAW (Lesson 9), evaluating the validation bound as it goes.

    model: the module `minicap.models.draw` or `minicap.models.aligndraw`, used through the three
        functions they share: init_params(config, rng), make_train_step(config, *train_data,
        batch_size) and forward(params, *val_data, eps, config) -> ((loss, parts), cache).
    train_data: what make_train_step takes after the config: (images,) for DRAW, (images, words,
        mask) for alignDRAW. val_data: what forward takes, the same way, for the validation set.
    clip: as for minicap.train.train, e.g. ("global", 10.0).

    One rng, from `seed`, initialises the parameters and then draws every batch, binarisation and
    training eps; Adam at `lr`. Every eval_every steps the bound is computed on val_data with the
    same eps (VALIDATION_NOISE_SEED), so the curve moves only because the parameters do.
    Returns a BoundRun.
    """
    rng = np.random.default_rng(seed)
    run = Run(kind=model.__name__.rsplit(".", 1)[-1], config={}, params=model.init_params(config, rng),
              optimizer=Adam(lr=lr), rng=rng)
    eps = np.random.default_rng(VALIDATION_NOISE_SEED).standard_normal(
        (config["T"], len(val_data[0]), config["z_size"]))
    curve = []

    def evaluate(run):
        (_, parts), _ = model.forward(run.params, *val_data, eps, config)
        curve.append((run.step, parts["recon"], parts["kl"]))
        return {"val bound": parts["recon"] + parts["kl"], "recon": parts["recon"], "KL": parts["kl"]}

    seconds = train_quietly(run, model.make_train_step(config, *train_data, batch_size), steps, clip,
                            evaluate=evaluate, eval_every=eval_every)
    steps_seen, recon, kl = (np.array(column) for column in zip(*curve))
    return BoundRun(run, steps_seen, recon, kl, seconds)


@dataclass
class CaptioningData:
    """Captioned MNIST ready for a captioner: the splits, their annotation features (N, L, D), the
    vocabulary of the training captions, those captions as word ids, and the feature scale s."""
    train: object
    val: object
    test: object
    train_feats: np.ndarray
    val_feats: np.ndarray
    test_feats: np.ndarray
    vocab: object
    train_caps: np.ndarray     # (N, T + 1) int64: <START> words <END>
    feature_scale: float       # 1 / rms of the training features (CaptionerConfig.feature_scale)


def captioning_data(n_train, n_val, n_test, cache_dir=None, encoder_params=None):
    """The data of Lessons 3-5: the first n images of each split (seed 0), encoded by the frozen CNN.

    cache_dir: keep the features on disk there (`runs/cache` is the one `minicap train captioner`
    uses), or None to encode without caching. encoder_params: default, the shipped encoder.
    """
    from minicap.data import Vocabulary, encode_captions, make_captioned_mnist
    from minicap.data.features import encode_dataset
    from minicap.models import encoder

    params = encoder.load_encoder() if encoder_params is None else encoder_params
    splits = [make_captioned_mnist(split, n) for split, n in (("train", n_train), ("val", n_val), ("test", n_test))]
    if cache_dir is None:
        feats = [encoder.encode(data.images, params) for data in splits]
    else:
        feats = [encode_dataset(data, params, cache_dir=cache_dir, progress=False) for data in splits]
    vocab = Vocabulary.build(splits[0].captions)
    train_caps = encode_captions(splits[0].captions, vocab).captions.astype(np.int64)
    rms = float(np.sqrt(np.mean(np.square(feats[0][:1000], dtype=np.float64))))
    return CaptioningData(*splits, *feats, vocab, train_caps, 1 / rms)
