"""`minicap train vqa`, `minicap ask`, and VQA's part of `minicap evaluate`: visual question answering
on MNIST scenes (minicap.data.vqa_scenes) with the models of minicap.models.vqa.

    minicap train vqa --model question|image|naive|memnet|san [--hops K] [--data mnist-vqa|FILE.json] [--steps N]
                      [--encoder mnist|scratch|WEIGHTS.npz] [--color rgb|grey] [--image-size S] [--out DIR] [--resume]
    minicap ask CHECKPOINT IMAGE "QUESTION" [--attention-png OUT]
    minicap evaluate CHECKPOINT [--split val|test|novel] [--json]       (dispatched here for a VQA checkpoint)

Training generates the scenes, encodes them once with the frozen encoder (the captioner's features,
cached under --cache) and trains on minibatches of (annotation vectors, question, answer). Every
--eval-every steps it scores validation accuracy; best.npz keeps the best. A checkpoint (kind "vqa")
holds everything `ask` and `evaluate` need: the model config, the question vocabulary and answers
(for mnist-vqa the data module fixes them, and they are checked; for --data FILE.json they come from
the file's training questions), how images are read (settings encoder, color, image_size) and the
frozen encoder's weights (extra/encoder/*).

--encoder scratch trains a small CNN from the pixels with the model instead (minicap.models.vqa_pixels:
its weights are part of the params, its shape is the checkpoint's "pixels" config): for images that are
not MNIST digits, and for colour (--color rgb; default for FILE.json: rgb if any image has colour).
A FILE.json model reads an image for `ask` as training read the file's images: converted to the
model's colour (a grey image for an rgb model becomes three equal channels, as a grey file among colour
ones does in training; a note says so) and resized to its size.

Attention localisation (memnet, san): of the query-digit and relate questions, the share whose last
hop puts at least half its weight on the cell that holds the answer (or the asked place). A region's
weight counts for each 30x30 cell in proportion to how much of its grid cell
(minicap.models.encoder.location_cells) lies inside it.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from minicap.commands.runs import (int_range, merge_settings, open_run_folder, positive_float, positive_int,
                                   resolve_checkpoint, seed, writable_file)
from minicap.errors import MinicapError

KIND = "vqa"
IMAGE_SIZE = 60
MODELS = ("question", "image", "naive", "memnet", "san")
# 12,000 steps on 30,000 scenes with a cosine learning rate: SAN-2 was still improving at 3000 steps on 12,000
# scenes (87.6% validation accuracy, training loss 0.2: too few scenes), 93% by 4500 steps on 30,000; 12,000
# steps against 6,000 lifted its relate questions from 82.3% to 85.9% (docs/vqa.md)
DEFAULTS = {"steps": 12000, "batch": 64, "lr": 2e-3, "lr_decay": "cosine", "clip": 5.0, "train_size": 30000,
            "val_size": 1000, "eval_every": 500, "seed": 0}
# How images are read: the frozen digit encoder (grey, 60x60 on mnist-vqa) or the CNN from the pixels.
# color None = decide from a FILE.json's images (rgb if any has colour); grey for the mnist encoder.
IMAGE_DEFAULTS = {"encoder": "mnist", "color": None, "image_size": IMAGE_SIZE, "scratch_channels": [16, 32, 64]}
ENCODERS = ("mnist", "scratch")
MODEL_DEFAULTS = {"hops": 2, "embed": 32, "hidden": 128, "attention_size": 64, "mlp": 128, "combine": "product"}
MODEL_OPTIONS = ("model",) + tuple(MODEL_DEFAULTS)
DATA_OPTIONS = ("data",) + tuple(IMAGE_DEFAULTS)
FIXED_ON_RESUME = MODEL_OPTIONS + DATA_OPTIONS + ("batch", "lr", "lr_decay", "clip", "train_size", "val_size", "seed")
MAX_EXAMPLES = 100_000


def configure(parser):
    command = parser.prog.split()[-1]
    parser.set_defaults(_vqa_command=command)
    if command == "ask":
        return configure_ask(parser)
    parser.add_argument("--model", choices=MODELS, default=None,
                        help="question / image: one input alone (baselines); naive: mean image vector and question "
                             "combined; memnet: memory network over the regions; san: stacked attention network "
                             "(default san)")
    parser.add_argument("--hops", type=int_range(1, 8), default=None,
                        help=f"memnet hops / san attention layers (default {MODEL_DEFAULTS['hops']})")
    parser.add_argument("--data", type=data_source, default=None,
                        help="mnist-vqa: MNIST scenes with questions, generated from the shipped digits (default); "
                             "or FILE.json, your own questions (minicap.data.vqa_files: images beside the file, "
                             "resized to --image-size)")
    parser.add_argument("--encoder", type=encoder_source, default=None,
                        help="mnist: the frozen digit CNN's features (default; grey images); scratch: a small CNN "
                             "trained from the pixels with the model (grey or RGB); or WEIGHTS.npz, another frozen "
                             "encoder written by `minicap train encoder`")
    parser.add_argument("--color", choices=("rgb", "grey"), default=None,
                        help="how --encoder scratch reads a FILE.json's images (default: rgb if any image has "
                             "colour, else grey); the mnist encoder and mnist-vqa are grey")
    parser.add_argument("--image-size", type=int_range(8, 256), default=None,
                        help=f"FILE.json images are resized to this square (default {IMAGE_SIZE}); mnist-vqa scenes "
                             f"are {IMAGE_SIZE}x{IMAGE_SIZE}")
    parser.add_argument("--scratch-channels", type=channel_list, default=None,
                        help="--encoder scratch: filters of each conv3x3+ReLU+maxpool block, e.g. 16,32,64 (the "
                             "default: 60x60 -> a 7x7 grid of 64-vectors)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"train up to this many steps in total (default {DEFAULTS['steps']})")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for last.npz and best.npz (default runs/vqa-MODEL, e.g. runs/vqa-san2)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    group = parser.add_argument_group("model")
    group.add_argument("--embed", type=positive_int, default=None, help=f"word embedding size (default {MODEL_DEFAULTS['embed']})")
    group.add_argument("--hidden", type=positive_int, default=None,
                       help=f"question LSTM and region size H (default {MODEL_DEFAULTS['hidden']})")
    group.add_argument("--attention-size", type=positive_int, default=None,
                       help=f"san attention size A (default {MODEL_DEFAULTS['attention_size']})")
    group.add_argument("--mlp", type=positive_int, default=None, help=f"answer MLP size (default {MODEL_DEFAULTS['mlp']})")
    group.add_argument("--combine", choices=("product", "concat"), default=None,
                       help="naive: combine image and question by an elementwise product of two projections "
                            "(default) or by concatenation")
    group = parser.add_argument_group("training")
    group.add_argument("--batch", type=positive_int, default=None, help=f"questions per step (default {DEFAULTS['batch']})")
    group.add_argument("--lr", type=positive_float, default=None, help=f"Adam learning rate (default {DEFAULTS['lr']})")
    group.add_argument("--lr-decay", choices=("cosine", "none"), default=None,
                       help="cosine: the learning rate falls from --lr to 0 at --steps (default); none: constant")
    group.add_argument("--clip", type=positive_float, default=None,
                       help=f"clip the global gradient norm to this (default {DEFAULTS['clip']})")
    group.add_argument("--train-size", type=int_range(1, MAX_EXAMPLES), default=None,
                       help=f"training scenes generated (default {DEFAULTS['train_size']})")
    group.add_argument("--val-size", type=int_range(1, MAX_EXAMPLES), default=None,
                       help=f"validation scenes scored at each evaluation (default {DEFAULTS['val_size']})")
    group.add_argument("--eval-every", type=positive_int, default=None, help=f"default {DEFAULTS['eval_every']}")
    group.add_argument("--seed", type=seed, default=None, help="seed of the initialisation and minibatches (default 0)")
    group.add_argument("--cache", type=Path, default=None,
                       help="folder for cached annotation vectors (default: $MINICAP_CACHE, else ~/.cache/minicap)")


def configure_ask(parser):
    parser.add_argument("checkpoint", type=Path, help="a `minicap train vqa` checkpoint (.npz or its run folder)")
    parser.add_argument("image", help="for an mnist-vqa model: a 60x60 grayscale PNG (white digits on black, "
                                      "like the scenes), or SPLIT:INDEX for a scene of the mnist-vqa split (e.g. "
                                      "test:7); for a FILE.json model: an image, read as its training images were")
    parser.add_argument("question", help='the question, e.g. "what digit is left of the seven ?"')
    parser.add_argument("--attention-png", type=writable_file(".png"), default=None,
                        help="write a figure: the image and the attention of every hop")


def run(args):
    return {"ask": run_ask}.get(args._vqa_command, run_train)(args)


def data_source(text):
    """--data: "mnist-vqa" or a .json file of one's own questions."""
    if text == "mnist-vqa" or text.lower().endswith(".json"):
        return text
    raise argparse.ArgumentTypeError(f"expected mnist-vqa or a .json file of questions, got {text!r}")


