"""Plain-text corpora for the character-level language model.

The default, data/tiny_text.txt (about 200 KB), is two public-domain plays by William
Shakespeare, Macbeth and The Tempest (Project Gutenberg etexts; provenance in data/README.md).
"""
from pathlib import Path

from minicap import DATA_DIR
from minicap.data.files import read_text
from minicap.errors import MinicapError

TINY_TEXT_PATH = DATA_DIR / "tiny_text.txt"


def load_text(path=None):
    """The whole text of a UTF-8 file (default: the shipped data/tiny_text.txt), as one str."""
    path = Path(path) if path is not None else TINY_TEXT_PATH
    text = read_text(path, "text file")   # size and UTF-8 checked, one-line errors
    if not text.strip():
        raise MinicapError(f"{path}: the text file is empty")
    return text
