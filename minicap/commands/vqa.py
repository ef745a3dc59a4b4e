"""`minicap train vqa`, `minicap ask`, and VQA's part of `minicap evaluate`: visual question answering
on MNIST scenes (minicap.data.vqa_scenes) with the models of minicap.models.vqa.

    minicap train vqa --model question|image|naive|memnet|san [--hops K] [--data mnist-vqa|FILE.json] [--steps N]
                      [--out DIR] [--resume]
    minicap ask CHECKPOINT IMAGE "QUESTION" [--attention-png OUT]
    minicap evaluate CHECKPOINT [--split val|test|novel] [--json]       (dispatched here for a VQA checkpoint)

Training generates the scenes, encodes them once with the frozen encoder (the captioner's features,
cached under --cache) and trains on minibatches of (annotation vectors, question, answer). Every
--eval-every steps it scores validation accuracy; best.npz keeps the best. A checkpoint (kind "vqa")
holds everything `ask` and `evaluate` need: the model config, the question vocabulary and answers
(for mnist-vqa the data module fixes them, and they are checked; for --data FILE.json they come from
the file's training questions) and the frozen encoder's weights (extra/encoder/*).

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
MODEL_DEFAULTS = {"hops": 2, "embed": 32, "hidden": 128, "attention_size": 64, "mlp": 128, "combine": "product"}
MODEL_OPTIONS = ("model",) + tuple(MODEL_DEFAULTS)
DATA_OPTIONS = ("data",)
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
                             "read as grey and resized to 60x60 for the frozen encoder)")
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
    group.add_argument("--encoder", type=Path, default=None,
                       help="frozen encoder weights (default: the shipped data/encoder_mnist.npz)")
    group.add_argument("--cache", type=Path, default=None,
                       help="folder for cached annotation vectors (default: $MINICAP_CACHE, else ~/.cache/minicap)")


def configure_ask(parser):
    parser.add_argument("checkpoint", type=Path, help="a `minicap train vqa` checkpoint (.npz or its run folder)")
    parser.add_argument("image", help="a 60x60 grayscale PNG (white digits on black, like the scenes), or "
                                      "SPLIT:INDEX for a scene of the mnist-vqa split (e.g. test:7)")
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
    encoder = {k[len("encoder/"):]: v for k, v in ck.extra.items() if k.startswith("encoder/")}
    check_param_shapes(path, ck.params, init_params(config, np.random.default_rng(0)))
    return ck.params, config, encoder, ck.config


def load_features(split, n, encoder, cache=None, progress=True):
    """mnist-vqa split `split` (n examples) and its cached annotation vectors (n, L, D) float32."""
    from minicap.data.features import cached_encode
    from minicap.data.vqa_scenes import make_vqa_scenes
    data = make_vqa_scenes(split, n=n, seed=0)
    feats = cached_encode(data.images, encoder, cache, name=f"vqa-{split}-seed0-n{n}", progress=progress)
    return data, feats


def load_file(path):
    """A user's VQA JSON file (minicap.data.vqa_files), its images grey and 60x60 for the frozen encoder."""
    from minicap.data.vqa_files import load_vqa_json
    return load_vqa_json(path, size=(IMAGE_SIZE, IMAGE_SIZE), mode="L")


def file_features(file_data, split, encoder, cache=None, progress=True):
    """Split `split` of a user's VQA file and its cached annotation vectors."""
    from minicap.data.features import cached_encode
    data = file_data.split(split)
    if len(data.answers) == 0:
        return data, np.zeros((0,) + encoder_grid(encoder), np.float32)
    return data, cached_encode(data.images, encoder, cache, name=f"vqa-file-{split}", progress=progress)


def encoder_grid(encoder):
    """(L, D) of the frozen encoder's annotations on a 60x60 image."""
    from minicap.models.encoder import grid_shape
    gh, gw = grid_shape(IMAGE_SIZE)
    return gh * gw, encoder["conv4_b"].shape[0]


def data_prefix(data, n):
    from minicap.data.vqa_files import VQAFileSplit
    return VQAFileSplit(data.images[:n], data.questions[:n], data.answers_text[:n], data.tokens[:n],
                        data.answers[:n], data.image_names[:n])


# --- training -------------------------------------------------------------------------------------
def _settings(args, previous=None):
    given = {k: getattr(args, k) for k in MODEL_OPTIONS + DATA_OPTIONS + ("batch", "lr", "lr_decay", "clip", "train_size", "val_size",
                                                           "eval_every", "seed", "steps")}
    return merge_settings(given, previous, dict(DEFAULTS, **MODEL_DEFAULTS, model="san", data="mnist-vqa"),
                          FIXED_ON_RESUME, args.out)


