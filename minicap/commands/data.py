"""`minicap data show mnist-captions`: draw a grid of captioned-MNIST examples to a PNG.

Each panel shows a 60x60 canvas with its caption above it, so a person can check captions
against pictures. With --boxes, each digit's ink box is outlined (X, the first digit named:
red; Y, the second: cyan) to check the structured truth as well.
"""
import textwrap

DATASETS = ("mnist-captions",)


def configure(parser):
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to show")
    parser.add_argument("--n", type=int, default=16, help="number of examples (default 16)")
    parser.add_argument("--out", default="mnist_captions.png", help="PNG file to write (default mnist_captions.png)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test", "novel"),
                        help="which split (default train; novel = held-out digit/position combinations)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--boxes", action="store_true", help="outline each digit's ink box (X red, Y cyan)")


def run(args):
    from matplotlib.figure import Figure   # no pyplot: draws off screen, leaves the backend alone
    from matplotlib.patches import Rectangle

    from minicap.data.captioned_mnist import make_captioned_mnist
    from minicap.errors import MinicapError

    if not 1 <= args.n <= 400:
        raise MinicapError(f"--n must be between 1 and 400, got {args.n}")
    data = make_captioned_mnist(args.split, n=args.n, seed=args.seed)
    cols = min(4, args.n)
    rows = -(-args.n // cols)
    fig = Figure(figsize=(2.7 * cols, 3.1 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= args.n:
            continue
        ax.imshow(data.images[k], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        caption = data.captions[k]  # two balanced lines
        ax.set_title("\n".join(textwrap.wrap(caption, len(caption) // 2 + 6)), fontsize=8)
        if args.boxes:
            for slot, color in ((0, "red"), (1, "cyan")):
                r, c, h, w = data.ink_boxes[k, slot]
                if h > 0:
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, edgecolor=color, lw=1))
    fig.suptitle(f"captioned MNIST, split {args.split}, seed {args.seed}", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=100)
    except OSError as err:
        raise MinicapError(f"{args.out}: cannot write the picture ({err.strerror})") from None
    for k in range(args.n):
        print(f"{k:3d}  {data.captions[k]}")
    print(f"wrote {args.out}")
    return 0
