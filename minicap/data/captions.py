"""Loaders for real caption datasets, from files the user gives (nothing is downloaded).

Two layouts are read:

1. Karpathy-split JSON (dataset_flickr8k.json, dataset_flickr30k.json, dataset_coco.json) with
   precomputed annotation features:

       {"images": [{"split": "train" | "val" | "test" | "restval",
                    "filename": "1000268201_693b08cb0e.jpg",
                    "sentences": [{"raw": "A child in a pink dress ...", "tokens": [...]}, ...]},
                   ...]}

   features.npy: float array (N, L, D), row i holding the annotation vectors of the i-th image
   of the JSON file (all splits, in file order), e.g. L = 196, D = 512 for VGG conv5_4.
   The "raw" caption is used (tokenized later by minicap.text.tokenize, like the metrics);
   "tokens" joined by spaces stands in where "raw" is absent. "restval" images (COCO) count as
   training images unless include_restval=False.

2. A folder of images with a captions file, one caption per line, tab-separated:

       1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress is climbing up stairs .
       1000268201_693b08cb0e.jpg#1<TAB>A girl going into a wooden building .

   (Flickr8k's Flickr8k.token.txt format; the "#k" suffix is optional.) Images are read with
   Pillow, in order of first mention, and must all have the same size and mode.

Every problem with the files raises MinicapError naming the file and what is wrong.
"""
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicap.data.files import check_file, check_folder, describe_size, read_json, read_npy, read_text
from minicap.errors import MinicapError
from minicap.text import tokenize

KARPATHY_SPLITS = ("train", "val", "test", "restval")

# 50 megapixels (about 7000x7000). Caption datasets hold photos of well under 1 megapixel (COCO's
# are about 640x480); a larger image is refused before its pixels are decoded (see _open_image).
MAX_IMAGE_PIXELS = 50_000_000
_IMAGE_LIMIT = f"minicap reads images of at most {MAX_IMAGE_PIXELS // 10**6} megapixels"

# 8 GiB: the float32 stack of a whole folder is checked against this before it is allocated.
MAX_FOLDER_BYTES = 8 << 30


@dataclass
class CaptionDataset:
    """One split of a caption dataset.

    names:      N image file names.
    references: N lists of caption strings (every reference caption of each image).
    features:   (N, L, D) float32 annotation vectors, or None.
    images:     (N, H, W) or (N, H, W, 3) float32 pixels in [0, 1], or None.
    source:     the file the captions came from.
    """
    names: list
    references: list
    features: np.ndarray = None
    images: np.ndarray = None
    source: str = ""

    def __len__(self):
        return len(self.names)

    def pairs(self):
        """One row per (image, caption): image_index (M,) int64 and the M caption strings."""
        index = np.array([i for i, refs in enumerate(self.references) for _ in refs], dtype=np.int64)
        captions = [c for refs in self.references for c in refs]
        return index, captions


