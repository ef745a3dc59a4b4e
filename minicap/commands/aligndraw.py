"""`minicap train aligndraw` and the alignDRAW branch of `minicap generate`.

    minicap train aligndraw [--data mnist-captions|mnist-corners] [--out DIR] [--steps N] [--no-align] [--resume]
                            [--canvases fresh|fixed] [--lr-halflife N] [--caption-encoder bilstm|words|bilstm+words]
                            [--kl-weight BETA] [--layout-encoder E] [--layout-max-span PX]
                            [--paper [--layout [--layout-encoder E] [--layout-hides-digits] [--layout-max-span PX]
                                              [--layout-to-generator]]]
    minicap roundtrip CHECKPOINT --captioner CAPTIONER [--temperature TAU] [--pixels mean|sample]
    minicap roundtrip CORNERS_CHECKPOINT [--temperature TAU] [--json]     (a --data mnist-corners run)
    minicap generate CHECKPOINT "the digit three is at the top of the digit one" [MORE CAPTIONS] [--n 8]
                     --out FILE.png [--gif FILE.gif]

By default the model is the where/what split (since 2026-12-04): the write windows come from a layout
path that reads the caption with its digit words hidden, at most 28 px wide, and the generator, on the
words encoder, is told where it writes (aligndraw.py: layout=True; docs/aligndraw.md). --paper trains the
paper's architecture instead (the generator's own windows and alignment over a bidirectional LSTM: the
default before), and with --paper the --layout flags build the variants measured on the way.

By default every batch is 64 new canvases drawn from the run's own rng (the training digits, the
held-out combinations excluded); --lr-halflife N halves the learning rate every N steps; --canvases fixed
trains on --train-size fixed canvases instead (the behaviour before; a run saved before these options
existed resumes that way). Training writes OUT/last.npz and OUT/best.npz (kind "aligndraw", best = lowest validation bound) with a
config that holds the model sizes and the caption vocabulary, so generating needs nothing else. At the
end it prints the bound on the test split (and on the novel split) of its data. --data mnist-corners trains
on corner MNIST (minicap.data.corner_mnist; fresh canvases only), and its round trip reads the drawings
corner by corner with the shipped MNIST classifier, no captioner needed (docs/aligndraw_corners.md).

`minicap generate` (minicap/commands/generate.py) dispatches on the checkpoint's kind; for an "aligndraw"
checkpoint it calls generate() here, which reuses DRAW's picture helpers (minicap.commands.draw).
"""
import sys
from pathlib import Path

import numpy as np

from minicap.commands.runs import (int_range, merge_settings, nonnegative_float, open_run_folder, positive_float,
                                   positive_int, resolve_checkpoint, seed, writable_file)
from minicap.errors import MinicapError

KIND = "aligndraw"
# How far from its mean the prior is sampled when drawing for a caption (z_t = mu' + tau sigma' eps):
# at tau = 1 the drawings are blurrier (the round trip of the default run reads back 86.0% of the seen
# test captions and 62.6% of the novel ones; the paper's architecture 69.8 / 22.2%), at 0.5 96.6 / 76.6%
# with the drawings still varied (docs/aligndraw.md).
SAMPLE_TEMPERATURE = 0.5

# training defaults (the model sizes are aligndraw.default_config's)
# lr_halflife 0 (constant): halving the rate every 1,500 steps left a fresh-canvas run 10 nats (validation
# bound) behind the same run at a constant rate at step 2,500 (docs/aligndraw.md): at this budget the model
# is far from converged, and a lower rate only slows it. steps 8000: ~26 min of CPU (a step takes ~0.19 s
# since the faster LSTM backward products, canvas sigmoid and filterbank of 2026-12-03), leaving room in the
# 30-minute budget for a slower machine; the seen captions kept improving with steps (9,000 took ~29 min).
# kl_weight 2: the training loss is recon + 2 KL, not the bound (aligndraw.forward): with the latents twice as
# costly the drawings follow the caption more: at 7,000 steps the round trip of seen captions went 55.8 ->
# 69.6% at tau 1 and 78.4 -> 84.2% at tau 0.5 (novel 16.4 -> 23.6%, 24.8 -> 29.0%) for a bound 34 nats worse;
# 4 was worse on both (docs/aligndraw.md). The model's own default (aligndraw.default_config) stays 1.
# steps 7000 since the where/what split became the default (2026-12-04): its step is ~1.24x the paper
# model's, and 8,000 steps took 32 min beside another training; 7,000 fit in 30 minutes.
DEFAULTS = dict(steps=7000, batch=64, lr=1e-3, lr_halflife=0, clip=10.0, canvases="fresh", train_size=10000, kl_weight=2.0,
                val_size=500, test_size=1000, eval_every=500)
