"""What every training command shares: its output folder, its settings, and the checks of its options.

    folder = open_run_folder(args.out, KIND, resume=args.resume)   # checked, locked, cleaned
    cfg = merge_settings(given, folder.previous, DEFAULTS, FIXED_ON_RESUME, args.out)
    ... build the model and the Run (minicap.train.resume_run(folder.last, ...) when folder.previous) ...
    train(run, ...)                      # the lock is held until the command returns (cli.main
                                         # calls release_all) or the process exits

A run owns its folder. `open_run_folder` refuses an --out that is a file (or lies under one), refuses
to start a new run over a folder that already holds last.npz (--resume continues it instead), and
takes the folder's lock: OUT/run.lock, held with flock(2) and holding the pid. While another process
holds it, a second run on the same folder is refused with that pid in the message; when the holder
dies, the kernel drops its lock and the next run takes the folder over - no stale lock to clean by hand.
Leftover temporary files of a checkpoint write that was killed are removed once the lock is held.

Settings resolve in one order everywhere: the defaults, then the resumed run's own settings, then
the command line. Options that change the model, its data or what is compared (FIXED_ON_RESUME of
each command) cannot change on resume: a run resumed with other values would not be the same run.

The argparse types below (positive_int, seed, positive_float, ...) refuse bad values (0 steps, a
negative seed, --lr nan, --temperature inf) before anything runs, with a one-line usage error.
"""
import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

from minicap.errors import MinicapError

LOCK_NAME = "run.lock"
_held = []   # the folders this process holds


# --- option types ---------------------------------------------------------------------------------
def _number(text, convert, what):
    try:
        value = convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (not a finite number)")
    return value


def _bounded(convert, what, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `convert` the text, then check low <= value <= high (or <, with *_open)."""
    def check(text):
        value = _number(text, convert, what)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    check.__name__ = what   # argparse names the type in some messages
    return check


positive_int = _bounded(int, "an integer >= 1", low=1)
seed = _bounded(int, "a seed: an integer from 0 to 2**32 - 1", low=0, high=2 ** 32 - 1)
positive_float = _bounded(float, "a finite number > 0", low=0, low_open=True)
nonnegative_float = _bounded(float, "a finite number >= 0", low=0)
probability = _bounded(float, "a number from 0 to 1", low=0, high=1)
dropout_rate = _bounded(float, "a number from 0 to just below 1", low=0, high=1, high_open=True)


def int_range(low, high):
    """An argparse type for an integer from low to high (a count a user picks, bounded so that the
    memory and time it costs stay bounded too)."""
    return _bounded(int, f"an integer from {low} to {high:,}", low=low, high=high)


def writable_file(*suffixes):
    """An argparse type for an output file: one of `suffixes`, in a folder that exists or can be made
    (checked when the options are parsed, so a typo never costs a whole run)."""
    def check(text):
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text}: expected a {' or '.join(suffixes)} file")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
        for parent in path.parents:   # the nearest existing ancestor must be a folder
            if parent.exists():
                if not parent.is_dir():
                    raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
                break
        return path
    check.__name__ = "output file"
    return check


# --- the run folder -------------------------------------------------------------------------------
@dataclass(eq=False)
class RunFolder:
    """An output folder that this process holds (see the module docstring)."""
    path: Path
    previous: dict = None   # the resumed run's checkpoint config, None for a new run
    lock_fd: int = None

    @property
    def last(self):
        return self.path / "last.npz"

    @property
    def best(self):
        return self.path / "best.npz"


def make_folder(path, flag="--out"):
    """mkdir -p with one-line errors: the path is a file, lies under a file, or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MinicapError(f"{flag} {path} is a file, not a folder; give a folder for the run")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise MinicapError(f"{flag} {path}: a part of the path is a file, not a folder") from None
    except OSError as err:
        raise MinicapError(f"{flag} {path}: cannot create the folder ({err.strerror})") from None
    return path


def _take_lock(folder):
    """flock OUT/run.lock, write our pid into it; MinicapError naming the holder if it is taken."""
    import fcntl

    lock_path = folder / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise MinicapError(f"another minicap run (pid {holder}) is using {folder}; wait for it to finish, "
                               f"or give another --out") from None
        # the holder may have removed the file between our open and our flock: lock the file that is there now
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release(folder):
    """Give the folder back (also happens by itself when the process exits)."""
    if folder.lock_fd is not None:
        try:
            os.unlink(folder.path / LOCK_NAME)
        except FileNotFoundError:
            pass
        os.close(folder.lock_fd)
        folder.lock_fd = None
    if folder in _held:
        _held.remove(folder)


def held_folders():
    """The run folders this process holds now."""
    return [folder.path for folder in _held]


def release_all():
    """Give back every folder this process holds (minicap.cli.main, when a command returns)."""
    for folder in list(_held):
        release(folder)


def open_run_folder(out, kind, resume):
    """Check, create and lock the run folder `out`; with resume, read the run's config from last.npz.

    A new run over a folder that already holds last.npz is refused (nothing a user had is overwritten);
    --resume without last.npz is refused. Returns a RunFolder (previous = the checkpoint's config or None).
    """
    from minicap.checkpoint import load_checkpoint, remove_orphan_temp_files

    folder = RunFolder(make_folder(out))
    folder.lock_fd = _take_lock(folder.path)
    _held.append(folder)
    try:
        remove_orphan_temp_files(folder.path)
        if resume:
            if not folder.last.exists():
                raise MinicapError(f"--resume: there is no checkpoint {folder.last} (it does not exist); "
                                   f"train without --resume first")
            folder.previous = load_checkpoint(folder.last, kind=kind).config
        elif folder.last.exists():
            raise MinicapError(f"{folder.last} already exists; add --resume to continue that run, "
                               f"or give another --out")
    except BaseException:
        release(folder)
        raise
    return folder


def resolve_checkpoint(path):
    """The checkpoint a user means: a file as given; a run folder stands for its best.npz, else its
    last.npz (MinicapError if it holds neither)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.npz", "last.npz"):
            if (path / name).exists():
                return path / name
        raise MinicapError(f"folder {path} holds no best.npz or last.npz: give a checkpoint file, or the --out "
                           f"folder of a training run")
    return path


# --- settings -------------------------------------------------------------------------------------
def merge_settings(given, previous, defaults, fixed_on_resume, out, flags=None):
    """The run's settings: `defaults`, then the resumed run's (`previous`), then the command line.

    given: option name -> value from the command line (None = not given). On resume, a key of
    fixed_on_resume given with another value than the run used is refused, naming the flag
    (flags: key -> flag name, when it is not the key with '-' for '_').
    """
    previous = previous or {}
    used = {**defaults, **previous}
    for key in fixed_on_resume:
        if previous and given.get(key) is not None and given[key] != used.get(key):
            flag = (flags or {}).get(key, key.replace("_", "-"))
            raise MinicapError(f"the run in {out} was trained with {key} = {used.get(key)!r}, not {given[key]!r}; "
                               f"drop --{flag} to resume it, or start a new run with another --out")
    settings = dict(defaults)
    settings.update({k: v for k, v in previous.items() if k in settings})
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings
