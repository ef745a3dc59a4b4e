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
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minicap.errors import MinicapError
from minicap.text import tokenize

KARPATHY_SPLITS = ("train", "val", "test", "restval")


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


def _read_text(path, what):
    path = Path(path)
    if not path.exists():
        raise MinicapError(f"{path}: {what} not found; check the path")
    if not path.is_file():
        raise MinicapError(f"{path}: {what} should be a file, but this is a folder")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise MinicapError(f"{path}: not valid UTF-8 (byte {err.start}, line {line}); save the file "
                           f"as UTF-8, e.g. `iconv -f latin1 -t utf-8`") from None


def _check_caption(text, path, where):
    if not isinstance(text, str):
        raise MinicapError(f"{path}: {where}: a caption must be a string, found {type(text).__name__}")
    if not tokenize(text):
        raise MinicapError(f"{path}: {where}: empty caption {text!r}; remove it or give it words")
    return text


def load_karpathy_json(json_path, features_path=None, split="train", include_restval=True):
    """Load one split of a Karpathy-split caption file, with its annotation features.

    json_path: dataset_flickr8k.json, dataset_flickr30k.json or dataset_coco.json.
    features_path: .npy of shape (N, L, D), N = number of images in the whole JSON, or None.
    split: "train", "val", "test" (or "restval"). include_restval: "train" also takes "restval".
    Returns: CaptionDataset with features (n_split, L, D) float32 (or None).
    """
    json_path = Path(json_path)
    try:
        data = json.loads(_read_text(json_path, "caption file"))
    except json.JSONDecodeError as err:
        raise MinicapError(f"{json_path}: malformed JSON at line {err.lineno}, column {err.colno}: "
                           f"{err.msg}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise MinicapError(f"{json_path}: expected a JSON object with an \"images\" list "
                           f"(the Karpathy-split format, e.g. dataset_flickr8k.json)")
    if split not in KARPATHY_SPLITS:
        raise MinicapError(f"unknown split {split!r}: choose one of {', '.join(KARPATHY_SPLITS)}")
    wanted = {split, "restval"} if (split == "train" and include_restval) else {split}

    rows, names, references = [], [], []
    for i, image in enumerate(images):
        if not isinstance(image, dict) or not {"split", "filename", "sentences"} <= image.keys():
            raise MinicapError(f"{json_path}: images[{i}] needs \"split\", \"filename\" and "
                               f"\"sentences\" fields")
        if image["split"] not in KARPATHY_SPLITS:
            raise MinicapError(f"{json_path}: images[{i}] ({image['filename']}) has unknown split "
                               f"{image['split']!r}; expected one of {', '.join(KARPATHY_SPLITS)}")
        if image["split"] not in wanted:
            continue
        sentences = image["sentences"]
        if not isinstance(sentences, list) or not sentences:
            raise MinicapError(f"{json_path}: images[{i}] ({image['filename']}) has no sentences")
        refs = []
        for j, sentence in enumerate(sentences):
            where = f"images[{i}] ({image['filename']}) sentence {j}"
            if isinstance(sentence, dict) and "raw" in sentence:
                refs.append(_check_caption(sentence["raw"], json_path, where))
            elif isinstance(sentence, dict) and isinstance(sentence.get("tokens"), list):
                refs.append(_check_caption(" ".join(map(str, sentence["tokens"])), json_path, where))
            else:
                raise MinicapError(f"{json_path}: {where} needs a \"raw\" string or a \"tokens\" list")
        rows.append(i)
        names.append(str(image["filename"]))
        references.append(refs)
    if not rows:
        raise MinicapError(f"{json_path}: no images in split {split!r}")

    features = None
    if features_path is not None:
        features_path = Path(features_path)
        if not features_path.is_file():
            raise MinicapError(f"{features_path}: feature file not found; check the path")
        try:
            all_features = np.load(features_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise MinicapError(f"{features_path}: not a readable .npy array ({err})") from None
        if not isinstance(all_features, np.ndarray) or all_features.ndim != 3:
            raise MinicapError(f"{features_path}: expected an array of shape (N, L, D), found "
                               f"shape {getattr(all_features, 'shape', '?')}")
        if all_features.shape[0] != len(images):
            raise MinicapError(f"{features_path}: holds features for {all_features.shape[0]} images "
                               f"but {json_path} lists {len(images)}; row i must belong to the "
                               f"i-th image of the JSON file")
        features = np.asarray(all_features[np.array(rows)], dtype=np.float32)
    return CaptionDataset(names, references, features=features, source=str(json_path))


def read_captions_file(path):
    """Read a tab-separated captions file: one "filename[#k]<TAB>caption" per line.

    Returns: dict filename -> list of captions, in order of first mention.
    """
    text = _read_text(path, "captions file")
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
        captions.setdefault(name, []).append(_check_caption(caption.strip(), path, f"line {line_no}"))
    if not captions:
        raise MinicapError(f"{path}: no captions in the file")
    return captions


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
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise MinicapError(f"{folder}: image folder not found")
    captions_file = Path(captions_file) if captions_file is not None else folder / "captions.txt"
    by_name = read_captions_file(captions_file)
    if mode is not None and mode not in ("L", "RGB"):
        raise MinicapError(f"image mode must be \"L\" or \"RGB\", got {mode!r}")

    pixels = []
    for name in by_name:
        path = folder / name
        if not path.is_file():
            raise MinicapError(f"{path}: image named in {captions_file} not found")
        try:
            with Image.open(path) as img:
                img.load()
        except (UnidentifiedImageError, OSError) as err:
            raise MinicapError(f"{path}: not a readable image ({err})") from None
        if mode is None:
            if img.mode not in ("L", "RGB"):
                raise MinicapError(f"{path}: image mode {img.mode!r}; minicap reads \"L\" (grey) or "
                                   f"\"RGB\" images: pass mode=\"L\" or \"RGB\" with convert=True")
            mode = img.mode
        if img.mode != mode:
            if not convert:
                raise MinicapError(f"{path}: image mode {img.mode!r}, expected {mode!r} like the "
                                   f"others; convert the file or pass convert=True")
            img = img.convert(mode)
        if size is None:
            size = (img.height, img.width)
        if (img.height, img.width) != tuple(size):
            if not resize:
                raise MinicapError(f"{path}: image is {img.height}x{img.width} (HxW), expected "
                                   f"{size[0]}x{size[1]}; resize the file or pass resize=True")
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        pixels.append(np.asarray(img, dtype=np.uint8))
    images = np.stack(pixels).astype(np.float32) / np.float32(255.0)
    return CaptionDataset(list(by_name), list(by_name.values()), images=images, source=str(captions_file))