def encoder_source(text):
    """--encoder: "mnist", "scratch", or the path of frozen encoder weights (e.g. runs/encoder/encoder.npz)."""
    return text if text in ENCODERS else Path(text)


def channel_list(text):
    """--scratch-channels "16,32,64" -> [16, 32, 64]: one to four blocks of 1 to 256 filters."""
    try:
        channels = [int(c) for c in text.split(",")]
    except ValueError:
        channels = []
    if not 1 <= len(channels) <= 4 or not all(1 <= c <= 256 for c in channels):
        raise argparse.ArgumentTypeError(f"expected 1 to 4 comma-separated filter counts from 1 to 256, e.g. "
                                         f"16,32,64; got {text!r}")
    return channels


def is_vqa_checkpoint(path):
    """Whether `path` (a checkpoint or run folder) holds a VQA model (for `minicap evaluate`)."""
    from minicap.checkpoint import load_checkpoint
    try:
        return load_checkpoint(resolve_checkpoint(path)).kind == KIND
    except MinicapError:
        return False


def load_vqa(path):
    """(params, VQAConfig, encoder params, checkpoint config) from a checkpoint."""
    from minicap.checkpoint import check_param_shapes, load_checkpoint
    from minicap.data.vqa_scenes import ANSWERS, QUESTION_VOCAB
    from minicap.models.vqa import VQAConfig, init_params
    path = resolve_checkpoint(path)
    ck = load_checkpoint(path, kind=KIND)
    if "model" not in ck.config:
        raise MinicapError(f"checkpoint {path} has no model config; was it written by `minicap train vqa`?")
    if "answers" not in ck.config or "question_vocab" not in ck.config:
        raise MinicapError(f"checkpoint {path} has no answers or question vocabulary; was it written by "
                           f"`minicap train vqa`?")
    on_scenes = ck.config.get("data", {}).get("name") == "mnist-vqa"
    if on_scenes and (ck.config["answers"] != list(ANSWERS) or ck.config["question_vocab"] != list(QUESTION_VOCAB)):
        raise MinicapError(f"checkpoint {path} was trained with another question vocabulary or answer set than "
                           f"this version of mnist-vqa; retrain it")
    config = VQAConfig.from_dict(ck.config["model"])
    pixels = pixel_config(ck.config)
    if pixels is None:
        encoder = {k[len("encoder/"):]: v for k, v in ck.extra.items() if k.startswith("encoder/")}
        check_param_shapes(path, ck.params, init_params(config, np.random.default_rng(0)))
    else:
        from minicap.models import vqa_pixels
        encoder = None   # the CNN is part of the params
        check_param_shapes(path, ck.params, vqa_pixels.init_params(config, pixels, np.random.default_rng(0)))
    return ck.params, config, encoder, ck.config


