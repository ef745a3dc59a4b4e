"""`minicap data export`: write a dataset in Karpathy's format, so the real-photo path can be tried anywhere.

    minicap data export mnist-captions --format karpathy --out DIR   # captioned MNIST as a "photo" dataset
    minicap data export synthetic --images 120000 --out DIR           # noise features at COCO scale

Both write what `minicap train captioner --data karpathy` reads:

    DIR/dataset.json   {"images": [{"split", "filename", "sentences": [{"raw", "tokens"}]}, ...]}
    DIR/features.npy   (N, L, D) float32, row i the annotation vectors of images[i]
    DIR/images/*.png   (mnist-captions only) the pictures, for `minicap caption --image-folder`

mnist-captions: the train, val and test splits of captioned MNIST (the same images, seed 0, as
`train captioner --data mnist-captions`), the features from the frozen encoder (the same cache).
A training image gets its one caption; a val or test image gets every true caption (a two-digit
image's caption and its swapped phrasing, as `evaluate` scores the native path), so the two paths
train on and are scored against the same things.

synthetic: standard-normal features (noise, not zeros: a file of zeros is sparse on disk and would
measure nothing; 1,000 noise rows drawn once and written in a new order for each 1,000 images, since
drawing 48 GB of normal numbers takes longer than writing them, and the values do not matter here) and random 10-word captions over a 1,000-word vocabulary, 5 per image, for
measuring time and memory at the size of a real dataset. The features are written in chunks through
a .npy header and then the raw rows, so writing a 48 GB file takes a few hundred MB of memory.

Nothing is written over: a DIR that already holds dataset.json or features.npy is refused.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from minicap.commands.runs import int_range, make_folder, seed
from minicap.errors import MinicapError

DATASETS = ("mnist-captions", "synthetic")


def configure(parser):
    parser.add_argument("dataset", choices=DATASETS,
                        help="mnist-captions: captioned MNIST with its frozen-encoder features; synthetic: "
                             "noise features and random captions of any size (for time and memory)")
    parser.add_argument("--format", choices=("karpathy",), default="karpathy",
                        help="karpathy: dataset.json (Karpathy's split format) + features.npy (the only one)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (must not hold a dataset yet)")
    group = parser.add_argument_group("mnist-captions")
    group.add_argument("--train-size", type=int_range(1, 100_000), default=10_000, help="default 10000")
    group.add_argument("--val-size", type=int_range(1, 100_000), default=1_000, help="default 1000")
    group.add_argument("--test-size", type=int_range(1, 100_000), default=1_000, help="default 1000")
    group.add_argument("--no-images", action="store_true", help="skip DIR/images/*.png")
    group.add_argument("--encoder", type=Path, default=None,
                       help="frozen encoder weights (default: the shipped data/encoder_mnist.npz)")
    group.add_argument("--cache", type=Path, default=None,
                       help="folder for cached annotation vectors (default: $MINICAP_CACHE, else ~/.cache/minicap)")
    group = parser.add_argument_group("synthetic")
    group.add_argument("--images", type=int_range(3, 1_000_000), default=10_000, help="N images (default 10000)")
    group.add_argument("--locations", type=int_range(1, 4096), default=196, help="L (default 196 = 14 x 14)")
    group.add_argument("--dim", type=int_range(1, 8192), default=512, help="D (default 512, VGG conv5_4)")
    group.add_argument("--seed", type=seed, default=0, help="default 0")


def run(args):
    out = make_folder(args.out)
    for name in ("dataset.json", "features.npy"):
        if (out / name).exists():
            raise MinicapError(f"{out / name} already exists; give another --out (nothing was written)")
    if args.dataset == "mnist-captions":
        n = export_mnist_captions(out, args)
    else:
        n = export_synthetic(out, args)
    print(f"wrote {out / 'dataset.json'} and {out / 'features.npy'} ({n:,} images). Train on it:\n"
          f"  minicap train captioner --data karpathy --json {out / 'dataset.json'} "
          f"--features {out / 'features.npy'}")
    return 0


def _sentence(text):
    from minicap.text import tokenize
    return {"raw": text, "tokens": tokenize(text)}


def _write_json(path, images):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"images": images}), encoding="utf-8")
    tmp.replace(path)


def export_mnist_captions(out, args):
    """Write captioned MNIST's train/val/test splits as DIR/dataset.json, features.npy, images/."""
    from PIL import Image

    from minicap.data.features import load_split
    from minicap.models.captioner_eval import references
    from minicap.models.encoder import load_encoder

    encoder = load_encoder(args.encoder)
    images, features = [], []
    folder = out / "images"
    if not args.no_images:
        make_folder(folder, "--out")
    for split, n in (("train", args.train_size), ("val", args.val_size), ("test", args.test_size)):
        print(f"{split}: {n:,} images", file=sys.stderr)
        data, feats = load_split(split, n, 0, encoder, args.cache)
        refs = [[c] for c in data.captions] if split == "train" else references(data)
        for i in range(n):
            name = f"{split}_{i:05d}.png"
            images.append({"split": split, "filename": name, "imgid": len(images),
                           "sentences": [_sentence(c) for c in refs[i]]})
            if not args.no_images:
                Image.fromarray(np.round(data.images[i] * 255).astype(np.uint8), mode="L").save(folder / name)
        features.append(feats)
    with open(out / "features.npy.tmp", "wb") as f:   # renamed when whole: an interrupted export leaves no features.npy
        np.save(f, np.concatenate(features).astype(np.float32))
    (out / "features.npy.tmp").replace(out / "features.npy")
    _write_json(out / "dataset.json", images)
    return len(images)


def export_synthetic(out, args, chunk=1000):
    """Noise features (N, L, D) float32 written chunk by chunk, and random captions."""
    n, L, D = args.images, args.locations, args.dim
    need = n * L * D * 4
    free = shutil.disk_usage(out).free
    if need > free:
        from minicap.data.files import describe_size
        raise MinicapError(f"{out}: {n:,} x {L} x {D} float32 features need {describe_size(need)}, the disk has "
                           f"{describe_size(free)} free; ask for fewer --images")
    rng = np.random.default_rng(args.seed)
    words = [f"w{k}" for k in range(1000)]
    held_out = min(5000, max(1, n // 10))   # val and test, like COCO's Karpathy split (5,000 each)
    splits = np.array(["train"] * (n - 2 * held_out) + ["val"] * held_out + ["test"] * held_out)
    images, ids = [], rng.integers(len(words), size=(n, 5, 10))
    for i in range(n):
        sentences = [" ".join(words[k] for k in row) for row in ids[i]]
        images.append({"split": str(splits[i]), "filename": f"synthetic_{i:06d}.jpg",
                       "sentences": [{"raw": s} for s in sentences]})
    path, tmp = out / "features.npy", out / "features.npy.tmp"
    with open(tmp, "wb") as f:   # a .npy header, then the rows chunk by chunk: never the whole array in memory
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                 "fortran_order": False, "shape": (n, L, D)})
        pool = rng.standard_normal((min(chunk, n), L, D), dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            f.write(pool[rng.permutation(len(pool))[:stop - start]].tobytes())
            print(f"\rfeatures: {stop:,}/{n:,} images", end="", file=sys.stderr)
    print(file=sys.stderr)
    tmp.replace(path)
    _write_json(out / "dataset.json", images)
    return n
