"""Reading user files safely: check sizes before allocating, turn every failure into one line.

The readers in minicap/data share three helpers, so each rule is written once:

    text = read_text(path, "captions file")          # a UTF-8 text file, at most MAX_TEXT_BYTES
    data = read_json(path, "caption file")           # a JSON document
    feats = read_npy(path, "feature file", mmap=True) # a .npy array, header checked first

Each raises MinicapError("<path>: <what is wrong>; <what to do>") and never lets a traceback
through: a user who gives the wrong file should learn which file and why, not read NumPy's insides.
"""
import json
import math
import stat
import sys
from pathlib import Path

import numpy as np

from minicap.errors import MinicapError

# 1 GiB. The largest text file minicap reads is COCO's Karpathy-split JSON (about 150 MB); a file
# much larger than this is not a caption file, and reading it would only exhaust memory.
MAX_TEXT_BYTES = 1 << 30

NPY_MAGIC = b"\x93NUMPY"   # the first six bytes of every .npy file
ZIP_MAGIC = b"PK\x03\x04"  # .npz archives (and every other zip file) start with these


def describe_size(nbytes):
    """A byte count for people: "1.5 GiB", "12.0 MiB"."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _brief(err, limit=200):
    """An exception as one short line: its type and message (which may quote a whole damaged header)."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _stat(path, what):
    """os.stat(path), with every way it can fail (missing, too long a name, no permission) one line."""
    try:
        return path.stat()
    except FileNotFoundError:
        raise MinicapError(f"{path}: {what} not found; check the path") from None
    except (OSError, ValueError) as err:   # ValueError: a NUL character in the name
        reason = getattr(err, "strerror", None) or _brief(err)
        raise MinicapError(f"{path}: cannot open the {what} ({reason})") from None


def check_file(path, what):
    """Path(path), after checking that it names an existing regular file (not a folder)."""
    path = Path(path)
    mode = _stat(path, what).st_mode
    if stat.S_ISDIR(mode):
        raise MinicapError(f"{path}: {what} should be a file, but this is a folder")
    if not stat.S_ISREG(mode):
        raise MinicapError(f"{path}: {what} should be a regular file (not a device or a pipe)")
    return path


def check_folder(path, what):
    """Path(path), after checking that it names an existing folder."""
    path = Path(path)
    if not stat.S_ISDIR(_stat(path, what).st_mode):
        raise MinicapError(f"{path}: {what} should be a folder, but this is a file")
    return path


def read_text(path, what="text file"):
    """The whole text of a UTF-8 file (a byte-order mark is tolerated), as one str."""
    path = check_file(path, what)
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise MinicapError(f"{path}: the {what} is {describe_size(size)}, more than minicap reads "
                           f"({describe_size(MAX_TEXT_BYTES)}); is this the right file?")
    try:
        raw = path.read_bytes()
    except OSError as err:   # e.g. no permission to read it
        raise MinicapError(f"{path}: cannot read the {what} ({_brief(err)})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise MinicapError(f"{path}: not valid UTF-8 (byte {err.start}, line {line}); save the file "
                           f"as UTF-8, e.g. `iconv -f latin1 -t utf-8`") from None


def read_json(path, what="JSON file", object_hook=None):
    """The parsed JSON document in a UTF-8 file. object_hook: json.loads's, called on every object
    as it is parsed (e.g. to drop fields a reader does not need before the next object is built)."""
    path = Path(path)
    text = read_text(path, what)
    try:
        return json.loads(text, object_hook=object_hook)
    except json.JSONDecodeError as err:
        raise MinicapError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: "
                           f"{err.msg}") from None
    except RecursionError:  # Python's parser recurses once per nested [ or {
        raise MinicapError(f"{path}: JSON nested too deeply to read; the file is damaged or not "
                           f"a {what}") from None
    except ValueError:  # Python refuses to convert integers of more than a few thousand digits
        raise MinicapError(f"{path}: holds a number of more than {sys.get_int_max_str_digits()} "
                           f"digits; the file is damaged or not a {what}") from None


def _read_npy_header(f, path):
    """(shape, dtype, data offset) from an open .npy file, or MinicapError if it is not one."""
    start = f.read(len(NPY_MAGIC))
    if start != NPY_MAGIC:
        hint = ("this is a .npz archive; " if start.startswith(ZIP_MAGIC) else
                "it does not start with the .npy signature; ")
        raise MinicapError(f"{path}: not a .npy array file ({hint}save the array with "
                           f"numpy.save(path, array))")
    f.seek(0)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
        shape, _, dtype = readers[version](f)
    except Exception as err:   # noqa: BLE001 - the header is a Python literal, parsed by ast and
        # tokenize: a damaged one fails with any of ValueError, SyntaxError, TokenError, TypeError...
        raise MinicapError(f"{path}: a damaged .npy header ({_brief(err)}); save the array again "
                           f"with numpy.save") from None
    return shape, dtype, f.tell()


def read_npy(path, what="array file", mmap=False):
    """The array in a .npy file, read only after its header has been checked against the file size.

    A damaged header can claim any shape: NumPy would then try to allocate it (or map it) before
    noticing the file is too short. Here the claimed size must match the bytes the file holds.
    mmap: map the file read-only instead of reading it (rows are read when indexed).
    Object arrays (pickled Python objects) are refused, as np.load(allow_pickle=False) would.
    """
    path = check_file(path, what)
    try:
        with open(path, "rb") as f:
            shape, dtype, offset = _read_npy_header(f, path)
    except OSError as err:   # e.g. no permission to read it
        raise MinicapError(f"{path}: cannot read the {what} ({_brief(err)})") from None
    if dtype.hasobject:
        raise MinicapError(f"{path}: the {what} holds Python objects (pickled data), which minicap "
                           f"does not load; save a numeric array")
    if any(n < 0 for n in shape):
        raise MinicapError(f"{path}: a damaged .npy header (negative size in shape {shape})")
    claimed, held = math.prod(shape) * dtype.itemsize, path.stat().st_size - offset
    if claimed != held:
        raise MinicapError(f"{path}: the header promises shape {shape} of {dtype} ({claimed} bytes) "
                           f"but the file holds {held} bytes of data; it is truncated or damaged")
    try:  # (an empty array cannot be mapped: it is read, which costs nothing)
        return np.load(path, mmap_mode="r" if mmap and claimed else None, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise MinicapError(f"{path}: not a readable .npy array ({_brief(err)})") from None