def image_settings(ck_config):
    """How the run read its images: {"encoder", "color", "image_size"} (a checkpoint from before
    --encoder has the mnist encoder, grey, 60x60)."""
    settings = ck_config.get("settings", {})
    return {"encoder": settings.get("encoder", "mnist"), "color": settings.get("color") or "grey",
            "image_size": settings.get("image_size", IMAGE_SIZE)}


def pixel_config(ck_config):
    """The scratch encoder's PixelConfig of a checkpoint config, None for the frozen encoder."""
    if image_settings(ck_config)["encoder"] != "scratch":
        return None
    from minicap.models.vqa_pixels import PixelConfig
    if "pixels" not in ck_config:
        raise MinicapError("the checkpoint has --encoder scratch but no \"pixels\" config; was it written by "
                           "`minicap train vqa`?")
    return PixelConfig.from_dict(ck_config["pixels"])


def load_features(split, n, encoder, cache=None, progress=True):
    """mnist-vqa split `split` (n examples) and its cached annotation vectors (n, L, D) float32."""
    from minicap.data.features import cached_encode
    from minicap.data.vqa_scenes import make_vqa_scenes
    data = make_vqa_scenes(split, n=n, seed=0)
    feats = cached_encode(data.images, encoder, cache, name=f"vqa-{split}-seed0-n{n}", progress=progress)
    return data, feats


