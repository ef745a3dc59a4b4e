"""`minicap train captioner`, `minicap caption` and `minicap evaluate`: Show, Attend and Tell end to end.

    minicap train captioner --attention none|soft|hard [--data mnist-captions] [--steps N] [--out DIR] [--resume]
    minicap caption CHECKPOINT IMAGE... [--beam K] [--attention-png OUT]
    minicap evaluate CHECKPOINT [--split val|test|novel] [--beam K] [--json]

Training generates captioned MNIST (minicap.data), encodes the canvases once with the frozen encoder
(cached under --cache), and trains on minibatches of (annotation vectors, caption). Every
--eval-every steps it DECODES the validation images greedily and scores those captions; best.npz
keeps the parameters with the best validation --metric, and training stops early after --patience
evaluations without improvement. A checkpoint holds everything `caption` and `evaluate` need: the
model config, the vocabulary (extra/vocab) and the frozen encoder's weights (extra/encoder/*).

All three commands live in this module; configure() tells them apart by the parser's name.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from minicap.commands.runs import (dropout_rate, int_range, merge_settings, nonnegative_float, open_run_folder,
                                   positive_float, positive_int, probability, resolve_checkpoint, seed,
                                   writable_file)
from minicap.errors import MinicapError

KIND = "captioner"
IMAGE_SIZE = 60
# Training defaults (the model's own defaults are in captioner.CaptionerConfig, some overridden here).
DEFAULTS = {"steps": 5000, "batch": 64, "optimizer": "adam", "lr": 2e-3, "clip": 5.0, "train_size": 10000,
            "val_size": 500, "eval_every": 500, "metric": "CIDEr", "patience": 6, "seed": 0, "log_every": 500,
            "lr_decay": "none"}
MODEL_DEFAULTS = {"embed": 64, "hidden": 128, "attention_size": 128, "dropout": 0.3, "penalty": 1.0,
                  "image_feature": "mean", "reward_weight": 0.1, "entropy_weight": 0.002, "sample_prob": 0.5}
MODEL_OPTIONS = tuple(MODEL_DEFAULTS) + ("attention",)
# options that define the model, its data, its optimiser and what is compared: a resumed run must keep them
FIXED_ON_RESUME = MODEL_OPTIONS + ("batch", "optimizer", "lr", "lr_decay", "clip", "train_size", "val_size", "seed",
                                   "metric")
MAX_IMAGES = 100_000   # a captioned-MNIST split generated for `caption SPLIT:INDEX` or `evaluate --n`


def configure(parser):
    command = parser.prog.split()[-1]
    parser.set_defaults(_captioner_command=command)
    if command == "caption":
        return configure_caption(parser)
    if command == "evaluate":
        return configure_evaluate(parser)
    parser.add_argument("--attention", choices=("none", "soft", "hard"), default=None,
                        help="none: baseline (mean annotation), soft: deterministic attention, hard: "
                             "stochastic attention trained with REINFORCE (default soft)")
    parser.add_argument("--data", choices=("mnist-captions", "karpathy"), default="mnist-captions",
                        help="the dataset: captioned MNIST generated from the shipped digits (default), or "
                             "karpathy: a Karpathy-split JSON (--json) with its features (--features), e.g. "
                             "Flickr8k/30k or COCO (docs/real_photos.md)")
    parser.add_argument("--steps", type=positive_int, default=None, help=f"train up to this many steps in total "
                        f"(default {DEFAULTS['steps']}; early stopping may end sooner)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for last.npz and best.npz (default runs/captioner-ATTENTION)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    group = parser.add_argument_group("model")
    group.add_argument("--embed", type=positive_int, default=None, help=f"word embedding size E (default {MODEL_DEFAULTS['embed']})")
    group.add_argument("--hidden", type=positive_int, default=None, help=f"LSTM size H (default {MODEL_DEFAULTS['hidden']})")
    group.add_argument("--attention-size", type=positive_int, default=None,
                       help=f"attention MLP size A (default {MODEL_DEFAULTS['attention_size']})")
    group.add_argument("--dropout", type=dropout_rate, default=None,
                       help=f"dropout on h_t before the output layer (default {MODEL_DEFAULTS['dropout']})")
    group.add_argument("--penalty", type=nonnegative_float, default=None,
                       help="lambda of the doubly stochastic attention penalty (default: soft 1.0 as the paper; "
                            "hard 0: it spreads alpha, so the sampled glimpses miss the digits)")
    group.add_argument("--reward-weight", type=nonnegative_float, default=None,
                       help="hard: lambda_r, the weight of the REINFORCE term (default 0.1, as the authors' code)")
    group.add_argument("--entropy-weight", type=nonnegative_float, default=None,
                       help="hard: lambda_e, the weight of the entropy bonus (default 0.002)")
    group.add_argument("--sample-prob", type=probability, default=None,
                       help="hard: probability that a minibatch samples locations; else it uses the expected "
                            "context (default 0.5, as the paper)")
    group.add_argument("--image-feature", choices=("mean", "flat"), default=None,
                       help="the global image vector that initialises the LSTM (and is the baseline's context): "
                            "mean of the annotations (default, as the paper) or flat, a learned projection of "
                            "all of them, which keeps where things are")
    group = parser.add_argument_group("training")
    group.add_argument("--batch", type=positive_int, default=None, help=f"captions per step (default {DEFAULTS['batch']})")
    group.add_argument("--optimizer", choices=("adam", "rmsprop"), default=None, help="default adam")
    group.add_argument("--lr", type=positive_float, default=None, help=f"learning rate (default {DEFAULTS['lr']})")
    group.add_argument("--lr-decay", choices=("cosine", "none"), default=None,
                       help="none: a constant learning rate (default); cosine: it falls from --lr to 0 at --steps")
    group.add_argument("--clip", type=positive_float, default=None,
                       help=f"clip the global gradient norm to this (default {DEFAULTS['clip']})")
    group.add_argument("--train-size", type=positive_int, default=None,
                       help=f"training images generated (default {DEFAULTS['train_size']}); with --data "
                            f"karpathy: train on the first N training images (default all)")
    group.add_argument("--val-size", type=positive_int, default=None,
                       help=f"validation images decoded at each evaluation (default {DEFAULTS['val_size']})")
    group.add_argument("--eval-every", type=positive_int, default=None, help=f"default {DEFAULTS['eval_every']}")
    group.add_argument("--metric", choices=("BLEU-4", "CIDEr", "accuracy"), default=None,
                       help="validation score for best.npz and early stopping (default CIDEr)")
    group.add_argument("--patience", type=positive_int, default=None,
                       help=f"stop after this many evaluations without improvement (default {DEFAULTS['patience']})")
    group.add_argument("--log-every", type=positive_int, default=None, help="print the loss and a sample caption every N steps")
    group.add_argument("--seed", type=seed, default=None, help="seed of the initialisation and minibatches (default 0)")
    group.add_argument("--encoder", type=Path, default=None,
                       help="frozen encoder weights (default: the shipped data/encoder_mnist.npz)")
    group.add_argument("--cache", type=Path, default=None,
                       help="folder for cached annotation vectors (default: $MINICAP_CACHE, else ~/.cache/minicap)")
    from minicap.commands import real_photos
    real_photos.add_train_options(parser)


def configure_caption(parser):
    parser.add_argument("checkpoint", type=Path, help="a `minicap train captioner` checkpoint (.npz or its folder)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="60x60 grayscale PNG files (white digits on black, like captioned MNIST), "
                             "or SPLIT:INDEX for an example of the captioned-MNIST split (e.g. test:7)")
    parser.add_argument("--beam", type=int_range(1, 100), default=1, help="beam width (default 1: greedy)")
    parser.add_argument("--attention-png", type=writable_file(".png"), default=None,
                        help="write a figure: each word with its attention map over the image")
    from minicap.commands import real_photos
    real_photos.add_eval_options(parser, photos=True)


def configure_evaluate(parser):
    parser.add_argument("checkpoint", type=Path, help="a `minicap train captioner` checkpoint (.npz or its folder)")
    parser.add_argument("--split", choices=("val", "test", "novel"), default="test",
                        help="captioned-MNIST split to caption and score (default test)")
    parser.add_argument("--n", type=int_range(1, MAX_IMAGES), default=None,
                        help="score only the first N images (default all 1000)")
    parser.add_argument("--beam", type=int_range(1, 100), default=1, help="beam width (default 1: greedy)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for cached annotation vectors (default: $MINICAP_CACHE, else ~/.cache/minicap)")
    parser.add_argument("--captions-out", type=writable_file(".json"), default=None,
                        help="also write every generated caption with its reference(s) to this JSON file")
    from minicap.commands import real_photos
    real_photos.add_eval_options(parser)


def run(args):
    return {"caption": run_caption, "evaluate": run_evaluate}.get(args._captioner_command, run_train)(args)


# --- checkpoints ----------------------------------------------------------------------------------
def load_captioner(path):
    """(params, CaptionerConfig, Vocabulary, encoder params, checkpoint config) from a checkpoint."""
    from minicap.checkpoint import check_param_shapes, load_checkpoint
    from minicap.data import Vocabulary
    from minicap.models.captioner import CaptionerConfig, init_params
    path = resolve_checkpoint(path)
    ck = load_checkpoint(path, kind=KIND)
    if "vocab" not in ck.extra or "model" not in ck.config:
        raise MinicapError(f"checkpoint {path} has no vocabulary or model config; was it written by "
                           "`minicap train captioner`?")
    config = CaptionerConfig.from_dict(ck.config["model"])
    vocab = Vocabulary.from_array(ck.extra["vocab"])
    encoder = {k[len("encoder/"):]: v for k, v in ck.extra.items() if k.startswith("encoder/")}
    D, L = int(ck.config["feature_size"]), int(ck.config.get("locations", 64))
    check_param_shapes(path, ck.params, init_params(config, len(vocab), D, np.random.default_rng(0), locations=L))
    return ck.params, config, vocab, encoder, ck.config


# --- training -------------------------------------------------------------------------------------
def _settings(args, previous=None):
    """The defaults, then the resumed run's settings, then the command line."""
    given = {k: getattr(args, k) for k in MODEL_OPTIONS + ("batch", "optimizer", "lr", "lr_decay", "clip", "train_size",
                                                           "val_size", "eval_every", "metric", "patience", "seed",
                                                           "steps", "log_every")}
    defaults = dict(DEFAULTS, **MODEL_DEFAULTS, attention="soft")
    if (given["attention"] or (previous or {}).get("attention")) == "hard":
        defaults["penalty"] = 0.0   # see --penalty's help
    return merge_settings(given, previous, defaults, FIXED_ON_RESUME, args.out)


