"""Plain-text corpora for the character-level language model.

The default, data/tiny_text.txt (about 200 KB), is two public-domain plays by William
Shakespeare, Macbeth and The Tempest (Project Gutenberg etexts; provenance in data/README.md).
"""
from pathlib import Path

from minicap import DATA_DIR
from minicap.errors import MinicapError

TINY_TEXT_PATH = DATA_DIR / "tiny_text.txt"


def load_text(path=None):
    """The whole text of a UTF-8 file (default: the shipped data/tiny_text.txt), as one str."""
    path = Path(path) if path is not None else TINY_TEXT_PATH
    if not path.is_file():
        raise MinicapError(f"{path}: text file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise MinicapError(f"{path}: not valid UTF-8 (byte {err.start}, line {line}); save the file "
                           f"as UTF-8") from None
    if not text.strip():
        raise MinicapError(f"{path}: the text file is empty")
    return text