MODES = {"grey": "L", "rgb": "RGB", None: "auto"}   # --color -> how minicap.data.vqa_files reads the images


def load_file(path, color="grey", image_size=IMAGE_SIZE):
    """A user's VQA JSON file (minicap.data.vqa_files), its images `color` (None: decided from the
    images) and image_size x image_size, kept as uint8."""
    from minicap.data.vqa_files import load_vqa_json
    return load_vqa_json(path, size=(image_size, image_size), mode=MODES[color])


def file_features(file_data, split, encoder, cache=None, progress=True):
    """Split `split` of a user's VQA file and the frozen encoder's annotation vectors of its questions'
    images (each distinct image encoded once, cached)."""
    from minicap.data.features import cached_encode
    data = file_data.split(split)
    feats = cached_encode(file_data.pictures, encoder, cache, name="vqa-file", progress=progress)
    return data, feats[data.image_index]


def scene_pictures(data):
    """mnist-vqa scenes (float32 k/255) as uint8 pictures, one per question: (pictures, image_index)."""
    return np.rint(data.images * 255).astype(np.uint8), np.arange(len(data.images))


# --- training -------------------------------------------------------------------------------------
def _settings(args, previous=None):
    training = ("batch", "lr", "lr_decay", "clip", "train_size", "val_size", "eval_every", "seed", "steps")
    given = {k: getattr(args, k) for k in MODEL_OPTIONS + DATA_OPTIONS + training}
    if isinstance(given["encoder"], Path):   # frozen weights of one's own: the mnist kind (checked by hash)
        given["encoder"] = "mnist"
    defaults = dict(DEFAULTS, **MODEL_DEFAULTS, **IMAGE_DEFAULTS, model="san", data="mnist-vqa")
    s = merge_settings(given, previous, defaults, FIXED_ON_RESUME, args.out)
    s["scratch_channels"] = list(s["scratch_channels"])   # a list, as the checkpoint's JSON gives it back
    _check_image_settings(s, args)
    return s


def _check_image_settings(s, args):
    """The combinations of --encoder, --color, --image-size and --data that cannot work, refused up front."""
    if s["encoder"] == "mnist":
        if s["color"] == "rgb":
            raise MinicapError("--color rgb needs --encoder scratch: the frozen digit encoder reads grey images")
        if args.scratch_channels is not None:
            raise MinicapError("--scratch-channels is for --encoder scratch (the frozen encoder's layers are fixed)")
        from minicap.models.encoder import grid_shape
        if min(grid_shape(s["image_size"])) < 1:
            raise MinicapError(f"--image-size {s['image_size']}: the frozen encoder's pools leave nothing of so small "
                               f"an image; use 12 or more")
    elif s["model"] == "question":
        raise MinicapError("--model question never looks at the image, so --encoder scratch would have nothing "
                           "to learn; use --encoder mnist (or another model)")
    if s["data"] == "mnist-vqa" and (s["color"] == "rgb" or s["image_size"] != IMAGE_SIZE):
        raise MinicapError(f"mnist-vqa scenes are {IMAGE_SIZE}x{IMAGE_SIZE} and grey: --color and --image-size are "
                           f"for --data FILE.json")
    if s["encoder"] == "scratch":
        from minicap.models.vqa_pixels import PixelConfig
        try:
            PixelConfig(s["scratch_channels"], s["color"] or "grey", s["image_size"])
        except ValueError as err:   # e.g. four 2x2 pools leave nothing of an 8x8 image
            raise MinicapError(f"--scratch-channels {','.join(map(str, s['scratch_channels']))}: {err}") from None


