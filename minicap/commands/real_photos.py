"""The captioner on real photos: `train captioner --data karpathy`, and `evaluate` / `caption` of such a run.

    minicap train captioner --data karpathy --json dataset_flickr8k.json --features features.npy
    minicap evaluate runs/captioner-soft/best.npz --split test --beam 3 --captions-out test.json
    minicap caption runs/captioner-soft/best.npz test:0 --image-folder Flicker8k_Dataset --attention-png a.png

The same model (minicap.models.captioner), training loop (minicap.train) and checkpoints as the
captioned-MNIST path of minicap/commands/captioner.py; what real data needs besides is here:

- the data: a Karpathy-split JSON and a features .npy, memory-mapped (minicap.data.karpathy), so a
  49 GB COCO file trains in a few hundred MB; minibatches are gathered from the map;
- the vocabulary from the training captions, words seen fewer than --min-count times (5, as
  Karpathy's code) becoming <UNK>; captions cut to --max-length words (16; the number cut is printed);
- every reference caption: a step draws a minibatch of images and one of each image's captions at
  random (minicap.data.karpathy explains why not all pairs); scores are against all references;
- validation by BLEU-4 or CIDEr(-D) of greedy captions of the first --val-size val images (a progress
  bar on a terminal), for best.npz and early stopping.

The checkpoint's config records the data (paths, --min-count, --max-length); `evaluate` and `caption`
read the files from there, or from --data-json / --features when they have moved.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from minicap.commands.runs import int_range, merge_settings, open_run_folder, positive_int
from minicap.errors import MinicapError

DATA_DEFAULTS = {"min_count": 5, "max_length": 16}
EVAL_CHUNK = 100   # images decoded at once: 100 x 196 x 512 float32 = 40 MB of features, whatever the split


def add_train_options(parser):
    """The options of `train captioner --data karpathy` (captioner.configure calls this)."""
    group = parser.add_argument_group("real photos (--data karpathy)")
    group.add_argument("--json", type=Path, default=None, help="Karpathy-split dataset JSON, e.g. dataset_flickr8k.json")
    group.add_argument("--features", type=Path, default=None,
                       help="(N, L, D) float .npy, row i the annotation vectors of the JSON's i-th image "
                            "(memory-mapped: it may be larger than memory)")
    group.add_argument("--min-count", type=positive_int, default=None,
                       help=f"keep words seen at least this often in the training captions, the rest become "
                            f"<UNK> (default {DATA_DEFAULTS['min_count']})")
    group.add_argument("--max-length", type=int_range(1, 100), default=None,
                       help=f"cut training captions to this many words (default {DATA_DEFAULTS['max_length']})")


def add_eval_options(parser, photos=False):
    """`evaluate` / `caption` of a karpathy checkpoint: where the data is, if it has moved; with
    photos (caption), the folder of the photos for the attention figure."""
    group = parser.add_argument_group("real photos (checkpoints trained with --data karpathy)")
    if photos:
        group.add_argument("--image-folder", type=Path, default=None,
                           help="the folder of the dataset's images (e.g. Flicker8k_Dataset): --attention-png "
                                "draws each word's attention over the photo")
    group.add_argument("--data-json", type=Path, default=None,
                       help="the dataset JSON (default: the path the checkpoint was trained with)")
    group.add_argument("--features", type=Path, default=None,
                       help="the features .npy (default: the path the checkpoint was trained with)")


def is_karpathy(ck_config):
    return (ck_config.get("data") or {}).get("name") == "karpathy"


def open_data(json_path, features_path):
    """(KarpathyIndex, FeatureFile), every problem one line naming the file."""
    from minicap.data.karpathy import FeatureFile, read_karpathy_index
    index = read_karpathy_index(json_path)
    return index, FeatureFile(features_path, len(index), json_path)


def _progress(iterable, total, desc):
    """A tqdm bar on a terminal; the plain iterable elsewhere (a pipe or a log gets no bar fragments)."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="chunk", leave=False, dynamic_ncols=True)


