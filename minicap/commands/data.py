"""`minicap data show mnist-captions`: draw a grid of captioned-MNIST examples to a PNG.

Each panel shows a 60x60 canvas with its caption above it, so a person can check captions
against pictures. With --boxes, each digit's ink box is outlined (X, the first digit named:
red; Y, the second: cyan) to check the structured truth as well. The figure is drawn by
minicap.viz.captioned_examples_figure.
"""
from pathlib import Path

from minicap.commands.runs import int_range, seed, writable_file

DATASETS = ("mnist-captions", "mnist-vqa")   # mnist-vqa: scenes with a question and its answer (issue 17)


def configure(parser):
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to show")
    parser.add_argument("--n", type=int_range(1, 400), default=16, help="number of examples (default 16)")
    parser.add_argument("--out", type=writable_file(".png"), default=None,
                        help="PNG file to write (default runs/mnist_captions.png, or runs/mnist_vqa.png)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test", "novel"),
                        help="which split (default train; novel = held-out digit/position combinations)")
    parser.add_argument("--seed", type=seed, default=0, help="generator seed (default 0)")
    parser.add_argument("--boxes", action="store_true", help="outline each digit's ink box (X red, Y cyan)")


def run(args):
    from minicap.data.captioned_mnist import make_captioned_mnist
    from minicap.errors import MinicapError
    from minicap.viz import captioned_examples_figure

    if args.out is None:
        args.out = Path("runs/mnist_vqa.png" if args.dataset == "mnist-vqa" else "runs/mnist_captions.png")
    if args.dataset == "mnist-vqa":
        return show_vqa(args)
    data = make_captioned_mnist(args.split, n=args.n, seed=args.seed)
    try:
        captioned_examples_figure(data.images, data.captions, data.ink_boxes if args.boxes else None, args.out,
                                  title=f"captioned MNIST, split {args.split}, seed {args.seed}")
    except OSError as err:
        raise MinicapError(f"{args.out}: cannot write the picture ({err.strerror})") from None
    for k in range(args.n):
        print(f"{k:3d}  {data.captions[k]}")
    print(f"wrote {args.out}")
    return 0


def show_vqa(args):
    """`minicap data show mnist-vqa`: scenes with a question and its answer each
    (minicap.data.vqa_scenes; the figure is minicap.viz.captioned_examples_figure)."""
    from minicap.data.vqa_scenes import FAMILIES, make_vqa_scenes
    from minicap.errors import MinicapError
    from minicap.viz import captioned_examples_figure

    data = make_vqa_scenes(args.split, n=args.n, seed=args.seed)
    lines = [f"{q} -> {a}" for q, a in zip(data.questions, data.answer_words())]
    try:
        captioned_examples_figure(data.images, lines, None, args.out,
                                  title=f"MNIST scenes with questions (mnist-vqa), split {args.split}, seed {args.seed}")
    except OSError as err:
        raise MinicapError(f"{args.out}: cannot write the picture ({err.strerror})") from None
    for k in range(args.n):
        print(f"{k:3d}  {FAMILIES[data.family[k]]:12s} {lines[k]}")
    print(f"wrote {args.out}")
    return 0