def default_out(model, hops):
    return Path(f"runs/vqa-{model}{hops if model in ('memnet', 'san') else ''}")


def load_training_data(s, encoder, cache):
    """(train, val, question vocabulary, answers, colour): the splits with what the model reads - the
    frozen encoder's features (N, L, D), or for --encoder scratch (pictures uint8, image_index)."""
    from minicap.data.vqa_scenes import ANSWERS, QUESTION_VOCAB, make_vqa_scenes
    scratch = s["encoder"] == "scratch"
    if s["data"] == "mnist-vqa":
        splits = [("train", s["train_size"]), ("val", s["val_size"])]
        if scratch:
            data = [make_vqa_scenes(split, n=n, seed=0) for split, n in splits]
            inputs = [scene_pictures(d) for d in data]
            for d, (pictures, _) in zip(data, inputs):
                d.images = pictures   # keep the uint8 copy only (30,000 scenes: 108 MB instead of 432 MB)
        else:
            data, inputs = zip(*(load_features(split, n, encoder, cache) for split, n in splits))
        return data[0], inputs[0], data[1], inputs[1], list(QUESTION_VOCAB), list(ANSWERS), "grey"
    file_data = load_file(s["data"], s["color"] if scratch else "grey", s["image_size"])
    if scratch:
        data = [file_data.split(split) for split in ("train", "val")]
        inputs = [(d.pictures, d.image_index) for d in data]
    else:
        data, inputs = zip(*(file_features(file_data, split, encoder, cache) for split in ("train", "val")))
    color = "rgb" if file_data.mode == "RGB" else "grey"
    return data[0], inputs[0], data[1], inputs[1], file_data.vocab, file_data.answer_classes, color


