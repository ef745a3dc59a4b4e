"""`minicap train charrnn` and `minicap sample`: train a character (or word) language model, sample from it.

    minicap train charrnn [--text FILE] [--model rnn|lstm] [--level char|word] [--steps N] [--out DIR] [--resume]
    minicap sample CHECKPOINT [--n 200] [--temperature T] [--prime TEXT] [--seed S]

Both commands live in this module, which the CLI imports once per command: configure() tells them apart
by the parser's name ("minicap sample" or "minicap train charrnn") and run() dispatches.

Training writes OUT/last.npz (kind "charrnn"): parameters, optimizer and rng state, the carried
hidden states and stream positions, and a config holding the vocabulary, so `minicap sample` needs
nothing else and `--resume` continues the exact same run.
"""
import hashlib
import math
from pathlib import Path

import numpy as np

from minicap import DATA_DIR
from minicap.commands.runs import (int_range, merge_settings, nonnegative_float, open_run_folder, positive_float,
                                   positive_int, seed)
from minicap.errors import MinicapError

KIND = "charrnn"
DEFAULT_TEXT = DATA_DIR / "tiny_text.txt"

# Per-model defaults. rnn = Karpathy's min-char-rnn (one stream, Adagrad); the LSTM reads 16 streams
# at once (16 chunks from evenly spaced places in the text) and uses Adam.
DEFAULTS = {
    "rnn": {"hidden": 100, "embed": 0, "seq_len": 25, "batch": 1, "optimizer": "adagrad", "lr": 0.1,
            "clip": 5.0, "steps": 50000, "log_every": 5000},
    "lstm": {"hidden": 128, "embed": 64, "seq_len": 25, "batch": 16, "optimizer": "adam", "lr": 2e-3,
             "clip": 5.0, "steps": 5000, "log_every": 500},
}
MAX_SAMPLE = 1_000_000   # `minicap sample --n`: a bound on the memory and time one command may take
# options that define the model and its data: a resumed run must keep them
FIXED_ON_RESUME = ("model", "level", "hidden", "embed", "seq_len", "batch", "optimizer", "lr", "clip", "seed")


def configure(parser):
    if parser.prog.split()[-1] == "sample":
        parser.set_defaults(_charrnn_command="sample")
        return configure_sample(parser)
    parser.set_defaults(_charrnn_command="train")
    parser.add_argument("--text", type=Path, default=None,
                        help=f"UTF-8 text file to learn (default: the shipped {DEFAULT_TEXT.name})")
    parser.add_argument("--model", choices=("rnn", "lstm"), default=None,
                        help="rnn: min-char-rnn (vanilla RNN, Adagrad); lstm: LSTM language model (Adam). Default rnn")
    parser.add_argument("--level", choices=("char", "word"), default=None,
                        help="model characters (default) or words (lower-cased, punctuation dropped)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="train up to this many steps in total (default: rnn 50000, lstm 5000)")
    parser.add_argument("--out", type=Path, default=Path("runs/charrnn"),
                        help="folder for the checkpoint last.npz (default runs/charrnn)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in OUT/last.npz")
    parser.add_argument("--hidden", type=positive_int, default=None, help="hidden units (default: rnn 100, lstm 128)")
    parser.add_argument("--embed", type=positive_int, default=None, help="LSTM embedding size (default 64)")
    parser.add_argument("--seq-len", type=positive_int, default=None, help="truncated-BPTT chunk length (default 25)")
    parser.add_argument("--batch", type=positive_int, default=None,
                        help="streams read in parallel, each from its own place in the text (default: rnn 1, lstm 16)")
    parser.add_argument("--optimizer", choices=("sgd", "momentum", "adagrad", "rmsprop", "adam"), default=None,
                        help="default: rnn adagrad, lstm adam")
    parser.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: adagrad 0.1, adam 0.002)")
    parser.add_argument("--clip", type=positive_float, default=None, help="clip every gradient entry to [-CLIP, CLIP] (default 5)")
    parser.add_argument("--log-every", type=positive_int, default=None, help="print the loss and a sample every N steps")
    parser.add_argument("--sample-len", type=positive_int, default=200, help="length of the samples printed while training")
    parser.add_argument("--seed", type=seed, default=None, help="random seed of the initialisation (default 0)")