def _short(value, limit=60):
    """repr(value), cut to `limit` characters: a damaged file can hold a megabyte-long "name"."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_caption(text, path, where):
    if not isinstance(text, str):
        raise MinicapError(f"{path}: {where}: a caption must be a string, found {type(text).__name__}")
    if not tokenize(text):
        raise MinicapError(f"{path}: {where}: empty caption {_short(text)}; remove it or give it words")
    return text


def _karpathy_references(image, i, json_path):
    """The reference captions of images[i] of a Karpathy-split file (a list of strings)."""
    sentences = image["sentences"]
    if not isinstance(sentences, list) or not sentences:
        raise MinicapError(f"{json_path}: images[{i}] ({image['filename']}) has no sentences")
    refs = []
    for j, sentence in enumerate(sentences):
        where = f"images[{i}] ({image['filename']}) sentence {j}"
        tokens = sentence.get("tokens") if isinstance(sentence, dict) else None
        if isinstance(sentence, dict) and "raw" in sentence:
            refs.append(_check_caption(sentence["raw"], json_path, where))
        elif isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
            refs.append(_check_caption(" ".join(tokens), json_path, where))
        else:
            raise MinicapError(f"{json_path}: {where} needs a \"raw\" string or a \"tokens\" list "
                               f"of strings")
    return refs


def _check_karpathy_image(image, i, json_path):
    """Refuse an entry of the "images" list that lacks the fields or has the wrong types."""
    if not isinstance(image, dict) or not {"split", "filename", "sentences"} <= image.keys():
        raise MinicapError(f"{json_path}: images[{i}] needs \"split\", \"filename\" and "
                           f"\"sentences\" fields")
    if not isinstance(image["filename"], str) or not image["filename"]:
        raise MinicapError(f"{json_path}: images[{i}]: \"filename\" must be a non-empty string, "
                           f"found {_short(image['filename'])}")
    if image["split"] not in KARPATHY_SPLITS:  # (a list or dict is never equal to a split name)
        raise MinicapError(f"{json_path}: images[{i}] ({image['filename']}) has unknown split "
                           f"{_short(image['split'])}; expected one of {', '.join(KARPATHY_SPLITS)}")


def _load_features(features_path, rows, n_images, json_path):
    """Rows `rows` of a features .npy (n_images, L, D), as float32; every problem is one line."""
    all_features = read_npy(features_path, "feature file", mmap=True)   # header checked first
    if all_features.ndim != 3:
        raise MinicapError(f"{features_path}: expected an array of shape (N, L, D), found "
                           f"shape {all_features.shape}")
    if all_features.dtype.kind not in "fiu":
        raise MinicapError(f"{features_path}: expected numbers (float32), found dtype "
                           f"{all_features.dtype}; save the features as a float array")
    if all_features.shape[0] != n_images:
        raise MinicapError(f"{features_path}: holds features for {all_features.shape[0]} images "
                           f"but {json_path} lists {n_images}; row i must belong to the "
                           f"i-th image of the JSON file")
    features = np.asarray(all_features[np.array(rows)], dtype=np.float32)
    finite = np.isfinite(features).reshape(len(rows), -1).all(axis=1)
    if not finite.all():
        bad = rows[int(np.argmin(finite))]
        raise MinicapError(f"{features_path}: row {bad} holds NaN or infinite values (or values "
                           f"too large for float32); recompute the features")
    return features


def load_karpathy_json(json_path, features_path=None, split="train", include_restval=True):
    """Load one split of a Karpathy-split caption file, with its annotation features.

    json_path: dataset_flickr8k.json, dataset_flickr30k.json or dataset_coco.json.
    features_path: .npy of shape (N, L, D), N = number of images in the whole JSON, or None.
    split: "train", "val", "test" (or "restval"). include_restval: "train" also takes "restval".
    Returns: CaptionDataset with features (n_split, L, D) float32 (or None).
    """
    json_path = Path(json_path)
    data = read_json(json_path, "caption file")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise MinicapError(f"{json_path}: expected a JSON object with an \"images\" list "
                           f"(the Karpathy-split format, e.g. dataset_flickr8k.json)")
    if split not in KARPATHY_SPLITS:
        raise MinicapError(f"unknown split {split!r}: choose one of {', '.join(KARPATHY_SPLITS)}")
    wanted = {split, "restval"} if (split == "train" and include_restval) else {split}

    rows, names, references = [], [], []
    for i, image in enumerate(images):
        _check_karpathy_image(image, i, json_path)
        if image["split"] in wanted:
            references.append(_karpathy_references(image, i, json_path))
            names.append(image["filename"])
            rows.append(i)
    if not rows:
        raise MinicapError(f"{json_path}: no images in split {split!r}")
    features = None
    if features_path is not None:
        features = _load_features(Path(features_path), rows, len(images), json_path)
    return CaptionDataset(names, references, features=features, source=str(json_path))


def _check_image_name(name, path, line_no):
    """Refuse an image name that would leave the image folder: an absolute path or a ".." part.

    A captions file decides which files are opened; one from somewhere else must not make minicap
    read /etc/passwd or ../../secret.png. Sub-folders (e.g. "train/x.png") are fine.
    """
    parts = name.replace("\\", "/").split("/")
    absolute = name.startswith(("/", "\\")) or (name[:1].isalpha() and name[1:2] == ":")   # /x \\x C:x
    if absolute or ".." in parts:
        raise MinicapError(f"{path}: line {line_no}: image name {_short(name)} points outside the "
                           f"image folder; name images relative to the folder, without \"..\"")


def read_captions_file(path):
    """Read a tab-separated captions file: one "filename[#k]<TAB>caption" per line.

    File names are relative to the image folder: absolute paths and ".." are refused.
    Returns: dict filename -> list of captions, in order of first mention.
    """
    text = read_text(path, "captions file")
    captions = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise MinicapError(f"{path}: line {line_no}: expected \"filename<TAB>caption\", "
                               f"found no tab in {line[:60]!r}")
        name, caption = line.split("\t", 1)
        name = name.strip().split("#", 1)[0]
        if not name:
            raise MinicapError(f"{path}: line {line_no}: the file name before the tab is empty")
        _check_image_name(name, path, line_no)
        captions.setdefault(name, []).append(_check_caption(caption.strip(), path, f"line {line_no}"))
    if not captions:
        raise MinicapError(f"{path}: no captions in the file")
    return captions


def _open_image(path):
    """Open and decode one image file with Pillow, refusing images too large to hold in memory.

    Image.open only reads the header, so the size is known before any pixel is decoded: a 1 KB
    PNG can claim 20000x20000 pixels (a "decompression bomb") and take gigabytes once loaded.
    Pillow's own guard (DecompressionBombWarning, then Error above twice its limit) is turned into
    an error too, so nothing is decoded above MAX_IMAGE_PIXELS.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise MinicapError(f"{path}: the image is too large ({img.width}x{img.height} "
                                       f"pixels; {_IMAGE_LIMIT}); shrink the file")
                img.load()
                return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):   # raised by Image.open
        raise MinicapError(f"{path}: the image is too large (Pillow calls it a decompression "
                           f"bomb; {_IMAGE_LIMIT}); shrink the file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as err:
        # damaged files surface from Pillow's decoders as any of these
        raise MinicapError(f"{path}: not a readable image ({err})") from None


def _conform(img, path, mode, size, resize, convert):
    """img as a uint8 array of `mode` and `size` (H, W), converted / resized only when allowed."""
    from PIL import Image

    if img.mode != mode:
        if not convert:
            raise MinicapError(f"{path}: image mode {img.mode!r}, expected {mode!r} like the "
                               f"others; convert the file or pass convert=True")
        try:
            img = img.convert(mode)
        except ValueError as err:
            raise MinicapError(f"{path}: cannot convert image mode {img.mode!r} to {mode!r} ({err})") from None
    if (img.height, img.width) != tuple(size):
        if not resize:
            raise MinicapError(f"{path}: image is {img.height}x{img.width} (HxW), expected "
                               f"{size[0]}x{size[1]}; resize the file or pass resize=True")
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _is_height_width(size):
    """True for a (height, width) pair of positive whole numbers."""
    return (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(n, (int, np.integer)) and n > 0 for n in size))