def run_train(args):
    from minicap.data.features import default_cache_dir
    from minicap.models import vqa, vqa_pixels
    from minicap.models.encoder import load_encoder, weights_hash
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    if args.out is None:
        args.out = default_out(args.model or "san", args.hops or MODEL_DEFAULTS["hops"])
    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last = folder.previous, folder.last
    s = _settings(args, previous and previous["settings"])
    scratch = s["encoder"] == "scratch"
    weights = args.encoder if isinstance(args.encoder, Path) else None
    encoder = None
    if scratch:
        pass   # the CNN is trained with the model: no frozen weights
    elif previous is not None:
        _, _, encoder, _ = load_vqa(last)   # the run's own frozen encoder
        if weights is not None and weights_hash(load_encoder(weights)) != previous["encoder"]["hash"]:
            raise MinicapError(f"the run in {args.out} was trained on the features of another encoder; drop "
                               f"--encoder to resume it with its own, or start a new run with another --out")
    else:
        encoder = load_encoder(weights)
    what = ("the pixels, with a CNN trained from scratch" if scratch else
            f"the frozen encoder's features (cached in {args.cache or default_cache_dir()})")
    print(f"data: {s['data']}; the model reads {what}", file=sys.stderr)
    train_data, train_in, val_data, val_in, vocab, answers, color = load_training_data(s, encoder, args.cache)
    if previous is None:
        s["color"] = color   # what "auto" decided, fixed for resume, ask and evaluate
    print(f"{len(train_data.answers)} training and {len(val_data.answers)} validation questions"
          + (f"; images {s['image_size']}x{s['image_size']} {s['color']}" if s["data"] != "mnist-vqa" else ""),
          file=sys.stderr)

    pixels = vqa_pixels.PixelConfig(s["scratch_channels"], s["color"], s["image_size"]) if scratch else None
    if previous is not None:
        config = vqa.VQAConfig.from_dict(previous["model"])
    else:
        if scratch:   # the CNN learns the size of its features
            locations, feature_size, scale = pixels.locations, pixels.feature_size, 1.0
        else:         # feature_scale brings the frozen CNN's features to unit root-mean-square size
            rms = float(np.sqrt(np.mean(np.square(train_in[:1000], dtype=np.float64))))
            locations, feature_size, scale = train_in.shape[1], train_in.shape[2], 1 / max(rms, 1e-12)
        config = vqa.VQAConfig(model=s["model"], hops=s["hops"], vocab_size=len(vocab), n_answers=len(answers),
                               locations=locations, feature_size=feature_size, embed=s["embed"], hidden=s["hidden"],
                               attention_size=s["attention_size"], mlp=s["mlp"], combine=s["combine"],
                               feature_scale=scale)
    rng = np.random.default_rng(s["seed"])
    fresh = vqa_pixels.init_params(config, pixels, rng) if scratch else vqa.init_params(config, rng)
    if previous is not None:
        run_ = resume_run(last, KIND, fresh)
        print(f"resuming {last} at step {run_.step}", file=sys.stderr)
    else:
        data_config = ({"name": "mnist-vqa", "seed": 0} if s["data"] == "mnist-vqa"
                       else {"name": "file", "path": s["data"]})
        ck_config = {"model": config.to_dict(), "settings": s, "data": data_config,
                     "answers": answers, "question_vocab": vocab}
        if scratch:
            ck_config["pixels"] = pixels.to_dict()
            ck_config["encoder"] = {"kind": "scratch"}
        else:
            ck_config["encoder"] = {"path": str(weights or "data/encoder_mnist.npz"), "hash": weights_hash(encoder)}
        run_ = Run(kind=KIND, config=ck_config, params=fresh, optimizer=make_optimizer("adam", lr=s["lr"]),
                   rng=np.random.default_rng(s["seed"] + 1))
    run_.config["settings"]["steps"] = s["steps"]
    if run_.step >= s["steps"]:
        print(f"the run is already at step {run_.step} (target {s['steps']}); raise --steps to train more")
        return 0
    extra = {} if scratch else {f"encoder/{k}": v for k, v in encoder.items()}

    def answer(params, data, inputs):
        if scratch:
            pictures, index = inputs
            return vqa_pixels.predict(params, pictures, data.tokens, config, pixels, image_index=index)[0]
        return vqa.predict(params, inputs, data.tokens, config)[0]

    def evaluate(run):
        if len(val_data.answers) == 0:   # a file without validation questions: the last step is kept as best
            return {"accuracy": float(run.step)}
        return {"accuracy": float(np.mean(answer(run.params, val_data, val_in).argmax(axis=1) == val_data.answers))}

    hops = f", {config.hops} hop{'s' if config.hops > 1 else ''}" if config.model in vqa.ATTENTION_MODELS else ""
    cnn = f", CNN {'-'.join(map(str, pixels.channels))} on {pixels.color} pixels" if scratch else ""
    print(f"model: {config.model}{hops}, H={config.hidden}{cnn}, {sum(v.size for v in run_.params.values()):,} "
          f"parameters", file=sys.stderr)
    start = time.time()
    schedule = (s["lr"], s["steps"]) if s["lr_decay"] == "cosine" else (None, None)
    if scratch:
        step = vqa_pixels.make_train_step(config, pixels, *train_in, train_data.tokens, train_data.answers,
                                          s["batch"], *schedule)
    else:
        step = vqa.make_train_step(config, train_in, train_data.tokens, train_data.answers, s["batch"], *schedule)
    train(run_, step, s["steps"], args.out, clip=("global", s["clip"]), log_every=min(s["eval_every"], 100),
          evaluate=evaluate, eval_every=s["eval_every"], metric="accuracy", checkpoint_every=s["eval_every"],
          extra=extra)
    print(f"best validation accuracy {run_.best_score or float('nan'):.4f}; {time.time() - start:.0f} s. "
          f"Score it: minicap evaluate {args.out / 'best.npz'} --split test", file=sys.stderr)
    return 0


# --- evaluate ---------------------------------------------------------------------------------------
def cell_overlap(image_size=IMAGE_SIZE):
    """(L, 4): the share of location l's grid cell (encoder.location_cells) inside each 30x30 scene cell."""
    from minicap.data.vqa_scenes import CELL, CELL_COL, CELL_ROW
    from minicap.models.encoder import location_cells
    boxes = location_cells(image_size)
    out = np.zeros((len(boxes), 4))
    for l, (r, c, h, w) in enumerate(boxes):
        for k in range(4):
            rr = max(0, min(r + h, (CELL_ROW[k] + 1) * CELL) - max(r, CELL_ROW[k] * CELL))
            cc = max(0, min(c + w, (CELL_COL[k] + 1) * CELL) - max(c, CELL_COL[k] * CELL))
            out[l, k] = rr * cc / (h * w)
    return out


