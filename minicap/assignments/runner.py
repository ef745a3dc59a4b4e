"""What runs inside a graded submission's own process (started by minicap.assignments.grade).

    python -S -c "from minicap.assignments.runner import main; main()" TASK.json OUT/

`minicap` here is the submission's copy (a fresh student build with the student's files laid over
it), so the cases below run the student's code. The task names the tests and the student's seed,
nothing more: the expected answers stay in the grader's process, which compares them with what this
process writes:

    OUT/<i>.started        written before test i runs (a process that dies says where)
    OUT/<i>.json           {"status": "ok" | "error" | "timeout" | "memory" | "exit" | "output", "message"}
    OUT/<i>.npz            the answers (and "fd:<name>" finite-difference errors), float64 arrays
    OUT/modules.json       [[module name, file], ...] loaded at the end: the grader checks that no
                           reference or Numba twin of the task was imported

Each test has its own time limit (SIGALRM), and an error of any kind (sys.exit, MemoryError, a
KeyboardInterrupt the student raises) ends that test only. The process as a whole also runs under
the grader's limits (apply_limits: address space, file size, CPU time; and the grader's wall-clock
limit on the process group).
"""
import json
import os
import signal
import sys
from pathlib import Path

MESSAGE_CHARS = 400


class TestTimeout(BaseException):
    """Raised by SIGALRM when a test runs past its time limit (a BaseException: `except Exception`
    in the student's code does not swallow it)."""


def _on_alarm(signum, frame):
    raise TestTimeout


def _write_json(path, obj):
    Path(path).write_text(json.dumps(obj))


def run_one(test, seed, seconds):
    """Run one test with a time limit; returns (status dict, answers dict of arrays)."""
    import numpy as np

    from minicap.assignments.cases import run_test
    from minicap.assignments.check import describe_exception
    function = test["function"]
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        answers, fd = run_test(test, seed)
        arrays = {f"out:{k}": v for k, v in answers.items()}
        arrays.update({f"fd:{k}": np.float64(v) for k, v in fd.items()})
        status = {"status": "ok", "message": ""}
    except TestTimeout:
        arrays, status = {}, {"status": "timeout", "message": f"{function}: took longer than {seconds:g} s (an endless loop?)"}
    except MemoryError:
        arrays, status = {}, {"status": "memory", "message": f"{function}: ran out of memory (the grader's limit)"}
    except SystemExit as done:
        arrays, status = {}, {"status": "exit", "message": f"{function}: called sys.exit({done.code!r})"}
    except OSError as err:
        kind = "output" if getattr(err, "errno", None) == 27 else "error"   # EFBIG: past the output limit
        message = f"{function}: printed more than the grader's output limit" if kind == "output" \
            else describe_exception(function, err)
        arrays, status = {}, {"status": kind, "message": message}
    except BaseException as err:   # noqa: B902 - anything the student's code raises ends this test only
        arrays, status = {}, {"status": "error", "message": describe_exception(function, err)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        sys.stdout.flush()
    except OSError:
        status = {"status": "output", "message": f"{function}: printed more than the grader's output limit"}
    if status["status"] == "output":   # the log is full: what is printed from now on is dropped
        sys.stdout = sys.stderr = open(os.devnull, "w")
    status["message"] = status["message"][:MESSAGE_CHARS]
    return status, arrays


def apply_limits(limits):
    """Limit this process before anything of the student's is imported (the grader passes the limits in
    the task; set here rather than in a preexec_fn, which is unsafe in the grader's threads):
    address space (a memory hog gets a MemoryError), the size of any file it writes (printing past it
    fails with EFBIG instead of killing the process: SIGXFSZ is ignored), CPU seconds, no core files."""
    import resource
    for name, value in (("RLIMIT_AS", limits["memory_bytes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_CPU", limits["cpu_seconds"]), ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    task_path, out = Path(argv[0]), Path(argv[1])
    task = json.loads(task_path.read_text())
    apply_limits(task["limits"])
    signal.signal(signal.SIGALRM, _on_alarm)
    import numpy as np

    from minicap.assignments import manifest
    tests = {t["name"]: t for t in manifest(task["assignment"])["tests"]}
    for i, item in enumerate(task["tests"]):
        (out / f"{i}.started").write_text(item["name"])
        status, arrays = run_one(tests[item["name"]], item["seed"], task["test_seconds"])
        try:
            np.savez(out / f"{i}.npz", **arrays)
        except BaseException as err:   # noqa: B902 - e.g. answers too large for the file-size limit
            status = {"status": "error", "message": f"{tests[item['name']]['function']}: its answers could not be "
                                                    f"saved ({type(err).__name__})"}
        _write_json(out / f"{i}.json", status)
    modules = [[name, getattr(module, "__file__", None)] for name, module in list(sys.modules.items())
               if name.split(".")[0] in ("minicap", "kernels")]
    _write_json(out / "modules.json", modules)
    # Everything is written. Leave without flushing what the student printed past the output limit
    # (a failing flush at exit would turn a finished run into exit status 120).
    os._exit(0)


if __name__ == "__main__":
    main()