def decode_rows(params, config, vocab, feats, rows, beam=1, desc="decode"):
    """Captions (strings) and hypotheses of the images `rows`, decoded EVAL_CHUNK at a time."""
    from minicap.models.captioner import generate
    hyps = []
    chunks = feats.chunks(rows, EVAL_CHUNK)
    for _, block in _progress(chunks, math.ceil(len(rows) / EVAL_CHUNK), desc):
        hyps += generate(params, config, block, beam_size=beam)
    return [vocab.decode(h.tokens) for h in hyps], hyps


def score(captions, references):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) of captions against every reference of each image."""
    from minicap.metrics import score_corpus
    return score_corpus({i: r for i, r in enumerate(references)}, {i: c for i, c in enumerate(captions)})


# --- train ----------------------------------------------------------------------------------------
class MappedFeatures:
    """The training images' features as make_train_step sees them: features[idx] gathers rows
    rows[idx] from the memory map (minicap.data.karpathy.FeatureFile) - never the whole array."""

    def __init__(self, feats, rows):
        self.feats, self.rows = feats, rows
        self.shape = (len(rows),) + feats.shape[1:]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, idx):
        return self.feats.gather(self.rows[idx])


class SampledCaptions:
    """captions[idx]: one caption per image of the minibatch idx, drawn from rng (the run's generator,
    so the choice is part of the saved state and a resumed run draws the same)."""

    def __init__(self, train_captions, rng):
        self.train_captions, self.rng = train_captions, rng

    def __getitem__(self, idx):
        return self.train_captions.captions[self.train_captions.pick(idx, self.rng)].astype(np.int64)


def _saved_data(out):
    """The "data" config of the karpathy run in out/last.npz, or None (open_run_folder reports why)."""
    from minicap.checkpoint import load_checkpoint
    last = Path(out) / "last.npz"
    if not last.is_file():
        return None
    data = load_checkpoint(last, kind="captioner").config.get("data") or {}
    return data if data.get("name") == "karpathy" else None


def run_train(args, captioner_module):
    """`minicap train captioner --data karpathy ...` (captioner.run_train sends it here)."""
    from minicap.data import Vocabulary
    from minicap.data.karpathy import encode_training_captions, training_tokens
    from minicap.models import captioner
    from minicap.models.captioner import make_train_step
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    C = captioner_module
    if args.resume and (args.json is None or args.features is None):   # the run's own files, by default
        saved = _saved_data(args.out or Path(f"runs/captioner-{args.attention or 'soft'}"))
        args.json = args.json or (saved and Path(saved["json"]))
        args.features = args.features or (saved and Path(saved["features"]))
    if args.json is None or args.features is None:
        raise MinicapError("--data karpathy needs --json DATASET.json and --features FEATURES.npy")
    if args.encoder is not None:
        raise MinicapError("--encoder is for captioned MNIST; with --data karpathy the features file holds "
                           "the encoder's output already")
    attention = args.attention or "soft"
    if args.out is None:
        args.out = Path(f"runs/captioner-{attention}")
    # read and check the data first: a bad file costs nothing and touches no run folder
    index, feats = open_data(args.json, args.features)
    folder = open_run_folder(args.out, C.KIND, args.resume)
    previous, last = folder.previous, folder.last
    if previous is not None:
        if not is_karpathy(previous):
            raise MinicapError(f"the run in {args.out} was trained on {previous['data']['name']}; resume it "
                               f"without --data karpathy")
        if args.attention is None:
            args.attention = previous["settings"]["attention"]
    keys = C.MODEL_OPTIONS + ("batch", "optimizer", "lr", "lr_decay", "clip", "train_size", "val_size",
                              "eval_every", "metric", "patience", "seed", "steps", "log_every", "min_count", "max_length")
    given = {k: getattr(args, k) for k in keys}
    defaults = dict(C.DEFAULTS, **C.MODEL_DEFAULTS, **DATA_DEFAULTS, attention="soft", train_size=None)
    if (given["attention"] or (previous or {}).get("settings", {}).get("attention")) == "hard":
        defaults["penalty"] = 0.0
    s = merge_settings(given, previous and previous["settings"], defaults,
                       C.FIXED_ON_RESUME + tuple(DATA_DEFAULTS), args.out)
    if s["metric"] == "accuracy":
        raise MinicapError("--metric accuracy reads captioned-MNIST captions back; real photos are scored by "
                           "--metric CIDEr (default) or BLEU-4")

    train_rows = index.split_rows("train", s["train_size"])
    val_rows = index.split_rows("val", s["val_size"])
    tokens = training_tokens(index, train_rows)
    vocab = Vocabulary.build(tokens, s["min_count"])
    caps = encode_training_captions(index, train_rows, vocab, s["max_length"], tokens)
    del tokens
    print(f"data: {index.path}: {len(train_rows):,} training images ({len(caps.captions):,} captions, "
          f"{caps.n_truncated:,} cut to {s['max_length']} words), validation on {len(val_rows):,} val images; "
          f"vocabulary {len(vocab):,} words seen >= {s['min_count']} times ({caps.unk_rate:.2%} of the training "
          f"words became <UNK>); features {feats.describe()}", file=sys.stderr)

    _, L, D = feats.shape
    if previous is not None:
        config = captioner.CaptionerConfig.from_dict(previous["model"])
        if C.load_captioner(last)[2] != vocab:
            raise MinicapError(f"the vocabulary of {last} differs from this data's; were --json or --min-count "
                               f"changed? Start a new run with --out")
    else:   # feature_scale brings the features to unit root-mean-square size, measured on a sample
        rms = feats.rms(train_rows)
        config = captioner.CaptionerConfig(feature_scale=1 / max(rms, 1e-12), **{k: s[k] for k in C.MODEL_OPTIONS})
    fresh = captioner.init_params(config, len(vocab), D, np.random.default_rng(s["seed"]), locations=L)
    if previous is not None:
        run = resume_run(last, C.KIND, fresh)
    else:
        data = {"name": "karpathy", "json": str(Path(args.json).resolve()),
                "features": str(Path(args.features).resolve()), "min_count": s["min_count"],
                "max_length": s["max_length"]}
        ck_config = {"model": config.to_dict(), "settings": s, "feature_size": D, "locations": L,
                     "image_size": None, "data": data}
        run = Run(kind=C.KIND, config=ck_config, params=fresh, optimizer=make_optimizer(s["optimizer"], lr=s["lr"]),
                  rng=np.random.default_rng(s["seed"] + 1))
    run.config["settings"]["steps"] = s["steps"]
    extra = {"vocab": vocab.to_array()}
    val_refs = [index.references[r] for r in val_rows]

    def evaluate(run):
        captions, _ = decode_rows(run.params, config, vocab, feats, val_rows, desc="validate")
        scores = score(captions, val_refs)
        return {"BLEU-4": scores["BLEU-4"], "CIDEr": scores["CIDEr"]}

    def on_log(run, loss):
        i = (run.step // s["log_every"]) % len(val_rows)
        hyp = captioner.generate(run.params, config, feats.gather(val_rows[i:i + 1]))[0]
        return f"step {run.step}: loss {loss:.3f} | val image {index.names[val_rows[i]]}: " \
               f"\"{vocab.decode(hyp.tokens)}\" (one reference: \"{val_refs[i][0]}\")"

    print(f"model: {attention} attention, E={config.embed} H={config.hidden} A={config.attention_size}, "
          f"{sum(v.size for v in run.params.values()):,} parameters", file=sys.stderr)
    start = time.time()
    schedule = (s["lr"], s["steps"]) if s["lr_decay"] == "cosine" else (None, None)
    step = make_train_step(config, MappedFeatures(feats, train_rows), SampledCaptions(caps, run.rng), s["batch"],
                           *schedule)
    train(run, step, s["steps"], args.out, clip=("global", s["clip"]), log_every=s["log_every"], evaluate=evaluate,
          eval_every=s["eval_every"], metric=s["metric"], patience=s["patience"], on_log=on_log, extra=extra)
    print(f"best validation {s['metric']} {math.nan if run.best_score is None else run.best_score:.4f}; "
          f"{time.time() - start:.0f} s. Score it: minicap evaluate {args.out / 'best.npz'} --split test --beam 3", file=sys.stderr)
    return 0


# --- evaluate and caption ---------------------------------------------------------------------------
def _data_of(args, ck_config):
    data = ck_config["data"]
    return open_data(args.data_json or data["json"], args.features or data["features"])


def run_evaluate(args, loaded):
    """`minicap evaluate CHECKPOINT --split val|test` of a karpathy run: the paper's metric table."""
    params, config, vocab, _, ck_config = loaded
    if args.split == "novel":
        raise MinicapError("--split novel is captioned MNIST's; a Karpathy dataset has val and test")
    index, feats = _data_of(args, ck_config)
    if feats.shape[1:] != (ck_config["locations"], ck_config["feature_size"]):
        raise MinicapError(f"{feats.path}: features of {feats.shape[1]} x {feats.shape[2]}, the checkpoint was "
                           f"trained on {ck_config['locations']} x {ck_config['feature_size']}")
    rows = index.split_rows(args.split, args.n)
    refs = [index.references[r] for r in rows]
    captions, _ = decode_rows(params, config, vocab, feats, rows, beam=args.beam, desc=f"{args.split}")
    scores = {"checkpoint": str(args.checkpoint), "attention": config.attention, "data": str(index.path),
              "split": args.split, "beam": args.beam, **score(captions, refs), "images": len(rows)}
    if args.captions_out is not None:
        out = [{"row": int(r), "filename": index.names[r], "caption": c, "references": ref}
               for r, c, ref in zip(rows, captions, refs)]
        args.captions_out.parent.mkdir(parents=True, exist_ok=True)
        args.captions_out.write_text(json.dumps(out, indent=1))
    if args.json:
        print(json.dumps(scores))
    else:
        for key, value in scores.items():
            print(f"{key:12s} {value:.4f}" if isinstance(value, float) else f"{key:12s} {value}")
    return 0