def score(probs, attentions, data):
    """Accuracy overall and per family, and attention localisation (None without attention); for a
    user's own file (no families) the accuracy per true answer instead ("per_answer": {"red": 0.9, ...}).

    probs: (N, C); attentions: K arrays (N, L); data: VQAScenes or a VQAFileSplit."""
    from minicap.data.vqa_scenes import FAMILIES
    right = probs.argmax(axis=1) == data.answers
    family = getattr(data, "family", None)   # None: the user's own questions (no families, no cells)
    out = {"accuracy": float(right.mean()) if len(right) else float("nan"),
           "per_family": {} if family is None else {name: float(right[family == f].mean())
                                                    for f, name in enumerate(FAMILIES) if np.any(family == f)},
           "attention_localisation": None}
    if family is None:
        text = np.array(data.answers_text, dtype=object)
        out["per_answer"] = {a: float(right[text == a].mean()) for a in sorted(set(data.answers_text))}
    if attentions and family is not None:
        asked = np.isin(data.family, [FAMILIES.index("query_digit"), FAMILIES.index("relate")])
        mass = attentions[-1] @ cell_overlap()                          # (N, 4): last hop's weight per cell
        on_focus = mass[np.arange(len(mass)), np.maximum(data.focus, 0)]
        out["attention_localisation"] = float(np.mean(on_focus[asked] >= 0.5)) if asked.any() else None
    return out


def run_evaluate(args):
    """`minicap evaluate` on a VQA checkpoint (called by minicap/commands/captioner.py's run_evaluate)."""
    from minicap.data.vqa_scenes import DEFAULT_SIZES, make_vqa_scenes
    from minicap.models import vqa, vqa_pixels
    if args.beam != 1 or args.captions_out is not None:
        raise MinicapError(f"{args.checkpoint} is a VQA model: it picks one answer, so --beam and --captions-out "
                           f"(captioner options) do not apply; drop them")
    params, config, encoder, ck_config = load_vqa(args.checkpoint)
    pixels, images = pixel_config(ck_config), image_settings(ck_config)
    cache = getattr(args, "cache", None)
    index = None   # scratch on a file: question n reads picture index[n]
    if ck_config["data"]["name"] == "file":
        if args.split == "novel":
            raise MinicapError("--split novel is a split of mnist-vqa; a model trained on your own file has val and test")
        file_data = load_file(ck_config["data"]["path"], images["color"], images["image_size"])
        if pixels is not None:
            data = file_data.split(args.split)
            data = data.prefix(args.n) if args.n else data
            inputs, index = data.pictures, data.image_index
        else:
            data, inputs = file_features(file_data, args.split, encoder, cache, progress=not args.json)
            if args.n:
                data, inputs = data.prefix(args.n), inputs[:args.n]
    elif pixels is not None:
        data = make_vqa_scenes(args.split, n=args.n or DEFAULT_SIZES[args.split], seed=0)
        inputs = data.images
    else:
        data, inputs = load_features(args.split, args.n or DEFAULT_SIZES[args.split], encoder, cache,
                                     progress=not args.json)
    n = len(data.answers)
    if pixels is not None:
        probs, attentions = vqa_pixels.predict(params, inputs, data.tokens, config, pixels,
                                               image_index=index)
    else:
        probs, attentions = vqa.predict(params, inputs, data.tokens, config)
    scores = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "model": config.model,
              "encoder": images["encoder"],
              "hops": config.hops if config.model in vqa.ATTENTION_MODELS else 0, "split": args.split, "n": n,
              **score(probs, attentions, data)}
    if args.json:
        print(json.dumps(scores))
        return 0
    for key, value in scores.items():
        if key in ("per_family", "per_answer"):
            for family, acc in value.items():
                print(f"  {family:28s} {acc:.4f}")
        else:
            print(f"{key:30s} {value:.4f}" if isinstance(value, float) else f"{key:30s} {value}")
    return 0


