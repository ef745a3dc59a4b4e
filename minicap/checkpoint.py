"""Checkpoints: one `.npz` holding everything needed to resume a run exactly.

Layout of the archive (all plain arrays, so it loads with allow_pickle=False):

    param/<name>     model parameters
    optim/<key>      optimizer state (see Optimizer.state_dict)
    extra/<key>      anything else the model needs (a vocabulary, a moving-average baseline...)
    meta             a JSON string: format version, kind of model, config, step, optimizer name,
                     and the rng's bit-generator state

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
then renamed over the target. A crash or Ctrl-C mid-write leaves the previous checkpoint intact (and,
after a kill -9, a `<name>.npz.<random>.tmp` file that remove_orphan_temp_files clears away).

Reading trusts nothing in the file: every member's .npy header is read and its size checked against
what the archive really holds before any array is allocated, pickled objects are refused, and the
meta entry is checked field by field. Whatever is wrong becomes one MinicapError naming the file.
"""
import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minicap.errors import MinicapError

FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 4 * 2**30   # what an archive may unpack to: far above any minicap model, below a zip bomb
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")   # the rng kinds a checkpoint may name


@dataclass
class Checkpoint:
    """What load_checkpoint returns."""
    kind: str
    params: dict
    config: dict
    step: int
    optimizer_name: str = None
    optimizer_state: dict = field(default_factory=dict)
    rng: np.random.Generator = None
    extra: dict = field(default_factory=dict)


def save_checkpoint(path, kind, params, config=None, step=0, optimizer=None, rng=None, extra=None):
    """Write a checkpoint atomically.

    path: file to write (a '.npz' suffix is conventional). kind: the model kind, e.g. "charrnn".
    params: dict name -> array. config: JSON-serialisable dict. optimizer: an minicap.optim Optimizer.
    rng: the np.random.Generator of the run (its exact state is saved). extra: dict name -> array.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in (extra or {}).items()})
    meta = {"format": FORMAT_VERSION, "kind": kind, "config": config or {}, "step": int(step),
            "optimizer": optimizer.name if optimizer is not None else None,
            "rng": rng.bit_generator.state if rng is not None else None}
    arrays["meta"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _new_file_mode())   # mkstemp's 0600 would hide the checkpoint from the user's group
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _new_file_mode():
    """The mode open() gives a new file: 0o666 less the umask (mkstemp always makes 0o600)."""
    try:   # Linux shows the umask without changing it
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)   # elsewhere the only way to read it is to set it and put it straight back
        os.umask(umask)
    return 0o666 & ~umask


def remove_orphan_temp_files(folder):
    """Delete the `*.npz.*.tmp` files save_checkpoint leaves behind when it is killed mid-write.

    Call it only while holding the run folder's lock: a live writer's temporary file looks the same.
    Returns the list of paths removed.
    """
    removed = []
    for tmp in sorted(Path(folder).glob("*.npz.*.tmp")):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _short(text, limit=200):
    """text on one line, cut to limit characters: what a broken file says must not flood the message."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(err):
    return _short(f"{type(err).__name__}: {err}")


def _corrupt(path, problem):
    return MinicapError(f"checkpoint {path} is truncated or corrupt ({_short(problem)}); "
                        "use an earlier checkpoint or retrain")


def _malformed(path, problem):
    return MinicapError(f"checkpoint {path} has a malformed meta entry ({_short(problem)}); "
                        "it was not written by this minicap or was edited: use an earlier checkpoint or retrain")


def _read_member(path, archive, info):
    """One .npy member as an array, after checking from its header alone that it is plain data of a size
    the member really holds (numpy's reader allocates the header's shape before reading a byte)."""
    name = info.filename
    if not name.endswith(".npy"):
        raise MinicapError(f"checkpoint {path} holds {_short(repr(name), 80)}, which is not an array: "
                           "it was not written by minicap")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise _corrupt(path, f"{name} has .npy version {version}")
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _, dtype = read_header[version](f)
        if dtype.hasobject:
            raise MinicapError(f"checkpoint {path}: {_short(name, 80)} holds Python objects, which minicap never "
                               "writes and will not unpickle (unpickling runs code); it was not written by minicap")
        claimed, held = math.prod(shape) * dtype.itemsize, info.file_size - f.tell()
        if min(shape, default=0) < 0 or claimed != held:
            raise _corrupt(path, f"{name} claims shape {shape} of {dtype} ({claimed} bytes) but holds {held} bytes")
    with archive.open(info) as f:   # checked: now numpy's own reader (the zip's CRC is checked at the end)
        return np.lib.format.read_array(f, allow_pickle=False)