def resolve_images(specs, index):
    """JSON rows of the images named by SPLIT:INDEX (the INDEX-th image of the split) or a file name."""
    by_name = {name: i for i, name in enumerate(index.names)}
    rows = []
    for spec in specs:
        split, colon, k = str(spec).partition(":")
        if colon and split in ("train", "val", "test"):
            split_rows = index.split_rows(split)
            if not (k.isascii() and k.isdigit()) or int(k) >= len(split_rows):
                raise MinicapError(f"image {spec}: {index.path} has {len(split_rows):,} {split} images; give "
                                   f"{split}:0 to {split}:{len(split_rows) - 1}")
            rows.append(int(split_rows[int(k)]))
        elif spec in by_name:
            rows.append(by_name[spec])
        else:
            raise MinicapError(f"image {spec}: not a file name listed in {index.path}, nor SPLIT:INDEX (e.g. test:0)")
    return np.array(rows, dtype=np.int64)


def read_photo(folder, name, size=224):
    """The photo folder/name as (size, size, 3) float32 in [0, 1] (resized as the CNN saw it)."""
    from minicap.data.captions import _open_image
    from minicap.data.files import check_file
    img = _open_image(check_file(Path(folder) / name, "photo"))
    return np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32) / 255


def run_caption(args, loaded):
    """`minicap caption CHECKPOINT test:0 photo.jpg ...` of a karpathy run (images named in its JSON)."""
    params, config, vocab, _, ck_config = loaded
    if args.attention_png is not None and config.attention == "none":
        raise MinicapError("--attention-png needs an attention model; this checkpoint is the baseline")
    if args.attention_png is not None and args.image_folder is None:
        raise MinicapError("--attention-png draws over the photos: give the folder that holds them with --image-folder")
    index, feats = _data_of(args, ck_config)
    rows = resolve_images(args.images, index)
    from minicap.models.captioner import generate
    hyps = generate(params, config, feats.gather(rows), beam_size=args.beam)
    for spec, r, h in zip(args.images, rows, hyps):
        print(f"{spec} ({index.names[r]}): {vocab.decode(h.tokens)}")
        for ref in index.references[r]:
            print(f"    reference: {ref}")
    if args.attention_png is not None:
        from minicap.viz import photo_attention_figure
        photos = [read_photo(args.image_folder, index.names[r]) for r in rows]
        words = [vocab.decode(h.tokens).split() + (["<END>"] if h.finished else []) for h in hyps]
        photo_attention_figure(photos, words, [h.extras["alpha"] for h in hyps], args.attention_png,
                               [h.extras.get("location") for h in hyps])
        print(f"wrote {args.attention_png}")
    return 0