# --- ask --------------------------------------------------------------------------------------------
def read_scene(spec):
    """(image (60, 60) float32, the scene's own (question, answer) or None): SPLIT:INDEX of mnist-vqa, or a
    PNG read as `minicap caption` reads one (what a model trained on mnist-vqa reads)."""
    from minicap.data.vqa_scenes import SPLITS, make_vqa_scenes
    split, colon, index = str(spec).partition(":")
    if split in SPLITS and colon:
        if not (index.isascii() and index.isdigit()) or int(index) >= MAX_EXAMPLES:
            raise MinicapError(f"image {spec}: the index after '{split}:' must be a whole number from 0 to "
                               f"{MAX_EXAMPLES - 1:,}, e.g. {split}:7")
        data = make_vqa_scenes(split, n=int(index) + 1)
        i = int(index)
        return data.images[i], (data.questions[i], data.answer_words()[i])
    from minicap.commands.captioner import read_image
    return read_image(spec, IMAGE_SIZE)[0], None


def read_user_image(spec, color, image_size):
    """An image for a model trained on a FILE.json, read as the file's images were (minicap.data.vqa_files):
    converted to `color` and resized to image_size x image_size. Returns (H, W[, 3]) float32 in [0, 1]."""
    from minicap.data.captions import _conform, _open_image
    from minicap.data.files import check_file
    from minicap.data.vqa_scenes import SPLITS
    split, colon, _ = str(spec).partition(":")
    if split in SPLITS and colon and not Path(spec).exists():
        raise MinicapError(f"image {spec}: SPLIT:INDEX names a scene of mnist-vqa, but this model was trained on "
                           f"your own file; give an image file")
    path = check_file(spec, "image")
    img = _open_image(path)
    mode = MODES[color]
    if img.mode in ("L", "1", "I", "I;16", "F", "LA") and mode == "RGB":
        print(f"note: {path} is grey; the model reads RGB images, so each channel gets the grey (as training "
              f"did with grey images)", file=sys.stderr)
    elif img.mode not in ("L", "1", "I", "I;16", "F", "LA") and mode == "L":
        print(f"note: {path} is in colour ({img.mode}); the model reads grey images, so it is converted to grey",
              file=sys.stderr)
    pixels = _conform(img, path, mode, (image_size, image_size), resize=True, convert=True)
    return pixels.astype(np.float32) / np.float32(255.0)


def run_ask(args):
    from minicap.data.vqa_files import encode_with_vocab
    from minicap.models import vqa, vqa_pixels
    from minicap.models.encoder import encode
    params, config, encoder, ck_config = load_vqa(args.checkpoint)
    pixels, images = pixel_config(ck_config), image_settings(ck_config)
    ANSWERS = ck_config["answers"]
    if args.attention_png is not None and config.model not in vqa.ATTENTION_MODELS:
        raise MinicapError(f"--attention-png needs an attention model (memnet or san); this checkpoint is "
                           f"{config.model!r}, which has no attention to show")
    if args.attention_png is not None and (images["image_size"] != IMAGE_SIZE or config.locations != 49):
        raise MinicapError(f"--attention-png draws the 7x7 grid of a {IMAGE_SIZE}x{IMAGE_SIZE} image; this model "
                           f"reads {images['image_size']}x{images['image_size']} images as {config.locations} "
                           f"regions, which it cannot draw yet")
    tokens = encode_with_vocab([args.question], ck_config["question_vocab"], unknown="error")
    if ck_config["data"]["name"] == "file":
        image, own = read_user_image(args.image, images["color"], images["image_size"]), None
    else:
        image, own = read_scene(args.image)
    if pixels is not None:
        probs, attentions = vqa_pixels.predict(params, image[None], tokens, config, pixels)
    else:
        probs, attentions = vqa.predict(params, encode(image[None], encoder), tokens, config)
    top = np.argsort(-probs[0])[:3]
    print(f"{args.question} -> {ANSWERS[top[0]]}")
    for k in top:
        print(f"  {ANSWERS[k]:14s} {probs[0, k]:.3f}")
    if own is not None:
        print(f"(the scene's own question: {own[0]} -> {own[1]})")
    if args.attention_png is not None:
        from minicap.viz import vqa_attention_figure
        shown = image.mean(axis=-1) if image.ndim == 3 else image   # the figure paints on a grey image
        vqa_attention_figure(shown, f"{args.question} -> {ANSWERS[top[0]]}", [a[0] for a in attentions],
                             args.attention_png)
        print(f"wrote {args.attention_png}")
    return 0