def run_train(args):
    from minicap.data import Vocabulary, encode_captions
    from minicap.models import captioner
    from minicap.data.features import default_cache_dir, load_split
    from minicap.models.captioner import make_train_step
    from minicap.models.captioner_eval import evaluate_model
    from minicap.models.encoder import load_encoder, weights_hash
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    if args.data == "karpathy":   # real photos: memory-mapped features, many references (real_photos.py)
        from minicap.commands import real_photos
        return real_photos.run_train(args, sys.modules[__name__])
    if args.json is not None or args.features is not None:
        raise MinicapError("--json and --features are the files of --data karpathy; add --data karpathy")
    attention = args.attention or "soft"
    if args.out is None:
        args.out = Path(f"runs/captioner-{attention}")
    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last = folder.previous, folder.last
    if previous is not None and (previous.get("data") or {}).get("name") == "karpathy":
        raise MinicapError(f"the run in {args.out} was trained with --data karpathy; resume it with "
                           f"--data karpathy --json DATASET.json --features FEATURES.npy")
    if previous is not None and args.attention is None:
        args.attention = previous["settings"]["attention"]
    s = _settings(args, previous and previous["settings"])

    if previous is not None:
        _, _, saved_vocab, encoder, _ = load_captioner(last)   # the run's own frozen encoder
        if args.encoder is not None and weights_hash(load_encoder(args.encoder)) != previous["encoder"]["hash"]:
            raise MinicapError(f"the run in {args.out} was trained on the features of another encoder "
                               f"({previous['encoder']['path']}); drop --encoder to resume it with its own, "
                               f"or start a new run with another --out")
    else:
        encoder = load_encoder(args.encoder)
    print(f"data: captioned MNIST, {s['train_size']} training and {s['val_size']} validation images; "
          f"encoding with the frozen encoder (cached in {args.cache or default_cache_dir()})", file=sys.stderr)
    train_data, train_feats = load_split("train", s["train_size"], 0, encoder, args.cache)
    val_data, val_feats = load_split("val", s["val_size"], 0, encoder, args.cache)
    vocab = Vocabulary.build(train_data.captions)
    train_caps = encode_captions(train_data.captions, vocab).captions.astype(np.int64)

    if previous is not None:
        config = captioner.CaptionerConfig.from_dict(previous["model"])
    else:  # feature_scale brings the CNN features to unit root-mean-square size
        rms = float(np.sqrt(np.mean(np.square(train_feats[:1000], dtype=np.float64))))
        config = captioner.CaptionerConfig(feature_scale=1 / max(rms, 1e-12), **{k: s[k] for k in MODEL_OPTIONS})
    D = train_feats.shape[2]
    fresh = captioner.init_params(config, len(vocab), D, np.random.default_rng(s["seed"]),
                                  locations=train_feats.shape[1])
    if previous is not None:
        run = resume_run(last, KIND, fresh)
        if saved_vocab != vocab:
            raise MinicapError(f"the vocabulary of {last} differs from this data's; start a new run with --out")
    else:
        ck_config = {"model": config.to_dict(), "settings": s, "feature_size": D, "locations": train_feats.shape[1],
                     "image_size": IMAGE_SIZE,
                     "data": {"name": "mnist-captions", "seed": 0, "banned_seed": 0},
                     "encoder": {"path": str(args.encoder or "data/encoder_mnist.npz"), "hash": weights_hash(encoder)}}
        run = Run(kind=KIND, config=ck_config, params=fresh, optimizer=make_optimizer(s["optimizer"], lr=s["lr"]),
                  rng=np.random.default_rng(s["seed"] + 1))
    run.config["settings"]["steps"] = s["steps"]
    extra = {"vocab": vocab.to_array(), **{f"encoder/{k}": v for k, v in encoder.items()}}

    def evaluate(run):
        # only the logged metrics (VALIDATION_METRICS): no METEOR or ROUGE-L, which nothing here reads
        scores, _, _ = evaluate_model(run.params, config, vocab, val_feats, val_data, all_metrics=False)
        out = {"BLEU-4": scores["BLEU-4"], "CIDEr": scores["CIDEr"], "accuracy": scores["caption_accuracy"]}
        if scores["attention_localisation"] is not None:
            out["localisation"] = scores["attention_localisation"]
        return out

    def on_log(run, loss):
        i = (run.step // s["log_every"]) % len(val_data)
        hyp = captioner.generate(run.params, config, val_feats[i:i + 1])[0]
        return f"step {run.step}: loss {loss:.3f} | val image {i}: \"{vocab.decode(hyp.tokens)}\" " \
               f"(truth: \"{val_data.captions[i]}\")"

    print(f"model: {attention} attention, E={config.embed} H={config.hidden} A={config.attention_size}, "
          f"{sum(v.size for v in run.params.values()):,} parameters; vocabulary {len(vocab)} words", file=sys.stderr)
    start = time.time()
    schedule = (s["lr"], s["steps"]) if s["lr_decay"] == "cosine" else (None, None)
    train(run, make_train_step(config, train_feats, train_caps, s["batch"], *schedule), s["steps"], args.out,
          clip=("global", s["clip"]), log_every=s["log_every"], evaluate=evaluate, eval_every=s["eval_every"],
          metric=s["metric"], patience=s["patience"], on_log=on_log, extra=extra)
    print(f"best validation {s['metric']} {math.nan if run.best_score is None else run.best_score:.4f}; {time.time() - start:.0f} s. "
          f"Score it: minicap evaluate {args.out / 'best.npz'} --split test", file=sys.stderr)
    return 0


# --- caption ----------------------------------------------------------------------------------------
def read_image(spec, image_size=IMAGE_SIZE):
    """An image as (H, W) float32 in [0, 1]: a PNG file (8-bit grayscale, image_size x image_size), or
    SPLIT:INDEX, an example of the captioned-MNIST split. Returns (image, caption of the example or None)."""
    from minicap.data.captioned_mnist import SPLITS
    split, colon, index = str(spec).partition(":")
    if split in SPLITS and colon:
        if not (index.isascii() and index.isdigit()) or int(index) >= MAX_IMAGES:
            raise MinicapError(f"image {spec}: the index after '{split}:' must be a whole number from 0 to "
                               f"{MAX_IMAGES - 1:,}, e.g. {split}:7")
        from minicap.data import make_captioned_mnist
        data = make_captioned_mnist(split, n=int(index) + 1)
        return data.images[int(index)], data.captions[int(index)]
    from PIL import Image, UnidentifiedImageError
    path = Path(spec)
    if not path.is_file():
        raise MinicapError(f"image {path} does not exist or is not a file (give a {image_size}x{image_size} "
                           "grayscale PNG, or SPLIT:INDEX such as test:7)")
    try:
        with Image.open(path) as img:
            # size and mode come from the header: check them before decoding a single pixel, so a
            # 20000x20000 "decompression bomb" costs nothing
            mode, size = img.mode, img.size
            if size != (image_size, image_size):
                raise MinicapError(f"image {path} is {size[0]}x{size[1]} pixels; the captioner reads {image_size}x"
                                   f"{image_size} canvases (resize it, e.g. with PIL's Image.resize)")
            if mode != "L":
                raise MinicapError(f"image {path} has mode {mode}; the captioner reads 8-bit grayscale (mode L), "
                                   f"white digits on black: convert it, e.g. Image.open(p).convert('L').save(p)")
            pixels = np.asarray(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise MinicapError(f"image {path} could not be read as an image ({err})") from None
    return pixels.astype(np.float32) / 255, None


def run_caption(args):
    from minicap.models.captioner import generate
    from minicap.models.encoder import encode
    loaded = load_captioner(args.checkpoint)
    params, config, vocab, encoder, ck_config = loaded
    from minicap.commands import real_photos
    if real_photos.is_karpathy(ck_config):   # images named in the run's dataset JSON
        return real_photos.run_caption(args, loaded)
    if args.attention_png is not None and config.attention == "none":
        raise MinicapError("--attention-png needs an attention model; this checkpoint is the baseline "
                           "(--attention none), which has no attention to show")
    loaded = [read_image(spec) for spec in args.images]
    images = np.stack([img for img, _ in loaded])
    hyps = generate(params, config, encode(images, encoder), beam_size=args.beam)
    captions = [vocab.decode(h.tokens) for h in hyps]
    for spec, (_, truth), caption in zip(args.images, loaded, captions):
        print(f"{spec}: {caption}" + (f"   (dataset caption: {truth})" if truth else ""))
    if args.attention_png is not None:
        from minicap.viz import attention_figure
        words = [vocab.decode(h.tokens).split() + (["<END>"] if h.finished else []) for h in hyps]
        locations = [h.extras.get("location") for h in hyps]
        attention_figure(images, words, [h.extras["alpha"] for h in hyps], args.attention_png, locations)
        print(f"wrote {args.attention_png}")
    return 0


# --- evaluate ---------------------------------------------------------------------------------------
def run_evaluate(args):
    from minicap.commands import vqa
    if vqa.is_vqa_checkpoint(args.checkpoint):   # VQA checkpoints are scored by minicap/commands/vqa.py
        return vqa.run_evaluate(args)
    from minicap.data.features import load_split
    from minicap.models.captioner_eval import evaluate_model, references
    loaded = load_captioner(args.checkpoint)
    params, config, vocab, encoder, ck_config = loaded
    from minicap.commands import real_photos
    if real_photos.is_karpathy(ck_config):   # the Karpathy split of the run's dataset
        return real_photos.run_evaluate(args, loaded)
    from minicap.data import DEFAULT_SIZES
    data, feats = load_split(args.split, args.n or DEFAULT_SIZES[args.split], 0, encoder, args.cache,
                             progress=not args.json)
    scores, captions, _ = evaluate_model(params, config, vocab, feats, data, beam_size=args.beam)
    scores = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "attention": config.attention,
              "split": args.split, "beam": args.beam, **scores}
    if args.captions_out is not None:
        refs = references(data)
        rows = [{"index": i, "caption": c, "references": r, "correct": bool(data.is_correct(i, c))}
                for i, (c, r) in enumerate(zip(captions, refs))]
        args.captions_out.parent.mkdir(parents=True, exist_ok=True)
        args.captions_out.write_text(json.dumps(rows, indent=1))
    if args.json:
        print(json.dumps(scores))
        return 0
    for key, value in scores.items():
        print(f"{key:30s} {value:.4f}" if isinstance(value, float) else f"{key:30s} {value}")
    return 0
