"""Grade a class: `minicap grade SUBMISSION... --assignment NAME --out grades.csv`.

For each submission (a folder or a .zip: the student's whole assignment folder, or just the files
they edited):

1. A fresh copy of the assignment's student build (solutions cut out) is made in a temporary folder,
   and the student's versions of the assigned files (minicap/nn/lstm.py, ...) are laid over it. Only
   those files come from the submission: the tests, the runner and the rest of minicap stay the
   grader's. A file is found by its path (any folder above it), else by its unique file name.
2. The student's seed is derived from the course, the assignment and the student id (the submission's
   name), unless an override table gives it. Every test builds its inputs from that seed.
3. The tests run in a child process (minicap.assignments.runner) that imports the copy and nothing
   of the reference: `python -S` (so the editable install's path hook is not installed) with only the
   copy and the site-packages folders on its path, a time limit per test (SIGALRM) and per
   submission (the process group is killed), an address-space limit (RLIMIT_AS: a memory hog gets a
   MemoryError), a file-size limit on what it writes (RLIMIT_FSIZE: megabytes of prints fail there),
   a CPU-time limit and no core files; the child sets these on itself (runner.apply_limits) before it
   imports anything of the student's. It writes only its answers; the expected answers are computed here, in the
   grader's process, from the reference with the NumPy backend, and never reach the child.
4. Scores: each test's points times the fraction of its outputs within tolerance (forward outputs
   against the reference; gradients against the reference's, with the finite differences of the
   student's own forward reported beside them). A submission that imports the Numba twins or the
   reference of its own task (seen in the child's sys.modules, or an import of them in its files)
   scores 0 on the task, with a note. A crash, a hang, a memory hog, megabytes of output or an early
   exit are noted in the feedback; the submission keeps the points of the tests that finished, and the
   batch goes on.

Submissions are graded in parallel by a pool of threads, each waiting on its own child process
(--workers), or on a Dask distributed cluster (--dask-scheduler ADDRESS; workers must see the
submission paths, e.g. a shared file system).
"""
import atexit
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minicap.assignments import assigned_files, left_out_kernels, manifest, reference_root
from minicap.errors import MinicapError

MAX_SOURCE_BYTES = 2 * 2 ** 20       # one submitted source file
MAX_ZIP_MEMBERS = 20000
MAX_RESULT_BYTES = 8 * 2 ** 20       # one answers file written by the child
SKIP_PARTS = {"__pycache__", "__MACOSX", ".git", ".ipynb_checkpoints"}

# imports that reach around the student's copy; flagged in the submitted files
SUSPECT_PATTERNS = [
    (re.compile(r"^\s*(from|import)\s+kernels\b", re.M), "imports the Numba kernels"),
    (re.compile(r"\bimportlib\b|__import__\s*\("), "imports modules dynamically"),
    (re.compile(r"\bsys\.(path|modules|meta_path)\b"), "changes the import system"),
]


@dataclass
class Limits:
    """Per-submission limits of the child process."""
    seconds: float = 120.0          # the whole submission (wall clock)
    test_seconds: float = 10.0      # one test
    memory_mb: int = 1024           # address space
    output_kb: int = 1024           # any file it writes (its stdout and stderr included)