# --- text and vocabulary ------------------------------------------------------------------------
def read_text(path):
    """The whole file as a str; MinicapError if it is missing, not a file, not UTF-8, or empty."""
    path = Path(path)
    if not path.exists():
        hint = " (the default text ships in data/; reinstall with `pip install -e .` from the repository)" \
            if path == DEFAULT_TEXT else ""
        raise MinicapError(f"text file {path} does not exist{hint}; give a UTF-8 text file with --text FILE")
    if not path.is_file():
        raise MinicapError(f"text file {path} is not a file; give a UTF-8 text file with --text FILE")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise MinicapError(f"text file {path} is not valid UTF-8 (byte {err.start}: {err.reason}); "
                           "convert it, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`") from None
    if not text.strip():
        raise MinicapError(f"text file {path} is empty; give a text to learn from")
    return text


def split_tokens(text, level):
    """Characters, or lower-cased words (minicap.text.tokenize: punctuation dropped)."""
    if level == "char":
        return list(text)
    from minicap.text import tokenize
    return tokenize(text)


def join_tokens(tokens, level):
    return "".join(tokens) if level == "char" else " ".join(tokens)


def encode(tokens, vocab, what="text", unit="token"):
    """Token strings -> ids; MinicapError listing every token that is not in the vocabulary."""
    index = {tok: i for i, tok in enumerate(vocab)}
    unknown = sorted({tok for tok in tokens if tok not in index})
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:30]) + (" ..." if len(unknown) > 30 else "")
        raise MinicapError(f"the {what} has {len(unknown)} {unit}(s) the model has never seen: {shown}; "
                           f"use only {unit}s that occur in the training text")
    return np.array([index[tok] for tok in tokens], dtype=np.int64)


# --- training -----------------------------------------------------------------------------------
def _settings(args, previous=None):
    """Resolve the options: the defaults, then the resumed run's settings, then the command line."""
    given = {"model": args.model, "level": args.level, "hidden": args.hidden, "embed": args.embed,
             "seq_len": args.seq_len, "batch": args.batch, "optimizer": args.optimizer, "lr": args.lr,
             "clip": args.clip, "steps": args.steps, "log_every": args.log_every, "seed": args.seed}
    model = args.model or (previous or {}).get("model", "rnn")
    out = merge_settings(given, previous, dict(DEFAULTS[model], model=model, level="char", seed=0), FIXED_ON_RESUME, args.out)
    if out["optimizer"] != DEFAULTS[model]["optimizer"] and args.lr is None and not previous:
        out["lr"] = {"sgd": 0.1, "momentum": 0.05, "adagrad": 0.1, "rmsprop": 2e-3, "adam": 2e-3}[out["optimizer"]]
    return out


def run(args):
    if args._charrnn_command == "sample":
        return run_sample(args)
    return run_train(args)


