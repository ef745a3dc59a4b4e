"""Checkpoints: one `.npz` holding everything needed to resume a run exactly.

Layout of the archive (all plain arrays, so it loads with allow_pickle=False):

    param/<name>     model parameters
    optim/<key>      optimizer state (see Optimizer.state_dict)
    extra/<key>      anything else the model needs (a vocabulary, a moving-average baseline...)
    meta             a JSON string: format version, kind of model, config, step, optimizer name,
                     and the rng's bit-generator state

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk,
then renamed over the target. A crash or Ctrl-C mid-write leaves the previous checkpoint intact.
"""
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minicap.errors import MinicapError

FORMAT_VERSION = 1


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
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _restore_rng(state):
    if state is None:
        return None
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def load_checkpoint(path, kind=None):
    """Read a checkpoint written by save_checkpoint.

    kind: if given, the checkpoint must be of this model kind.
    Raises MinicapError naming the file when it is missing, truncated, corrupt, or of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise MinicapError(f"checkpoint {path} does not exist (train a model first, or check the path)")
    if path.is_dir():
        raise MinicapError(f"checkpoint {path} is a folder; give the .npz file inside it")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except KeyError:
        raise MinicapError(f"checkpoint {path} has no 'meta' entry: it was not written by minicap") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, json.JSONDecodeError) as err:
        raise MinicapError(f"checkpoint {path} is truncated or corrupt ({err}); "
                           "use an earlier checkpoint or retrain") from None
    if meta.get("format") != FORMAT_VERSION:
        raise MinicapError(f"checkpoint {path} has format {meta.get('format')}, this minicap reads {FORMAT_VERSION}")
    if kind is not None and meta["kind"] != kind:
        raise MinicapError(f"checkpoint {path} holds a '{meta['kind']}' model, not a '{kind}' model")

    def group(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

    return Checkpoint(kind=meta["kind"], params=group("param/"), config=meta["config"], step=meta["step"],
                      optimizer_name=meta["optimizer"], optimizer_state=group("optim/"),
                      rng=_restore_rng(meta["rng"]), extra=group("extra/"))


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