def student_seed(course, assignment, student, overrides=None):
    """The seed of a student's hidden inputs: from the course, the assignment and the student id, or
    overrides[student] when the table has it (to regrade a case, or give two students one seed)."""
    if overrides and student in overrides:
        return int(overrides[student])
    digest = hashlib.sha256(f"{course}\0{assignment}\0{student}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2 ** 31 - 1)


def student_id(path):
    """The student id of a submission: its folder or zip name, without .zip."""
    name = Path(path).name
    return name[:-4] if name.lower().endswith(".zip") else name


# --- reading a submission -----------------------------------------------------------------------------
def _pick(wanted, candidates):
    """The candidate path for assigned file `wanted` ("minicap/nn/lstm.py"): one ending with the whole
    relative path (the shortest), else the only one with the same file name; None if none or ambiguous."""
    by_path = sorted((c for c in candidates if ("/" + c).endswith("/" + wanted)), key=len)
    if by_path:
        return by_path[0]
    by_name = [c for c in candidates if c.rsplit("/", 1)[-1] == wanted.rsplit("/", 1)[-1]]
    return by_name[0] if len(by_name) == 1 else None


def read_submission(path, wanted):
    """{assigned relative path: source text} found in a submission folder or .zip, and notes.

    Only the assigned files are read, each at most MAX_SOURCE_BYTES; a zip's member count, its
    names and sizes are checked before anything is read. Raises MinicapError with one line naming the
    file when the submission cannot be read at all."""
    path = Path(path)
    found, notes = {}, []
    if path.is_dir():
        candidates = {}
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames[:] = [d for d in dirnames if d not in SKIP_PARTS]
            for name in filenames:
                full = Path(dirpath) / name
                if name.endswith(".py") and not full.is_symlink():
                    candidates[full.relative_to(path).as_posix()] = full
        for rel in wanted:
            pick = _pick(rel, list(candidates))
            if pick is not None:
                if candidates[pick].stat().st_size > MAX_SOURCE_BYTES:
                    notes.append(f"{pick}: larger than {MAX_SOURCE_BYTES // 2 ** 20} MB, not graded")
                    continue
                found[rel] = candidates[pick].read_bytes()
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.infolist()
                if len(members) > MAX_ZIP_MEMBERS:
                    raise MinicapError(f"{path}: more than {MAX_ZIP_MEMBERS} files in the zip")
                candidates = {}
                for info in members:
                    name = info.filename.replace("\\", "/")
                    parts = name.split("/")
                    if info.is_dir() or not name.endswith(".py") or name.startswith("/") or ".." in parts \
                            or SKIP_PARTS & set(parts):
                        continue
                    candidates[name] = info
                for rel in wanted:
                    pick = _pick(rel, list(candidates))
                    if pick is not None:
                        if candidates[pick].file_size > MAX_SOURCE_BYTES:
                            notes.append(f"{pick}: larger than {MAX_SOURCE_BYTES // 2 ** 20} MB, not graded")
                            continue
                        with archive.open(candidates[pick]) as member:
                            found[rel] = member.read(MAX_SOURCE_BYTES + 1)[:MAX_SOURCE_BYTES]
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as err:   # encrypted, corrupt
            raise MinicapError(f"{path}: cannot read the zip ({err})") from None
    else:
        raise MinicapError(f"{path}: not a folder or a .zip")
    texts = {}
    for rel, data in found.items():
        try:
            texts[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            notes.append(f"{rel}: not UTF-8 text, not graded")
    missing = [rel for rel in wanted if rel not in texts]
    if missing:
        notes.append(f"not found in the submission (graded as not written): {', '.join(missing)}")
    return texts, notes


def scan_source(texts, reference):
    """Notes for submitted files that reach around their copy (imports of kernels, the import system,
    the reference's folder)."""
    notes = []
    for rel, text in texts.items():
        for pattern, what in SUSPECT_PATTERNS:
            if pattern.search(text):
                notes.append(f"{rel} {what}")
        if str(reference) in text:
            notes.append(f"{rel} names the reference's folder")
    return notes


# --- the student build, made once per assignment and process ---------------------------------------------
_templates = {}
_templates_lock = threading.Lock()


def _template(name):
    """A student build of assignment `name` in a temporary folder (reused for every submission)."""
    with _templates_lock:
        if name not in _templates or not Path(_templates[name]).is_dir():
            from minicap.assignments.build import build
            folder = Path(tempfile.mkdtemp(prefix=f"minicap-grade-{name}-")) / "build"
            atexit.register(shutil.rmtree, folder.parent, True)   # removed when this process ends
            build(name, folder)
            _templates[name] = folder
        return _templates[name]


def _site_dirs():
    """Where the child finds NumPy and the other installed packages (not the editable minicap)."""
    import site
    dirs = [Path(np.__file__).resolve().parents[1]] + [Path(d) for d in site.getsitepackages()]
    reference = reference_root()
    unique = []
    for d in dirs:
        if d.is_dir() and d not in unique and d != reference:
            unique.append(d)
    return [str(d) for d in unique]


BOOT = "from minicap.assignments.runner import main; main()"


def _run_child(copy, task_path, out_dir, limits, log):
    """Run the runner on the copy; returns (exit code or None, how it ended: "" or a note)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(copy), "LANG": "C.UTF-8",
           "PYTHONPATH": os.pathsep.join([str(copy)] + _site_dirs()), "PYTHONDONTWRITEBYTECODE": "1",
           "MINICAP_BACKEND": "numpy", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(copy / ".numba"), "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": str(copy / ".matplotlib")}
    with open(log, "wb") as sink:
        child = subprocess.Popen([sys.executable, "-S", "-c", BOOT, str(task_path), str(out_dir)], cwd=copy, env=env,
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            return child.wait(timeout=limits.seconds), ""
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None, f"stopped after the submission's time limit ({limits.seconds:g} s)"


def _read_results(out_dir, count):
    """The child's per-test statuses and answers (sizes checked; answers loaded without pickle)."""
    results = []
    for i in range(count):
        status_path, answers_path = out_dir / f"{i}.json", out_dir / f"{i}.npz"
        if not status_path.is_file():
            results.append(({"status": "missing" if not (out_dir / f"{i}.started").exists() else "died"}, {}, {}))
            continue
        try:
            if status_path.stat().st_size > 64 * 1024:
                raise ValueError("status file too large")
            status = json.loads(status_path.read_text())
            answers, fd = {}, {}
            if status.get("status") == "ok":
                if answers_path.stat().st_size > MAX_RESULT_BYTES:
                    raise ValueError("answers file too large")
                with np.load(answers_path, allow_pickle=False) as data:
                    for key in data.files:
                        kind, _, name = key.partition(":")
                        if kind == "out":
                            answers[name] = np.asarray(data[key], dtype=np.float64)
                        elif kind == "fd":
                            fd[name] = float(data[key])
            results.append((status, answers, fd))
        except (OSError, ValueError, TypeError, zipfile.BadZipFile) as err:
            results.append(({"status": "error", "message": f"its results could not be read ({err})"}, {}, {}))
    return results


def _imports_of_reference(out_dir, copy, left_out):
    """Notes for modules the child imported from outside its copy (the reference minicap, a kernel
    module left out of the build)."""
    path = out_dir / "modules.json"
    if not path.is_file() or path.stat().st_size > 4 * 2 ** 20:
        return []
    try:
        modules = json.loads(path.read_text())
    except ValueError:
        return []
    notes, copy = [], Path(copy).resolve()
    for entry in modules:
        if not (isinstance(entry, list) and len(entry) == 2):
            continue
        name, file = entry
        if name in left_out:
            notes.append(f"imported {name}, the Numba twin of its own task")
        elif isinstance(file, str) and copy not in Path(file).resolve().parents:
            notes.append(f"imported {name} from {file}, outside the submission")
    return notes


# --- grading ----------------------------------------------------------------------------------------------
_reference_lock = threading.Lock()   # backend.using switches a process-wide setting: one thread at a time


def expected_answers(m, seed):
    """The reference's answers of every test of manifest `m` on `seed` (NumPy backend): {test: {name: array}}."""
    from minicap import backend
    from minicap.assignments.cases import run_test
    expected = {}
    with _reference_lock, backend.using("numpy"):
        for test in m["tests"]:
            try:
                expected[test["name"]], _ = run_test(test, seed, fd=False)
            except NotImplementedError:
                raise MinicapError("the grader must run with the reference minicap (this one has the "
                                   "solutions cut out)") from None
    return expected


def empty_row(path, m, status="ok", feedback=""):
    """A row with no points: the start of every submission's row, or the whole row of one that failed."""
    return {"submission": str(path), "student": student_id(path), "total": 0.0,
            "max": float(sum(t["points"] for t in m["tests"])), "points": {t["name"]: 0.0 for t in m["tests"]},
            "feedback": feedback, "status": status, "details": {}, "seed": None, "seconds": 0.0}


def grade_submission(path, assignment, course="minicap", seed_overrides=None, limits=None):
    """Grade one submission; never raises. Returns a row dict: submission, student, seed, total, max,
    points {test: points}, feedback (one string), status, details {test: {...}}, seconds."""
    started = time.perf_counter()
    limits = limits or Limits()
    m = manifest(assignment)
    student = student_id(path)
    row = empty_row(path, m)
    notes = []
    try:
        seed = student_seed(course, assignment, student, seed_overrides)
        row["seed"] = seed
        texts, read_notes = read_submission(path, assigned_files(m))
        notes += read_notes
        cheating = scan_source(texts, reference_root())
        with tempfile.TemporaryDirectory(prefix="minicap-grade-") as tmp:
            tmp = Path(tmp)
            copy = tmp / "work"
            shutil.copytree(_template(assignment), copy)
            for rel, text in texts.items():
                (copy / rel).write_text(text)
            out_dir = tmp / "out"
            out_dir.mkdir()
            task = {"assignment": assignment, "test_seconds": limits.test_seconds,
                    "limits": {"memory_bytes": limits.memory_mb * 2 ** 20, "file_bytes": limits.output_kb * 1024,
                               "cpu_seconds": int(limits.seconds) + 5},
                    "tests": [{"name": t["name"], "seed": seed} for t in m["tests"]]}
            task_path = tmp / "task.json"
            task_path.write_text(json.dumps(task))
            log = tmp / "output.txt"
            code, ended = _run_child(copy, task_path, out_dir, limits, log)
            results = _read_results(out_dir, len(m["tests"]))
            cheating += _imports_of_reference(out_dir, copy, set(left_out_kernels(m)))
            output_size = log.stat().st_size if log.exists() else 0
        expected = expected_answers(m, seed)
        row["status"] = _score(row, m, expected, results, notes)
        if ended:
            row["status"], notes = "timeout", notes + [ended]
        elif code not in (0, None):
            died = [t["name"] for t, (s, _, _) in zip(m["tests"], results) if s["status"] == "died"]
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            row["status"] = "crashed"
            notes.append(f"the process {how}" + (f" during {died[0]}" if died else ""))
        if output_size >= limits.output_kb * 1024:
            notes.append(f"printed more than the output limit ({limits.output_kb} KB); the rest was dropped")
        if cheating:
            row["status"] = "zero: imports"
            row["total"], row["points"] = 0.0, {k: 0.0 for k in row["points"]}
            notes = [f"scored 0: the submission {'; '.join(sorted(set(cheating)))} (the task must be its own code)"] + notes
    except MinicapError as err:
        row["status"], notes = "unreadable", notes + [str(err)]
    except Exception as err:   # noqa: BLE001 - one bad submission never stops the batch
        row["status"], notes = "grader error", notes + [f"grader error: {type(err).__name__}: {err}"]
    row["feedback"] = " | ".join(notes)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _score(row, m, expected, results, notes):
    """Fill row's points and details from the child's results; append feedback to notes. Returns a status."""
    from minicap.assignments.cases import compare
    status = "ok"
    for test, (result, answers, fd) in zip(m["tests"], results):
        name = test["name"]
        kind = result.get("status")
        if kind == "ok":
            score = compare(test, expected[name], answers, fd)
            row["points"][name] = score.points
            detail = {"points": score.points, "max": score.max_points, "errors": score.errors, "fd": fd,
                      "messages": score.messages}
            notes += score.messages
        else:
            message = result.get("message") or {
                "died": f"{test['function']}: the process died while running it",
                "missing": f"{test['function']}: not run (the process ended before)"}.get(kind, kind)
            detail = {"points": 0.0, "max": test["points"], "status": kind, "messages": [message]}
            if kind not in ("missing",):
                notes.append(message)
            if kind in ("timeout", "memory", "exit", "output") and status == "ok":   # the first problem
                status = {"timeout": "timeout", "memory": "memory", "exit": "exited", "output": "output"}[kind]
        row["details"][name] = detail
    row["total"] = round(sum(row["points"].values()), 6)
    return status


def grade_all(paths, assignment, course="minicap", seed_overrides=None, limits=None, workers=1,
              dask_scheduler=None):
    """Grade every submission; rows in the order of `paths`. workers: local parallel submissions;
    dask_scheduler: an address (or a distributed.Client) to grade on a Dask cluster instead."""
    manifest(assignment)   # an unknown assignment fails here, once
    limits = limits or Limits()
    if dask_scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise MinicapError("--dask-scheduler needs Dask distributed: pip install 'minicap[dask]'") from None
        client = dask_scheduler if isinstance(dask_scheduler, Client) else Client(dask_scheduler)
        try:   # absolute paths: a worker's working folder is not ours
            futures = client.map(grade_submission, [str(Path(p).resolve()) for p in paths], assignment=assignment,
                                 course=course, seed_overrides=seed_overrides, limits=limits, pure=False)
            rows = []
            for path, future in zip(paths, futures):
                try:
                    row = future.result()
                except Exception as err:   # noqa: BLE001 - a lost worker costs its submission, not the batch
                    row = empty_row(path, manifest(assignment), "grader error",
                                    f"grader error on the Dask cluster: {type(err).__name__}: {err}")
                row["submission"] = str(path)
                rows.append(row)
            return rows
        finally:
            if client is not dask_scheduler:
                client.close()
    _template(assignment)   # build once before the threads start
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: grade_submission(p, assignment, course, seed_overrides, limits), paths))


def write_csv(rows, m, path):
    """One row per submission: submission, total, max, each test's points, feedback."""
    names = [t["name"] for t in m["tests"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["submission", "total", "max"] + names + ["feedback"])
    for row in rows:
        writer.writerow([row["submission"], f"{row['total']:g}", f"{row['max']:g}"]
                        + [f"{row['points'][n]:g}" for n in names] + [row["feedback"]])
    Path(path).write_text(buffer.getvalue())


def write_json(rows, m, path, limits=None):
    """Every row with its per-test details (errors, finite differences, messages), and the settings."""
    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    doc = {"assignment": m["name"], "limits": asdict(limits or Limits()),
           "tests": [{k: t[k] for k in ("name", "function", "part", "points", "public")} for t in m["tests"]],
           "submissions": clean(rows)}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