def default_out(model, hops):
    return Path(f"runs/vqa-{model}{hops if model in ('memnet', 'san') else ''}")


def run_train(args):
    from minicap.data.features import default_cache_dir
    from minicap.data.vqa_scenes import ANSWERS, QUESTION_VOCAB
    from minicap.models import vqa
    from minicap.models.encoder import load_encoder, weights_hash
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    if args.out is None:
        args.out = default_out(args.model or "san", args.hops or MODEL_DEFAULTS["hops"])
    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last = folder.previous, folder.last
    s = _settings(args, previous and previous["settings"])
    if previous is not None:
        _, _, encoder, _ = load_vqa(last)   # the run's own frozen encoder
        if args.encoder is not None and weights_hash(load_encoder(args.encoder)) != previous["encoder"]["hash"]:
            raise MinicapError(f"the run in {args.out} was trained on the features of another encoder; drop "
                               f"--encoder to resume it with its own, or start a new run with another --out")
    else:
        encoder = load_encoder(args.encoder)
    source = s["data"]
    print(f"data: {source}; encoding with the frozen encoder (cached in {args.cache or default_cache_dir()})",
          file=sys.stderr)
    if source == "mnist-vqa":
        train_data, train_feats = load_features("train", s["train_size"], encoder, args.cache)
        val_data, val_feats = load_features("val", s["val_size"], encoder, args.cache)
        vocab, answers = list(QUESTION_VOCAB), list(ANSWERS)
    else:
        file_data = load_file(source)
        (train_data, train_feats), (val_data, val_feats) = (file_features(file_data, split, encoder, args.cache)
                                                            for split in ("train", "val"))
        vocab, answers = file_data.vocab, file_data.answer_classes
    print(f"{len(train_data.answers)} training and {len(val_data.answers)} validation questions", file=sys.stderr)

    if previous is not None:
        config = vqa.VQAConfig.from_dict(previous["model"])
    else:   # feature_scale brings the CNN features to unit root-mean-square size
        rms = float(np.sqrt(np.mean(np.square(train_feats[:1000], dtype=np.float64))))
        config = vqa.VQAConfig(model=s["model"], hops=s["hops"], vocab_size=len(vocab),
                               n_answers=len(answers), locations=train_feats.shape[1],
                               feature_size=train_feats.shape[2], embed=s["embed"], hidden=s["hidden"],
                               attention_size=s["attention_size"], mlp=s["mlp"], combine=s["combine"],
                               feature_scale=1 / max(rms, 1e-12))
    fresh = vqa.init_params(config, np.random.default_rng(s["seed"]))
    if previous is not None:
        run_ = resume_run(last, KIND, fresh)
        print(f"resuming {last} at step {run_.step}", file=sys.stderr)
    else:
        data_config = {"name": "mnist-vqa", "seed": 0} if source == "mnist-vqa" else {"name": "file", "path": source}
        ck_config = {"model": config.to_dict(), "settings": s, "data": data_config,
                     "answers": answers, "question_vocab": vocab,
                     "encoder": {"path": str(args.encoder or "data/encoder_mnist.npz"), "hash": weights_hash(encoder)}}
        run_ = Run(kind=KIND, config=ck_config, params=fresh, optimizer=make_optimizer("adam", lr=s["lr"]),
                   rng=np.random.default_rng(s["seed"] + 1))
    run_.config["settings"]["steps"] = s["steps"]
    if run_.step >= s["steps"]:
        print(f"the run is already at step {run_.step} (target {s['steps']}); raise --steps to train more")
        return 0
    extra = {f"encoder/{k}": v for k, v in encoder.items()}

    def evaluate(run):
        if len(val_data.answers) == 0:   # a file without validation questions: the last step is kept as best
            return {"accuracy": float(run.step)}
        probs, _ = vqa.predict(run.params, val_feats, val_data.tokens, config)
        return {"accuracy": float(np.mean(probs.argmax(axis=1) == val_data.answers))}

    hops = f", {config.hops} hop{'s' if config.hops > 1 else ''}" if config.model in vqa.ATTENTION_MODELS else ""
    print(f"model: {config.model}{hops}, H={config.hidden}, {sum(v.size for v in run_.params.values()):,} parameters",
          file=sys.stderr)
    start = time.time()
    schedule = (s["lr"], s["steps"]) if s["lr_decay"] == "cosine" else (None, None)
    train(run_, vqa.make_train_step(config, train_feats, train_data.tokens, train_data.answers, s["batch"], *schedule),
          s["steps"], args.out, clip=("global", s["clip"]), log_every=min(s["eval_every"], 100), evaluate=evaluate,
          eval_every=s["eval_every"], metric="accuracy", checkpoint_every=s["eval_every"], extra=extra)
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
    """Accuracy overall and per family, and attention localisation (None without attention).

    probs: (N, C); attentions: K arrays (N, L); data: VQAScenes."""
    from minicap.data.vqa_scenes import FAMILIES
    right = probs.argmax(axis=1) == data.answers
    family = getattr(data, "family", None)   # None: the user's own questions (no families, no cells)
    out = {"accuracy": float(right.mean()) if len(right) else float("nan"),
           "per_family": {} if family is None else {name: float(right[family == f].mean())
                                                    for f, name in enumerate(FAMILIES) if np.any(family == f)},
           "attention_localisation": None}
    if attentions and family is not None:
        asked = np.isin(data.family, [FAMILIES.index("query_digit"), FAMILIES.index("relate")])
        mass = attentions[-1] @ cell_overlap()                          # (N, 4): last hop's weight per cell
        on_focus = mass[np.arange(len(mass)), np.maximum(data.focus, 0)]
        out["attention_localisation"] = float(np.mean(on_focus[asked] >= 0.5)) if asked.any() else None
    return out