def _read_arrays(path):
    """Every array of the archive at path, name -> array; sizes are checked before anything is allocated."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise MinicapError(f"checkpoint {path} cannot be read ({err.strerror or err})") from None
    if magic == b"\x93NUMPY":
        raise MinicapError(f"checkpoint {path} is a single .npy array, not a checkpoint: give the .npz file a "
                           "minicap run wrote (its last.npz or best.npz)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            total = sum(info.file_size for info in members)
            if total > MAX_CHECKPOINT_BYTES:   # a zip bomb, or sizes garbled: refuse before unpacking anything
                raise MinicapError(f"checkpoint {path} would unpack to {total / 2**30:.1f} GiB, more than the "
                                   f"{MAX_CHECKPOINT_BYTES / 2**30:.0f} GiB a checkpoint may hold; not reading it")
            on_disk = path.stat().st_size
            for info in members:   # so a member's size (checked against its header below) is real
                stored = info.compress_type == zipfile.ZIP_STORED
                if info.header_offset + info.compress_size > on_disk or stored and info.compress_size != info.file_size:
                    raise _corrupt(path, f"{info.filename} claims more bytes than the file holds")
            return {info.filename[:-len(".npy")]: _read_member(path, archive, info) for info in members}
    except MinicapError:
        raise
    except Exception as err:   # zipfile, numpy's header parser, the CRC check raise many kinds: all mean corrupt
        raise _corrupt(path, _describe(err)) from None


def _parse_meta(path, meta):
    """The meta entry, a JSON string, as a dict whose every field has the type save_checkpoint writes."""
    if meta.dtype.kind != "U" or meta.shape != ():
        raise _malformed(path, f"a {meta.dtype} array of shape {meta.shape}, not a JSON string")
    try:
        meta = json.loads(str(meta[()]))
    except Exception as err:   # bad JSON, invalid characters, absurd nesting (RecursionError)...
        raise _corrupt(path, f"meta is not valid JSON: {_describe(err)}") from None
    if not isinstance(meta, dict):
        raise _malformed(path, f"a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT_VERSION:
        raise MinicapError(f"checkpoint {path} has format {_short(repr(meta.get('format')), 40)}, "
                           f"this minicap reads {FORMAT_VERSION}")
    expected = {"kind": (str,), "config": (dict,), "step": (int,), "optimizer": (str, type(None)),
                "rng": (dict, type(None))}
    for key, types in expected.items():
        if key not in meta:
            raise _malformed(path, f"no {key!r}")
        if not isinstance(meta[key], types) or isinstance(meta[key], bool):   # JSON true is not a step
            raise _malformed(path, f"{key} is {meta[key]!r}, not a {' or '.join(t.__name__ for t in types)}")
    if meta["step"] < 0:
        raise _malformed(path, f"step is {meta['step']}")
    return meta


def _restore_rng(path, state):
    """The saved np.random.Generator; only a known bit generator is ever constructed from the file."""
    if state is None:
        return None
    if state.get("bit_generator") not in BIT_GENERATORS:
        raise _malformed(path, f"rng bit_generator {state.get('bit_generator')!r} is none of "
                               f"{', '.join(BIT_GENERATORS)}")
    try:
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
    except Exception as err:   # the bit generator's own check of its state: TypeError, ValueError, KeyError...
        raise _malformed(path, f"rng state: {_describe(err)}") from None
    return np.random.Generator(bit_generator)


def load_checkpoint(path, kind=None):
    """Read a checkpoint written by save_checkpoint.

    kind: if given, the checkpoint must be of this model kind.
    Raises MinicapError naming the file when it is missing, not a checkpoint, truncated, corrupt, too
    big, holds pickled objects, has a malformed meta entry, or is of another kind. Never anything else.
    """
    path = Path(path)
    if not path.exists():
        raise MinicapError(f"checkpoint {path} does not exist (train a model first, or check the path)")
    if path.is_dir():
        raise MinicapError(f"checkpoint {path} is a folder; give the .npz file inside it")
    arrays = _read_arrays(path)
    if "meta" not in arrays:
        raise MinicapError(f"checkpoint {path} has no 'meta' entry: it was not written by minicap")
    meta = _parse_meta(path, arrays.pop("meta"))
    for name, array in arrays.items():   # parameters and optimizer buffers are numbers, or training fails later
        if name.startswith(("param/", "optim/")) and array.dtype.kind not in "biuf":
            raise MinicapError(f"checkpoint {path}: {_short(name, 80)} is a {_short(array.dtype, 40)} array, "
                               "not numbers; it was not written by minicap")
    if kind is not None and meta["kind"] != kind:
        raise MinicapError(f"checkpoint {path} holds a '{_short(meta['kind'], 60)}' model, not a '{kind}' model")

    def group(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return Checkpoint(kind=meta["kind"], params=group("param/"), config=meta["config"], step=meta["step"],
                      optimizer_name=meta["optimizer"], optimizer_state=group("optim/"),
                      rng=_restore_rng(path, meta["rng"]), extra=group("extra/"))


def check_param_shapes(path, params, expected):
    """Raise MinicapError naming the file if params do not have exactly the expected names and shapes.

    expected: dict name -> array (or shape tuple), e.g. a freshly initialised model's params.
    """
    want = {k: tuple(getattr(v, "shape", v)) for k, v in expected.items()}
    have = {k: tuple(v.shape) for k, v in params.items()}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = [f"{k}: {have[k]} (expected {want[k]})" for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if missing or unexpected or wrong:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected)}"] if unexpected else []) + wrong
        raise MinicapError(f"checkpoint {path} does not match this model: {'; '.join(parts)}")