# the architecture of a new run: the where/what split (the model's config keys), or with --paper the paper's
# (aligndraw.default_config's own defaults: no layout path, the bidirectional LSTM for the generator)
WHERE_WHAT = dict(caption_encoder="words", layout=True, layout_encoder="bilstm", layout_hides_digits=True,
                  layout_max_span=28.0, layout_to_generator=True)
PAPER = dict(caption_encoder="bilstm", layout=False, layout_encoder=None, layout_hides_digits=False,
             layout_max_span=0.0, layout_to_generator=False)
# what a checkpoint written before these options existed was trained with (a resume keeps it): the
# paper's architecture, fixed canvases, a constant rate, the bound as the loss
LEGACY = dict(PAPER, canvases="fixed", lr_halflife=0, data="mnist-captions", kl_weight=1.0)


def configure(parser):
    if parser.prog.split()[-1] == "roundtrip":
        parser.set_defaults(_aligndraw_command="roundtrip")
        return configure_roundtrip(parser)
    parser.set_defaults(_aligndraw_command="train")
    parser.add_argument("--data", choices=("mnist-captions", "mnist-corners"), default=None,
                        help="mnist-captions: the captioned-MNIST images generated from the shipped MNIST digits "
                             "(default); mnist-corners: two digits in two corners, the caption naming each with its "
                             "corner (minicap.data.corner_mnist, docs/aligndraw_corners.md)")
    parser.add_argument("--out", type=Path, default=Path("runs/aligndraw"),
                        help="folder for last.npz and best.npz (default runs/aligndraw)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    parser.add_argument("--steps", type=positive_int, default=None, help=f"train up to this many steps (default {DEFAULTS['steps']})")
    parser.add_argument("--batch", type=positive_int, default=None, help=f"images per step (default {DEFAULTS['batch']})")
    parser.add_argument("--lr", type=positive_float, default=None, help=f"Adam learning rate (default {DEFAULTS['lr']})")
    parser.add_argument("--lr-halflife", type=int_range(0, 10**9), default=None,
                        help=f"halve the learning rate every N steps, lr 2^(-step/N) (default {DEFAULTS['lr_halflife']}; "
                             f"0: constant)")
    parser.add_argument("--canvases", choices=("fresh", "fixed"), default=None,
                        help="fresh: new canvases for every batch, drawn from the training digits with the held-out "
                             "combinations excluded (default); fixed: batches from --train-size fixed canvases")
    parser.add_argument("--clip", type=positive_float, default=None,
                        help=f"clip each parameter's gradient to this norm (default {DEFAULTS['clip']}, as the paper)")
    parser.add_argument("--no-align", action="store_true",
                        help="the paper's no-alignment baseline: the generator sees the mean of the word states")
    parser.add_argument("--caption-encoder", choices=("bilstm", "words", "bilstm+words"), default=None,
                        help="what the generator's alignment reads: words: each word's embedding beside a learned "
                             "vector for its position, nothing mixed (default); bilstm: the paper's bidirectional "
                             "LSTM over the caption (default with --paper); bilstm+words: the LSTM's states beside "
                             "each word's own embedding")
    parser.add_argument("--kl-weight", type=positive_float, default=None, metavar="BETA",
                        help=f"train on reconstruction + BETA x KL (default {DEFAULTS['kl_weight']:g}; 1 is the variational "
                             f"bound, as the paper): BETA > 1 makes the latents carry less, so the drawings follow "
                             f"the caption more (the bounds reported are always the true bound)")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's architecture (Mansimov et al.: the generator places its own write windows "
                             "and aligns over a bidirectional LSTM; the default before 2026-12-04) instead of the "
                             "where/what split, which is the default (docs/aligndraw.md)")
    parser.add_argument("--layout", action="store_true",
                        help="with --paper: add a layout path, a small LSTM that reads only the caption and gives "
                             "the write windows (the patches still come from the generator); the default model has "
                             "one, with all of the options below")
    parser.add_argument("--layout-encoder", choices=("bilstm", "words", "bilstm+words"), default=None,
                        help="the caption encoder the layout path reads (default bilstm; with --paper --layout the "
                             "generator's); one other than the generator's shares its word embedding")
    parser.add_argument("--layout-hides-digits", action="store_true",
                        help="with --paper --layout: the layout path reads every digit word as <UNK>, so where a "
                             "digit is drawn can depend only on the other words (a prior made by hand; the default "
                             "model does this)")
    parser.add_argument("--layout-max-span", type=positive_float, default=None, metavar="PX",
                        help="no write window spans more than PX pixels from its first to its last filter centre "
                             "(default 28: a digit, so the window, not the patch, decides where ink goes; with "
                             "--paper --layout: no cap unless given)")
    parser.add_argument("--layout-to-generator", action="store_true",
                        help="with --paper --layout: the generator is told where it writes (the layout path's state "
                             "joins its input and its alignment query; the default model does this)")
    parser.add_argument("--T", type=positive_int, default=None, help="drawing steps (default 16)")
    parser.add_argument("--enc", type=positive_int, default=None, help="inference LSTM size (default 256)")
    parser.add_argument("--dec", type=positive_int, default=None, help="generator LSTM size (default 256)")
    parser.add_argument("--z", type=positive_int, default=None, help="latent size per step (default 100)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help=f"with --canvases fixed, the captioned images to train on (default "
                             f"{DEFAULTS['train_size']}); with fresh canvases, only the vocabulary is read from them")
    parser.add_argument("--val-size", type=positive_int, default=None,
                        help=f"validation images for the bound printed while training (default {DEFAULTS['val_size']})")
    parser.add_argument("--eval-every", type=positive_int, default=None,
                        help=f"compute the validation bound every N steps (default {DEFAULTS['eval_every']})")
    parser.add_argument("--seed", type=seed, default=None, help="random seed of the initialisation and data (default 0)")


# options that define the model and its data: a resumed run must keep them
FIXED_ON_RESUME = ("data", "batch", "lr", "lr_halflife", "canvases", "clip", "train_size", "val_size", "T", "enc_size",
                   "dec_size", "z_size", "align", "caption_encoder", "kl_weight", "layout", "layout_encoder",
                   "layout_hides_digits", "layout_max_span", "layout_to_generator", "seed")


def _settings(args, previous=None):
    """The defaults, then the checkpoint's settings (on resume), then the command line."""
    given = {"data": args.data, "steps": args.steps, "batch": args.batch, "lr": args.lr, "lr_halflife": args.lr_halflife,
             "canvases": args.canvases, "clip": args.clip,
             "train_size": args.train_size, "val_size": args.val_size, "eval_every": args.eval_every,
             "T": args.T, "enc_size": args.enc, "dec_size": args.dec, "z_size": args.z,
             "align": False if args.no_align else None, "caption_encoder": args.caption_encoder,
             "kl_weight": args.kl_weight, "layout": True if args.layout else None,
             "layout_encoder": args.layout_encoder, "layout_hides_digits": True if args.layout_hides_digits else None,
             "layout_max_span": args.layout_max_span,
             "layout_to_generator": True if args.layout_to_generator else None,
             "seed": args.seed}
    from minicap.models.aligndraw import default_config
    model_defaults = default_config()
    defaults = dict(DEFAULTS, seed=0, data="mnist-captions", **(PAPER if args.paper else WHERE_WHAT),
                    **{k: model_defaults[k] for k in ("T", "enc_size", "dec_size", "z_size", "align")})
    if previous:   # a run from before --canvases / --lr-halflife keeps what it was trained with
        previous = dict(LEGACY, **previous)
        if args.paper and previous["layout"] and not args.layout:
            raise MinicapError(f"the run in {args.out} has a layout path (the where/what split or a --layout "
                               f"variant), not the paper's architecture: drop --paper to resume it")
    return merge_settings(given, previous, defaults, FIXED_ON_RESUME, args.out,
                          flags={"enc_size": "enc", "dec_size": "dec", "z_size": "z", "align": "no-align"})


def model_config(config):
    """The aligndraw model config stored inside a checkpoint's config."""
    from minicap.models.aligndraw import default_config
    keys = set(default_config())
    return default_config(**{k: v for k, v in config["model"].items() if k in keys})


def run(args):
    if args._aligndraw_command == "roundtrip":
        return run_roundtrip(args)
    return run_train(args)


def run_train(args):
    from minicap.data import Vocabulary
    from minicap.data.captioned_mnist import DIGIT_WORDS
    from minicap.models import aligndraw as ad
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    def refuse_fixed_canvases(family, canvases):
        if family != "mnist-captions" and canvases == "fixed":
            raise MinicapError(f"--canvases fixed is only supported with --data mnist-captions; {family} trains on "
                               f"fresh canvases (drop --canvases)")

    refuse_fixed_canvases(args.data or "mnist-captions", args.canvases)   # before the run folder is made
    if args.paper and not args.layout:   # the paper's model has no layout path for these to act on
        for flag, given, what in (("--layout-encoder", args.layout_encoder, "chooses what the layout path reads"),
                                  ("--layout-max-span", args.layout_max_span, "caps the layout path's write windows"),
                                  ("--layout-hides-digits", args.layout_hides_digits,
                                   "hides the digit words from the layout path"),
                                  ("--layout-to-generator", args.layout_to_generator,
                                   "shows the layout path's state to the generator")):
            if given:
                raise MinicapError(f"{flag} {what}, and --paper has none: add --layout, or drop --paper")
    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last = folder.previous, folder.last
    cfg = _settings(args, previous)
    seed, family = cfg["seed"], cfg["data"]
    name = DATA_NAMES[family]
    refuse_fixed_canvases(family, cfg["canvases"])

    if cfg["canvases"] == "fresh":
        print(f"{name}: fresh training canvases for every batch; {cfg['val_size']} validation images")
    else:
        print(f"generating {name}: {cfg['train_size']} training and {cfg['val_size']} validation images")
    make, _ = ad.data_functions(family)
    data = make("train", n=cfg["train_size"], seed=seed)
    vocab = Vocabulary(previous["vocab"]) if previous else Vocabulary.build(data.captions)
    words, mask = ad.encode_words(data.captions, vocab)
    _, val_x, val_words, val_mask = ad.held_out_set("val", cfg["val_size"], vocab, data=family)

    # the words encoder has one position vector per word: enough for the family's longest caption
    # (captioned MNIST's 12 words fit the default 16; a corner caption has 17)
    max_words = max(ad.default_config()["max_words"], words.shape[1])
    if previous:
        max_words = previous["model"].get("max_words", max_words)
    model = ad.default_config(vocab_size=len(vocab), T=cfg["T"], enc_size=cfg["enc_size"], dec_size=cfg["dec_size"],
                              z_size=cfg["z_size"], align=cfg["align"], caption_encoder=cfg["caption_encoder"],
                              max_words=max_words, kl_weight=cfg["kl_weight"], layout=cfg["layout"],
                              layout_encoder=cfg["layout_encoder"],
                              layout_hidden=[vocab.index[w] for w in DIGIT_WORDS if w in vocab] if cfg["layout_hides_digits"] else [],
                              layout_max_span=cfg["layout_max_span"], layout_to_generator=cfg["layout_to_generator"])
    fresh = ad.init_params(model, np.random.default_rng(seed))
    if previous:
        run_ = resume_run(last, KIND, fresh)
        print(f"resuming {last} at step {run_.step}")
    else:
        config = dict(cfg, model=model, vocab=vocab.words, seed=seed, data=family)
        run_ = Run(kind=KIND, config=config, params=fresh, optimizer=make_optimizer("adam", lr=cfg["lr"]),
                   rng=np.random.default_rng([seed, 1]))
        n_params = sum(p.size for p in fresh.values())
        beta = "" if model["kl_weight"] == 1 else f", KL weight {model['kl_weight']:g}"
        if model["layout"]:
            beta += f", write windows from the layout path ({ad.layout_encoder(model)} encoder" + (
                ", digit words hidden" if model["layout_hidden"] else "") + (
                f", windows at most {model['layout_max_span']:g} px" if model["layout_max_span"] else "") + (
                "; the generator sees the layout" if model["layout_to_generator"] else "") + ")"
        split = all(cfg[k] == v for k, v in WHERE_WHAT.items())
        print(f"alignDRAW{' (the where/what split)' if split else ''}{'' if cfg['align'] else ' without alignment'}, caption encoder {model['caption_encoder']}{beta}: "
              f"T {model['T']}, read/write "
              f"{model['read_n']}x{model['read_n']}/{model['write_n']}x{model['write_n']}, LSTMs "
              f"{model['enc_size']}/{model['dec_size']}, z {model['z_size']}, {n_params} parameters, "
              f"vocabulary {len(vocab)}")
    run_.config["steps"] = cfg["steps"]
    if run_.step >= cfg["steps"]:
        print(f"the run is already at step {run_.step} (target {cfg['steps']}); raise --steps to train more")
        return 0

    def evaluate(run):
        b = ad.bound(run.params, val_x, val_words, val_mask, model, np.random.default_rng(0))
        return {"val_bound": float(b.mean())}

    def on_log(run, smooth):
        if model["kl_weight"] != 1:
            return f"step {run.step}: training loss (recon + {model['kl_weight']:g} KL) {smooth:.1f} nats"
        return f"step {run.step}: training bound {smooth:.1f} nats"

    if cfg["canvases"] == "fresh":
        train_step = ad.make_train_step(model, None, None, None, cfg["batch"], vocab=vocab, lr=cfg["lr"],
                                        lr_halflife=cfg["lr_halflife"], data=family)
    else:
        train_step = ad.make_train_step(model, data.images, words, mask, cfg["batch"], lr=cfg["lr"],
                                        lr_halflife=cfg["lr_halflife"])
    train(run_, train_step, cfg["steps"], args.out, clip=("per_param", cfg["clip"]), log_every=100,
          evaluate=evaluate, eval_every=cfg["eval_every"], metric="val_bound", higher_is_better=False,
          checkpoint_every=cfg["eval_every"], on_log=on_log)
    best = args.out / "best.npz"
    report = test_bounds(best if best.exists() else last, n=cfg["test_size"])
    for split, value in report.items():
        print(f"{split} bound (best.npz): {value:.1f} nats per image")
    print(f'draw from it: minicap generate {best} "{EXAMPLE_CAPTION[family]}" --out runs/drawn.png')
    return 0


# --- evaluation ------------------------------------------------------------------------------------
DATA_NAMES = {"mnist-captions": "captioned MNIST", "mnist-corners": "corner MNIST"}
EXAMPLE_CAPTION = {"mnist-captions": "the digit three is at the top of the digit one",
                   "mnist-corners": "the digit three is at the top left and the digit five is at the bottom right"}


def checkpoint_data(path):
    """The caption family (--data) an aligndraw checkpoint was trained on ("mnist-captions" for a run
    saved before --data mnist-corners existed)."""
    from minicap.checkpoint import load_checkpoint
    return load_checkpoint(resolve_checkpoint(path)).config.get("data", "mnist-captions")


def load_model(path, ck=None):
    """(params, model config, Vocabulary) of an aligndraw checkpoint (a run folder stands for its
    best.npz); MinicapError naming the file if it is not one. ck: the Checkpoint, if already loaded."""
    from minicap.checkpoint import check_param_shapes, load_checkpoint
    from minicap.data import Vocabulary
    from minicap.models import aligndraw as ad
    path = resolve_checkpoint(path)
    ck = ck if ck is not None else load_checkpoint(path, kind=KIND)
    model = model_config(ck.config)
    vocab = Vocabulary(ck.config["vocab"])
    check_param_shapes(path, ck.params, ad.init_params(model, np.random.default_rng(0)))
    return ck.params, model, vocab


def test_bounds(path, n=1000, splits=("test", "novel")):
    """The mean bound (nats per image, one eps sample each) of a checkpoint on fixed binarised splits."""
    from minicap.checkpoint import load_checkpoint
    from minicap.models import aligndraw as ad
    ck = load_checkpoint(resolve_checkpoint(path), kind=KIND)
    params, model, vocab = load_model(path, ck)
    family = ck.config.get("data", "mnist-captions")
    out = {}
    for split in splits:
        _, x, words, mask = ad.held_out_set(split, n, vocab, data=family)
        out[split] = float(ad.bound(params, x, words, mask, model, np.random.default_rng(1)).mean())
    return out


def generate_for_captions(params, model, vocab, captions, rng, batch_size=250, temperature=SAMPLE_TEMPERATURE,
                          pixels="mean"):
    """One image per caption: (N, 60, 60) float32 in [0, 1]. pixels="mean": the Bernoulli means
    sigmoid(c_T) (the paper's MNIST samples); "sample": binary pixels drawn from them (the model's
    own distribution over images, what the bound scores)."""
    from minicap.models import aligndraw as ad
    words, mask = ad.encode_words(captions, vocab)
    out = []
    for s in range(0, len(captions), batch_size):
        images = ad.generate(params, words[s:s + batch_size], mask[s:s + batch_size], model, rng,
                             temperature=temperature)
        out.append(ad.binarize(images, rng) if pixels == "sample" else images)
    return np.concatenate(out).astype(np.float32)


def round_trip(path, caption_images, split="test", n=500, seed=0, only_seen=True, rng_seed=0,
               temperature=SAMPLE_TEMPERATURE, pixels="mean"):
    """The round trip: draw an image for each caption of a captioned-MNIST split, caption the drawing
    with `caption_images(images (N, 60, 60)) -> list of N captions` (the trained soft-attention
    captioner), and count the drawings whose caption states the prompt's digits and positions
    (minicap.data.caption_accuracy: "X left of Y" = "Y right of X").

    only_seen: keep only prompts whose exact caption occurs in the alignDRAW run's training captions
    (the 'test' split; the 'novel' split holds only held-out combinations, never seen). A run trained
    on fresh canvases saw every combination the test split can hold: every test prompt counts as seen.
    temperature: of the prior's samples (SAMPLE_TEMPERATURE above); pixels: "mean" or "sample"
    (generate_for_captions).
    Returns dict(accuracy, n, n_prompts, captions, data, images).
    """
    from minicap.checkpoint import load_checkpoint
    from minicap.data import caption_accuracy, make_captioned_mnist
    ck = load_checkpoint(resolve_checkpoint(path), kind=KIND)
    params, model, vocab = load_model(path, ck)
    config = ck.config
    data = make_captioned_mnist(split, n=n, seed=seed)
    n_prompts = len(data)
    if only_seen and config.get("canvases", "fixed") == "fixed":
        seen = set(make_captioned_mnist("train", n=config["train_size"], seed=config["seed"]).captions)
        data = data.subset(np.array([i for i, c in enumerate(data.captions) if c in seen], dtype=np.int64))
    images = generate_for_captions(params, model, vocab, data.captions, np.random.default_rng(rng_seed),
                                   temperature=temperature, pixels=pixels)
    captions = list(caption_images(images))
    return dict(accuracy=caption_accuracy(captions, data), n=len(data), n_prompts=n_prompts, captions=captions,
                data=data, images=images)


def captioner_function(path, beam_size=1):
    """caption_images(images (N, 60, 60) in [0, 1]) -> N captions, with a `minicap train captioner`
    checkpoint (its frozen encoder, then greedy or beam decoding)."""
    from minicap.models.captioner import generate
    from minicap.commands.captioner import load_captioner
    from minicap.models.encoder import encode
    params, config, vocab, encoder, _ = load_captioner(path)

    def caption_images(images, batch_size=250):
        out = []
        for s in range(0, len(images), batch_size):
            hyps = generate(params, config, encode(images[s:s + batch_size], encoder), beam_size=beam_size)
            out.extend(vocab.decode(h.tokens) for h in hyps)
        return out
    return caption_images


def configure_roundtrip(parser):
    parser.add_argument("checkpoint", type=Path, help="a `minicap train aligndraw` checkpoint (or its --out folder)")
    parser.add_argument("--captioner", type=Path, default=None,
                        help="a `minicap train captioner --attention soft` checkpoint (or its folder) that captions "
                             "the drawings (required for a mnist-captions run; a mnist-corners run's drawings are "
                             "read corner by corner by the shipped MNIST classifier instead)")
    parser.add_argument("--split", choices=("test", "novel", "both"), default="both",
                        help="prompts from the test split (combinations seen in training) or the novel split "
                             "(held-out digit/position combinations); default both")
    parser.add_argument("--n", type=int_range(1, 100_000), default=500, help="prompts per split (default 500)")
    parser.add_argument("--beam", type=int_range(1, 100), default=1, help="the captioner's beam width (default 1: greedy)")
    parser.add_argument("--no-bound", action="store_true", help="skip the bound of the split's own images")
    parser.add_argument("--png", type=writable_file(".png"), default=None,
                        help="also draw the first 16 prompts' images with the captions the captioner gave them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=seed, default=0, help="random seed of the drawings (default 0)")
    parser.add_argument("--temperature", type=nonnegative_float, default=SAMPLE_TEMPERATURE,
                        help=f"spread of the prior's samples: 1 samples the prior, 0 follows its mean "
                             f"(default {SAMPLE_TEMPERATURE})")
    parser.add_argument("--pixels", choices=("mean", "sample"), default="mean",
                        help="draw each pixel's Bernoulli mean sigmoid(c_T) (default) or a 0/1 sample from it")


def run_roundtrip(args):
    """Bound and round-trip accuracy of an alignDRAW checkpoint on the test and/or novel split, with
    the accuracy per template (minicap.data.accuracy_by_template)."""
    import json
    from minicap.data import accuracy_by_template
    family = checkpoint_data(args.checkpoint)
    if family == "mnist-corners":
        if args.captioner is not None:
            raise MinicapError(f"{args.checkpoint} was trained on mnist-corners, whose drawings are read corner by "
                               f"corner by the MNIST classifier (corner_mnist.read_corners): drop --captioner")
        return run_corner_roundtrip(args)
    if args.captioner is None:
        raise MinicapError(f"{args.checkpoint} was trained on {family}: give --captioner, a `minicap train captioner "
                           f"--attention soft` checkpoint that captions the drawings")
    caption_images = captioner_function(args.captioner, args.beam)
    splits = ("test", "novel") if args.split == "both" else (args.split,)
    report = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "captioner": str(args.captioner), "beam": args.beam,
              "temperature": args.temperature, "pixels": args.pixels}
    rows = []
    for split in splits:
        result = round_trip(args.checkpoint, caption_images, split=split, n=args.n, only_seen=(split == "test"),
                            rng_seed=args.seed, temperature=args.temperature, pixels=args.pixels)
        report[f"{split}_round_trip_accuracy"] = result["accuracy"]
        report[f"{split}_prompts"] = result["n"]
        # the captioner on the split's real images: the ceiling the drawings are judged against
        report[f"{split}_captioner_accuracy_on_real_images"] = _accuracy_on(caption_images, result["data"])
        report[f"{split}_by_template"] = accuracy_by_template(result["captions"], result["data"])
        if not args.no_bound:
            report[f"{split}_bound"] = test_bounds(args.checkpoint, n=args.n, splits=(split,))[split]
        rows.append((split, result))
    if args.png is not None:
        from minicap.viz import save_round_trip_figure
        save_round_trip_figure([(split, r["data"].captions[i], r["captions"][i], r["data"].is_correct(i, r["captions"][i]),
                                 r["images"][i]) for split, r in rows for i in range(min(8, r["n"]))], args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_report(report)
    for split, _ in rows:
        print(f"\n{split} prompts by template: the share read back right, and the share whose caption names the "
              f"prompt's digits / has its layout")
        print(f"  {'template':14s} {'prompts':>7s} {'right':>6s} {'digits':>6s} {'layout':>6s}")
        for name, r in report[f"{split}_by_template"].items():
            print(f"  {name:14s} {r['prompts']:7d} {r['correct']:6.1%} {r['digits']:6.1%} {r['layout']:6.1%}")
    return 0


def corner_round_trip(path, split="test", n=500, seed=0, rng_seed=0, temperature=SAMPLE_TEMPERATURE, pixels="mean"):
    """The round trip of a mnist-corners run: draw an image for each of the first n captions of a
    corner-MNIST split, read each drawing's four corners with the MNIST classifier
    (corner_mnist.read_corners), and count the drawings read exactly as captioned (corner_accuracy: the
    named corners hold the named digits, the others are empty). Every test prompt is a training
    combination (fresh canvases); the novel split holds a held-out (corner, digit) pair in every prompt.
    Returns dict(accuracy, clause_accuracy, n, read, data, images)."""
    from minicap.data.corner_mnist import clause_accuracy, corner_accuracy, make_corner_mnist, read_corners
    params, model, vocab = load_model(path)
    data = make_corner_mnist(split, n=n, seed=seed)
    images = generate_for_captions(params, model, vocab, data.captions, np.random.default_rng(rng_seed),
                                   temperature=temperature, pixels=pixels)
    read = read_corners(images)
    return dict(accuracy=corner_accuracy(read, data), clause_accuracy=clause_accuracy(read, data), n=len(data),
                read=read, data=data, images=images)


def describe_reading(read):
    """A reading of the four corners as text: "top left three, bottom right five" ("empty": no digit)."""
    from minicap.data import DIGIT_WORDS
    from minicap.data.corner_mnist import CORNERS
    named = [f"{corner} {DIGIT_WORDS[d]}" for corner, d in zip(CORNERS, np.asarray(read).tolist()) if d >= 0]
    return ", ".join(named) or "empty"


def run_corner_roundtrip(args):
    """`minicap roundtrip` for a mnist-corners run: the exact-reading accuracy per split, the share of
    clauses drawn right, the reader's accuracy on the split's real canvases (the ceiling) and the bound."""
    import json
    from minicap.data.corner_mnist import corner_accuracy, read_corners
    splits = ("test", "novel") if args.split == "both" else (args.split,)
    report = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "data": "mnist-corners",
              "reader": "corner_mnist.read_corners (data/encoder_mnist.npz)", "temperature": args.temperature,
              "pixels": args.pixels}
    rows = []
    for split in splits:
        result = corner_round_trip(args.checkpoint, split=split, n=args.n, rng_seed=args.seed,
                                   temperature=args.temperature, pixels=args.pixels)
        report[f"{split}_round_trip_accuracy"] = result["accuracy"]
        report[f"{split}_clause_accuracy"] = result["clause_accuracy"]
        report[f"{split}_prompts"] = result["n"]
        # the reader on the split's real canvases: the ceiling the drawings are judged against
        report[f"{split}_reader_accuracy_on_real_images"] = corner_accuracy(read_corners(result["data"].images),
                                                                            result["data"])
        if not args.no_bound:
            report[f"{split}_bound"] = test_bounds(args.checkpoint, n=args.n, splits=(split,))[split]
        rows.append((split, result))
    if args.png is not None:
        from minicap.viz import save_round_trip_figure
        save_round_trip_figure([(split, r["data"].captions[i], describe_reading(r["read"][i]),
                                 bool((r["read"][i] == r["data"].expected_reading()[i]).all()), r["images"][i])
                                for split, r in rows for i in range(min(8, r["n"]))], args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_report(report)
    return 0


def _print_report(report):
    """A round-trip report's numbers, one per line (tables, like the per-template one, are printed apart)."""
    for key, value in report.items():
        if not isinstance(value, dict):
            print(f"{key:42s} {value:.4f}" if isinstance(value, float) else f"{key:42s} {value}")


def _accuracy_on(caption_images, data):
    from minicap.data import caption_accuracy
    return caption_accuracy(caption_images(data.images), data)


# --- minicap generate, for an alignDRAW checkpoint -------------------------------------------------
GENERATE_BATCH = 256   # images drawn at once
ANIMATED = 8           # images per caption shown in the --gif animation
def generate(ck, path, args):
    """Images drawn from the prior for each caption in args.captions (args.n per caption): a PNG with
    one captioned row per caption and, with --gif, an animation of the canvases step by step with
    the words the alignment attends to. Called by minicap/commands/generate.py for kind "aligndraw"."""
    from minicap.models import aligndraw as ad
    from minicap.viz import attention_frames, first_samples, save_caption_grid, save_gif, stack_images
    if not args.captions or not any(c.strip() for c in args.captions):
        raise MinicapError(f"{path} holds an alignDRAW model, which draws from a caption: give one, e.g. "
                           f'minicap generate {path} "the digit three is at the top of the digit one" --out x.png')
    params, model, vocab = load_model(path, ck)
    rng = np.random.default_rng(args.seed)
    temperature = SAMPLE_TEMPERATURE if args.temperature is None else args.temperature
    rows, animations = [], []
    for caption in args.captions:
        words, mask = ad.encode_words([prompt_tokens(caption, vocab)], vocab)
        # in batches, recording the drawing of the first batch only: memory stays bounded for any --n
        images, history = [], None
        for start in range(0, args.n, GENERATE_BATCH):
            count = min(GENERATE_BATCH, args.n - start)
            drawn = ad.generate(params, np.repeat(words, count, 0), np.repeat(mask, count, 0), model, rng,
                                record=history is None, temperature=temperature)
            if history is None:
                drawn, history = drawn
            images.append(drawn)
        rows.append((caption, np.concatenate(images)))
        if args.gif is not None:
            tokens = [vocab.words[i] for i in words[0][mask[0]]]
            animations.append(attention_frames(first_samples(history, ANIMATED), tokens, scale=args.scale))
    save_caption_grid(rows, args.out, scale=args.scale)
    print(f"wrote {args.n} image{'s' * (args.n > 1)} per caption from {path} (step {ck.step}, temperature "
          f"{temperature:g}) to {args.out}")
    if args.gif is not None:
        frames = [stack_images([anim[t] for anim in animations]) for t in range(len(animations[0]))]
        save_gif(frames, args.gif, ms_per_frame=300, hold_last_ms=2000)
        print(f"wrote the drawing, {len(frames)} steps, to {args.gif}")
    return 0


def prompt_tokens(caption, vocab):
    """The caption's tokens, with numerals spelled out ("the digit 3" -> "the digit three") when the
    vocabulary has the word and not the numeral (the authors' captions used numerals, ours use words)."""
    from minicap.data import DIGIT_WORDS
    from minicap.text import tokenize
    return [DIGIT_WORDS[int(tok)] if tok.isdigit() and len(tok) == 1 and tok not in vocab.index
            and DIGIT_WORDS[int(tok)] in vocab.index else tok for tok in tokenize(caption)]