def run_train(args):
    from minicap.models import charrnn
    from minicap.optim import make_optimizer
    from minicap.train import Run, resume_run, train

    folder = open_run_folder(args.out, KIND, args.resume)
    previous, last = folder.previous, folder.last
    cfg = _settings(args, previous)

    text_path = args.text or (Path(previous["text"]) if previous else DEFAULT_TEXT)
    text = read_text(text_path)
    tokens = split_tokens(text, cfg["level"])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if previous:
        if previous["text_sha256"] != digest:
            raise MinicapError(f"{text_path} is not the text the run in {args.out} was trained on "
                               f"({previous['text']}); resume with the same --text")
        vocab = previous["vocab"]
    else:
        vocab = sorted(set(tokens))
    if len(tokens) < cfg["seq_len"] + 1:
        raise MinicapError(f"text file {text_path} has {len(tokens)} {cfg['level']}s; it needs at least "
                           f"--seq-len + 1 = {cfg['seq_len'] + 1}")
    data = encode(tokens, vocab)
    model = charrnn.MODELS[cfg["model"]]

    rng = np.random.default_rng(cfg["seed"])
    kwargs = {"hidden_size": cfg["hidden"]} if cfg["model"] == "rnn" else \
        {"hidden_size": cfg["hidden"], "embed_size": cfg["embed"]}
    fresh = model.init(len(vocab), rng, dtype=np.float32, **kwargs)
    if previous:
        run_ = resume_run(last, KIND, fresh)
        print(f"resuming {last} at step {run_.step}")
    else:
        config = dict(cfg, text=str(text_path), text_sha256=digest, vocab=vocab)
        optimizer = make_optimizer(cfg["optimizer"], lr=cfg["lr"])
        run_ = Run(kind=KIND, config=config, params=fresh, optimizer=optimizer, rng=rng)
        print(f"{cfg['model']} on {text_path}: {len(tokens)} {cfg['level']}s, vocabulary {len(vocab)}, "
              f"{sum(p.size for p in fresh.values())} parameters")
    run_.config["steps"] = cfg["steps"]
    if run_.step >= cfg["steps"]:
        print(f"the run is already at step {run_.step} (target {cfg['steps']}); raise --steps to train more")
        return 0

    unit = cfg["level"]
    prime = [vocab.index("\n")] if "\n" in vocab else [int(data[0])]

    def on_log(run, smooth_loss):
        sample_rng = np.random.default_rng(run.step)  # not run.rng: sampling must not change the training run
        sampled = charrnn.generate(cfg["model"], run.params, prime, args.sample_len, 1.0, sample_rng)
        bits = smooth_loss / math.log(2)
        return (f"step {run.step}: loss {smooth_loss:.3f} nats/{unit} ({bits:.2f} bits)\n"
                f"----\n{join_tokens([vocab[i] for i in sampled], unit)}\n----")

    train_step = charrnn.make_train_step(cfg["model"], data, cfg["seq_len"], cfg["batch"])
    train(run_, train_step, cfg["steps"], args.out, clip=("value", cfg["clip"]), log_every=cfg["log_every"],
          checkpoint_every=max(cfg["log_every"], 1000), on_log=on_log)
    print(f"sample from it: minicap sample {last}")
    return 0


# --- sampling -----------------------------------------------------------------------------------
def configure_sample(parser):
    parser.add_argument("checkpoint", type=Path, help="a checkpoint of `minicap train charrnn` (or its --out folder)")
    parser.add_argument("--n", type=int_range(1, MAX_SAMPLE), default=200,
                        help=f"how many characters (or words) to generate (default 200, at most {MAX_SAMPLE:,})")
    parser.add_argument("--temperature", type=nonnegative_float, default=1.0,
                        help="1 samples the model; lower is more conservative; 0 is greedy (default 1)")
    parser.add_argument("--prime", default=None,
                        help="text the model reads first and continues (default: a newline, if the text had one)")
    parser.add_argument("--seed", type=seed, default=None, help="random seed (default: a fresh one each run)")


def run_sample(args):
    from minicap.checkpoint import check_param_shapes, load_checkpoint
    from minicap.models import charrnn

    path = args.checkpoint
    if path.is_dir() and (path / "last.npz").exists():
        path = path / "last.npz"
    ck = load_checkpoint(path, kind=KIND)
    cfg = ck.config
    model, vocab, level = cfg["model"], cfg["vocab"], cfg["level"]
    kwargs = {"hidden_size": cfg["hidden"]} if model == "rnn" else \
        {"hidden_size": cfg["hidden"], "embed_size": cfg["embed"]}
    check_param_shapes(path, ck.params, charrnn.MODELS[model].init(len(vocab), np.random.default_rng(0), **kwargs))

    if args.prime is None:
        prime_text = "\n" if "\n" in vocab else vocab[0]
    elif args.prime == "":
        raise MinicapError("--prime is empty; give at least one character, or leave the option out")
    else:
        prime_text = args.prime
    prime_tokens = split_tokens(prime_text, level)
    if not prime_tokens:
        raise MinicapError(f"--prime {args.prime!r} has no words the model could read")
    prime = encode(prime_tokens, vocab, what="prime text", unit="character" if level == "char" else "word").tolist()
    sampled = charrnn.generate(model, ck.params, prime, args.n, args.temperature,
                               np.random.default_rng(args.seed))
    sep = "" if level == "char" else " "
    shown_prime = join_tokens(prime_tokens, level) if args.prime is not None else ""
    print(shown_prime + sep * bool(shown_prime) + join_tokens([vocab[i] for i in sampled], level))
    return 0