def run_evaluate(args):
    """`minicap evaluate` on a VQA checkpoint (called by minicap/commands/captioner.py's run_evaluate)."""
    from minicap.data.vqa_scenes import DEFAULT_SIZES
    from minicap.models import vqa
    if args.beam != 1 or args.captions_out is not None:
        raise MinicapError(f"{args.checkpoint} is a VQA model: it picks one answer, so --beam and --captions-out "
                           f"(captioner options) do not apply; drop them")
    params, config, encoder, ck_config = load_vqa(args.checkpoint)
    if ck_config["data"]["name"] == "file":
        if args.split == "novel":
            raise MinicapError("--split novel is a split of mnist-vqa; a model trained on your own file has val and test")
        data, feats = file_features(load_file(ck_config["data"]["path"]), args.split, encoder,
                                    getattr(args, "cache", None), progress=not args.json)
        if args.n:
            data, feats = data_prefix(data, args.n), feats[:args.n]
    else:
        data, feats = load_features(args.split, args.n or DEFAULT_SIZES[args.split], encoder,
                                    getattr(args, "cache", None), progress=not args.json)
    n = len(data.answers)
    probs, attentions = vqa.predict(params, feats, data.tokens, config)
    scores = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "model": config.model,
              "hops": config.hops if config.model in vqa.ATTENTION_MODELS else 0, "split": args.split, "n": n,
              **score(probs, attentions, data)}
    if args.json:
        print(json.dumps(scores))
        return 0
    for key, value in scores.items():
        if key == "per_family":
            for family, acc in value.items():
                print(f"  {family:28s} {acc:.4f}")
        else:
            print(f"{key:30s} {value:.4f}" if isinstance(value, float) else f"{key:30s} {value}")
    return 0


# --- ask --------------------------------------------------------------------------------------------
def read_scene(spec):
    """(image (60, 60) float32, the scene's own (question, answer) or None): SPLIT:INDEX of mnist-vqa, or a
    PNG read as `minicap caption` reads one."""
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


def run_ask(args):
    from minicap.data.vqa_files import encode_with_vocab
    from minicap.models import vqa
    from minicap.models.encoder import encode
    params, config, encoder, ck_config = load_vqa(args.checkpoint)
    ANSWERS = ck_config["answers"]
    if args.attention_png is not None and config.model not in vqa.ATTENTION_MODELS:
        raise MinicapError(f"--attention-png needs an attention model (memnet or san); this checkpoint is "
                           f"{config.model!r}, which has no attention to show")
    image, own = read_scene(args.image)
    tokens = encode_with_vocab([args.question], ck_config["question_vocab"], unknown="error")
    probs, attentions = vqa.predict(params, encode(image[None], encoder), tokens, config)
    top = np.argsort(-probs[0])[:3]
    print(f"{args.question} -> {ANSWERS[top[0]]}")
    for k in top:
        print(f"  {ANSWERS[k]:14s} {probs[0, k]:.3f}")
    if own is not None:
        print(f"(the scene's own question: {own[0]} -> {own[1]})")
    if args.attention_png is not None:
        from minicap.viz import vqa_attention_figure
        vqa_attention_figure(image, f"{args.question} -> {ANSWERS[top[0]]}", [a[0] for a in attentions],
                             args.attention_png)
        print(f"wrote {args.attention_png}")
    return 0
