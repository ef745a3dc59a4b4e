"""The `minicap` command line: the table of contents of the commands.

Each command lives in a module of minicap/commands/; this file only lists them. A command
module provides two functions:

    configure(parser)   add the command's arguments to an argparse parser
    run(args) -> int    do the work, return the exit status

Command modules keep their top-level imports light (NumPy at most) and import heavy things
(Numba kernels, matplotlib) inside run(), so `minicap --help` stays instant.
"""
import argparse
import importlib
import os
import signal
import sys
import threading

from minicap.errors import MinicapError

# (command words, module, one-line help). "train X" commands share the `train` word.
COMMANDS = [
    (("gradcheck",), "minicap.commands.gradcheck", "check every layer's backward pass by finite differences"),
    (("bench",), "minicap.commands.bench", "time the hot workloads with the numpy and numba backends"),
    (("train", "charrnn"), "minicap.commands.charrnn", "train min-char-rnn or an LSTM language model on a text"),
    (("sample",), "minicap.commands.charrnn", "generate text from a `train charrnn` checkpoint"),
    (("train", "encoder"), "minicap.commands.encoder", "pretrain the image encoder CNN on MNIST digits, freeze it for captioning"),
    (("train", "draw"), "minicap.commands.draw", "train DRAW (recurrent VAE, filterbank attention) on MNIST digits"),
    (("train", "aligndraw"), "minicap.commands.aligndraw", "train alignDRAW (caption-to-image, attention over words) on captioned MNIST"),
    (("roundtrip",), "minicap.commands.aligndraw", "draw images for captions with alignDRAW, caption them with a captioner, count matches"),
    (("generate",), "minicap.commands.generate", "draw images with a DRAW (or alignDRAW) checkpoint: PNG grid, GIF"),
    (("train", "captioner"), "minicap.commands.captioner", "train a Show, Attend and Tell captioner (baseline, soft or hard attention) on captioned MNIST"),
    (("caption",), "minicap.commands.captioner", "caption images with a captioner checkpoint; optional per-word attention figure"),
    (("evaluate",), "minicap.commands.captioner", "score a captioner on a captioned-MNIST split: BLEU, METEOR, ROUGE-L, CIDEr, accuracy, localisation (a VQA checkpoint: accuracy per question family)"),
    (("train", "vqa"), "minicap.commands.vqa", "train a visual question answering model (question, image, naive, memnet, san) on MNIST scenes"),
    (("ask",), "minicap.commands.vqa", "ask a VQA checkpoint a question about an image; optional attention figure per hop"),
    (("data", "show"), "minicap.commands.data", "draw a grid of captioned-MNIST examples with their captions"),
    (("data", "export"), "minicap.commands.export", "write captioned MNIST (or synthetic noise) as a Karpathy-format dataset: dataset.json, features.npy, images/"),
    (("score",), "minicap.commands.score", "score candidate captions against references: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D"),
    (("assignment", "list"), "minicap.commands.assignment", "list the course assignments made from minicap's own code"),
    (("assignment", "build"), "minicap.commands.assignment", "write the student version of an assignment: solutions cut out, sheet, public tests"),
    (("assignment", "check"), "minicap.commands.assignment", "run the public checks of an assignment folder (students), with a score"),
    (("grade",), "minicap.commands.grade", "grade submissions of an assignment, each in its own limited process: CSV and JSON"),
]


# help lines of the first word of multi-word commands
GROUP_HELP = {"train": "train a model (see subcommands)", "data": "look at or export the datasets (see subcommands)",
              "assignment": "course assignments: list, build the student version, check it (see subcommands)"}


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="minicap",
        description="Attention-based captioning and caption-to-image generation in NumPy.")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}  # first word -> its sub-subparsers, for multi-word commands like "train charrnn"
    for words, module, help_text in COMMANDS:
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=GROUP_HELP.get(words[0], f"{words[0]} (see subcommands)"))
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="WHAT")
                groups[words[0]].required = True
            sub = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        importlib.import_module(module).configure(sub)
    return parser


# One BLAS thread unless the user asks for more. minicap's matrices are small (a batch of 32-64 rows):
# on an idle 2-core machine two OpenBLAS threads trained the soft captioner only 3% faster than one
# (154 s vs 158 s), but while other training jobs ran, two spinning threads made a step ~60x slower
# (2 s instead of 33 ms). Set OPENBLAS_NUM_THREADS (or OMP/MKL_NUM_THREADS) to override.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def _default_to_one_blas_thread():
    """Must run before NumPy is imported (BLAS reads these once, when it loads)."""
    if not any(name in os.environ for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    """Entry point of the `minicap` console script. Returns the exit status."""
    _default_to_one_blas_thread()
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:   # --help, or a usage error argparse has already printed
        return done.code
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 0
    # SIGTERM (a scheduler, `kill`) stops a command like Ctrl-C: the same clean-up and the same message
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt) if on_main_thread else None
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except MinicapError as err:
        print(f"minicap: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`minicap score f.json | head`): stop quietly, as Unix tools do, and point
        # stdout at /dev/null so Python's own flush at exit does not raise the same error again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        runs = sys.modules.get("minicap.commands.runs")
        training = runs is not None and runs.held_folders()
        print("\nminicap: interrupted" + (" (the last checkpoint written is intact)" if training else ""),
              file=sys.stderr)
        return 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
        if "minicap.commands.runs" in sys.modules:   # a training command held its --out folder: give it back
            sys.modules["minicap.commands.runs"].release_all()

if __name__ == "__main__":
    sys.exit(main())
