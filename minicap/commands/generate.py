"""`minicap generate CHECKPOINT ...`: draw images with a trained generative model.

The checkpoint says what it holds (its kind); GENERATORS maps each kind to the function that draws
with it, `generate(ck, path, args) -> exit status`, given the loaded minicap.checkpoint.Checkpoint:

    DRAW        minicap generate runs/draw/best.npz --n 16 --out samples.png --gif drawing.gif
    alignDRAW   minicap generate CHECKPOINT "the digit 3 is at the top left of the image ." --out x.png

A new generative model adds one line to GENERATORS.
"""
import importlib
from pathlib import Path

from minicap.commands.runs import int_range, nonnegative_float, resolve_checkpoint, seed, writable_file
from minicap.errors import MinicapError

MAX_IMAGES = 4096   # one PNG grid; more would make a picture nobody can look at, and unbounded memory

# checkpoint kind -> "module:function"
GENERATORS = {
    "draw": "minicap.commands.draw:generate",
    "aligndraw": "minicap.commands.aligndraw:generate",
}


def configure(parser):
    parser.add_argument("checkpoint", type=Path, help="a checkpoint (.npz) of a generative model, or its run folder")
    parser.add_argument("captions", nargs="*", metavar="CAPTION",
                        help="what to draw, for caption-conditioned models (alignDRAW); none for DRAW")
    parser.add_argument("--n", type=int_range(1, MAX_IMAGES), default=16,
                        help=f"how many images (per caption, for alignDRAW; default 16, at most {MAX_IMAGES} in all)")
    parser.add_argument("--out", type=writable_file(".png"), required=True, help="PNG file for the grid of samples")
    parser.add_argument("--gif", type=writable_file(".gif"), default=None,
                        help="also write an animated GIF of the canvas being drawn, glimpse by glimpse, "
                             "with the write window outlined")
    parser.add_argument("--strip", type=writable_file(".png"), default=None,
                        help="also write a PNG of the first 4 samples being drawn: a column per glimpse "
                             "(at most 8, evenly spaced), write windows outlined")
    parser.add_argument("--scale", type=int_range(1, 32), default=3, help="pixels per image pixel in the pictures (default 3)")
    parser.add_argument("--seed", type=seed, default=None, help="random seed (default: a fresh one each run)")
    parser.add_argument("--temperature", type=nonnegative_float, default=None,
                        help="spread of the latent samples, z = mu + tau sigma eps: 1 samples the model, 0 draws "
                             "the mean (default: 1 for DRAW, 0.5 for alignDRAW, whose full-spread samples are "
                             "often illegible)")


def run(args):
    from minicap.checkpoint import load_checkpoint

    if args.n * max(len(args.captions), 1) > MAX_IMAGES:
        raise MinicapError(f"{args.n} images for each of {len(args.captions)} captions is more than {MAX_IMAGES} "
                           f"images in one picture; lower --n or give fewer captions")
    path = resolve_checkpoint(args.checkpoint)
    ck = load_checkpoint(path)
    if ck.kind not in GENERATORS:
        raise MinicapError(f"{path} holds a '{ck.kind}' model, which does not generate images; "
                           f"give a checkpoint of one of: {', '.join(GENERATORS)}")
    module, function = GENERATORS[ck.kind].split(":")
    return getattr(importlib.import_module(module), function)(ck, path, args)