def _allocate_images(n, shape, captions_file):
    """The (n, *shape) float32 array for a folder's images, after checking it fits MAX_FOLDER_BYTES."""
    nbytes = n * math.prod(shape) * 4
    if nbytes > MAX_FOLDER_BYTES:
        raise MinicapError(f"{captions_file}: {n} images of shape {shape} need {describe_size(nbytes)} "
                           f"as float32, more than minicap holds ({describe_size(MAX_FOLDER_BYTES)}); "
                           f"pass a smaller size=(H, W) with resize=True, or caption fewer images")
    return np.empty((n,) + tuple(shape), np.float32)


def load_image_folder(folder, captions_file=None, size=None, mode=None, resize=False, convert=False):
    """Load a folder of images and their captions.

    folder: directory holding the images. captions_file: tab-separated captions (default
        folder/captions.txt), see read_captions_file.
    size: (height, width) every image must have (default: the first image's).
    mode: Pillow mode, "L" (grey) or "RGB" (default: the first image's).
    resize / convert: resize (bilinear) or convert images that differ, instead of an error.
    Returns: CaptionDataset with images (N, H, W) for "L" or (N, H, W, 3) for "RGB",
    float32 in [0, 1].
    """
    folder = check_folder(folder, "image folder")
    captions_file = Path(captions_file) if captions_file is not None else folder / "captions.txt"
    by_name = read_captions_file(captions_file)
    if mode is not None and mode not in ("L", "RGB"):
        raise MinicapError(f"image mode must be \"L\" or \"RGB\", got {mode!r}")
    if size is not None and not _is_height_width(size):
        raise MinicapError(f"size must be (height, width) in whole pixels, got {size!r}")

    images = None
    for i, name in enumerate(by_name):
        path = check_file(folder / name, f"image named in {captions_file}")
        img = _open_image(path)
        if mode is None:
            if img.mode not in ("L", "RGB"):
                raise MinicapError(f"{path}: image mode {img.mode!r}; minicap reads \"L\" (grey) or "
                                   f"\"RGB\" images: pass mode=\"L\" or \"RGB\" with convert=True")
            mode = img.mode
        size = size if size is not None else (img.height, img.width)
        pixels = _conform(img, path, mode, size, resize, convert)
        if images is None:   # the first image fixes the shape: allocate all N at once
            images = _allocate_images(len(by_name), pixels.shape, captions_file)
        images[i] = pixels.astype(np.float32) / np.float32(255.0)
    return CaptionDataset(list(by_name), list(by_name.values()), images=images, source=str(captions_file))
