"""Course assignments (issue 18): markers and manifests, the student build, the public check, the grader.

What is shown here: the reference passes every test of every assignment; the untouched student build
scores zero; each planted bug loses points on exactly the tests that cover it, with feedback naming
the function; an endless loop, a memory hog, sys.exit, megabytes of output, a dead process and a
process that ignores its per-test alarm are graded as failures while the rest of the batch completes;
a submission importing the Numba twin of its task scores 0 with a note.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from minicap import backend
from minicap.assignments import assigned_files, left_out_kernels, manifest, reference_root
from minicap.assignments.cases import compare, run_test
from minicap.assignments.grade import Limits, grade_all, grade_submission, student_seed
from minicap.assignments.manifests import MANIFESTS
from minicap.assignments.strip import BEGIN, MarkerError, solution_regions, strip_source
from minicap.cli import main

ROOT = reference_root()
NAMES = list(MANIFESTS)
FAST = Limits(seconds=30, test_seconds=1.5)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The student build of every assignment (built once for the module)."""
    base = tmp_path_factory.mktemp("builds")
    out = {}
    for name in NAMES:
        assert main(["assignment", "build", name, "--out", str(base / name)]) == 0
        out[name] = base / name
    return out


def make_submission(folder, name, assignment, edits=None, only=None):
    """A submission folder `folder/name` holding the reference's assigned files of `assignment` (or those
    in `only`), with edits {relative path: [(old, new), ...]} applied (each old text must occur)."""
    root = Path(folder) / name
    for rel in assigned_files(manifest(assignment)):
        if only is not None and rel not in only:
            continue
        text = (ROOT / rel).read_text()
        for old, new in (edits or {}).get(rel, []):
            assert old in text, (rel, old)
            text = text.replace(old, new, 1)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def lost(row):
    """The tests that did not get full points."""
    m = manifest(next(a for a in NAMES if set(row["points"]) == {t["name"] for t in manifest(a)["tests"]}))
    return {t["name"] for t in m["tests"] if row["points"][t["name"]] < t["points"]}


# --- 1. markers and manifests ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_manifest_functions_are_marked_and_strip_to_valid_python(name):
    m = manifest(name)
    assert sum(t["points"] for t in m["tests"]) > 0 and any(t["public"] for t in m["tests"])
    functions = {f for fs in m["functions"].values() for f in fs}
    assert {t["function"] for t in m["tests"]} <= functions
    for rel, fns in m["functions"].items():
        source = (ROOT / rel).read_text()
        marked = {region[0] for region in solution_regions(source, rel)}
        assert set(fns) <= marked, f"{rel}: unmarked {set(fns) - marked}"
        stripped = strip_source(source, fns, name, rel)
        compile(stripped, rel, "exec")
        assert "BEGIN SOLUTION" not in stripped and stripped.count("raise NotImplementedError(") >= len(fns)


@pytest.mark.parametrize("name", NAMES)
def test_reference_passes_every_test_on_other_seeds(name):
    with backend.using("numpy"):
        for test in manifest(name)["tests"]:
            for seed in (1, 12345):
                answers, fd = run_test(test, seed)
                assert compare(test, answers, answers, fd).passed
                assert all(err < 1e-6 for err in fd.values()), (test["name"], fd)


def test_stripper_keeps_docstrings_and_refuses_bad_markers():
    source = 'def f(x):\n    """Doc."""\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n\n\ndef g(x):\n' \
             '    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n'
    out = strip_source(source, ["f"], "demo")
    assert '"""Doc."""\n    raise NotImplementedError(' in out and "return 2 * x" in out and BEGIN not in out
    with pytest.raises(MarkerError, match="no # BEGIN SOLUTION region in h"):
        strip_source(source, ["h"], "demo")
    with pytest.raises(MarkerError, match="without an # END SOLUTION"):
        solution_regions("def f():\n    # BEGIN SOLUTION\n    pass\n")


# --- 2. the student build -----------------------------------------------------------------------------------
def run_in(folder, code, backend_name="numpy"):
    """Run python code with the student folder's minicap (a fresh process: PYTHONPATH=folder)."""
    env = dict(os.environ, PYTHONPATH=str(folder), MINICAP_BACKEND=backend_name)
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def test_build_cuts_the_solutions_leaves_out_the_twins_and_the_rest_works(builds):
    folder = builds["rnn_lstm"]
    for rel in ("rnn_lstm.py", "README.md", "tests/test_public.py", "assignment.json", "public_expected.npz",
                "setup.cfg", "data/mnist_5k.npz"):
        assert (folder / rel).exists(), rel
    assert left_out_kernels(manifest("rnn_lstm")) == ["kernels.lstm", "kernels.softmax"]
    assert not (folder / "kernels/lstm.py").exists() and (folder / "kernels/attention.py").exists()
    lstm_py = (folder / "minicap/nn/lstm.py").read_text()
    assert "def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):" in lstm_py and "One LSTM step." in lstm_py
    assert "next_c = f * prev_c + i * g\n" not in lstm_py and "BEGIN SOLUTION" not in lstm_py
    # with MINICAP_BACKEND=numba the student's NumPy code runs; what is not assigned (attention) works
    done = run_in(folder, "from minicap import backend\n"
                          "print(backend.get('lstm_step_forward').__module__, backend.get('lstm_forward').__module__)\n"
                          "from minicap.gradcheck_cases import check_case\n"
                          "print(max(check_case('soft_attention_beta').values()))\n"
                          "try:\n    check_case('lstm_step')\nexcept NotImplementedError as e:\n    print('NIE', e)\n", backend_name="numba")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "minicap.nn.lstm minicap.nn.lstm"
    assert float(lines[1]) < 1e-6
    assert lines[2].startswith("NIE lstm_step_forward: write this function")


def test_build_refuses_a_folder_in_use(builds, capsys):
    assert main(["assignment", "build", "rnn_lstm", "--out", str(builds["rnn_lstm"])]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["assignment", "build", "nope", "--out", str(builds["rnn_lstm"] / "x")]) == 2
    assert "no assignment 'nope'" in capsys.readouterr().err


def test_assignment_list(capsys):
    assert main(["assignment", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES) and "lstm_step_backward" in out


# --- 3. the student's check ---------------------------------------------------------------------------------
def test_check_untouched_then_solved_then_planted_bug(builds, tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(builds["rnn_lstm"], folder)
    done = run_in(folder, "import sys; from minicap.cli import main; sys.exit(main(['assignment', 'check']))")
    assert done.returncode == 1 and "score: 0/15" in done.stdout
    assert "lstm_step_backward: not written yet (raises NotImplementedError)" in done.stdout
    for rel in assigned_files(manifest("rnn_lstm")):   # the student writes the reference ...
        shutil.copy(ROOT / rel, folder / rel)
    done = run_in(folder, "import sys; from minicap.cli import main; sys.exit(main(['assignment', 'check']))")
    assert done.returncode == 0 and "score: 15/15" in done.stdout, done.stdout + done.stderr
    lstm = folder / "minicap/nn/lstm.py"   # ... with the wrong forget-gate term
    lstm.write_text(lstm.read_text().replace("dc * prev_c * f * (1 - f)", "dc * prev_h * f * (1 - f)"))
    done = run_in(folder, "import sys; from minicap.cli import main; sys.exit(main(['assignment', 'check']))")
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if "lstm_step_backward: dWh relative error" in line)
    assert "(should be < 1e-06)" in line and "finite differences of your own forward" in line
    assert "check the forget gate's term" in line


def test_check_refuses_to_run_with_another_minicap(builds, capsys):
    assert main(["assignment", "check", "--dir", str(builds["draw_attention"])]) == 2
    assert "not the one in" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_the_sheet_runs_on_the_solved_build(builds, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(builds[name], folder)
    for rel in assigned_files(manifest(name)):
        shutil.copy(ROOT / rel, folder / rel)
    done = run_in(folder, f"import runpy; runpy.run_path('{name}.py')")
    assert done.returncode == 0, done.stderr
    assert "not yet" not in done.stdout and "figure:" in done.stdout


# --- 4-5. grading ----------------------------------------------------------------------------------------------
PLANTED = {   # bug -> (assignment, edits, the tests that must lose points)
    "forget_gate": ("rnn_lstm", {"minicap/nn/lstm.py": [("dc * prev_c * f * (1 - f)", "dc * prev_h * f * (1 - f)")]},
                    {"lstm_step_backward"}),
    "transposed_dWh": ("rnn_lstm", {"minicap/nn/rnn.py": [("prev_h.T @ da, da.sum(axis=0)", "da.T @ prev_h, da.sum(axis=0)")]},
                       {"rnn_step_backward", "rnn_backward"}),
    "unmasked_penalty": ("attention_captioning", {"minicap/nn/attention.py": [
        ("m = mask.astype(alphas.dtype)[:, :, None]", "m = np.ones_like(alphas[:, :, :1])")]},
        {"doubly_stochastic_penalty_forward", "doubly_stochastic_penalty_backward"}),
    "zero_based_filterbank": ("draw_attention", {"minicap/nn/filterbank.py": [
        ("a = np.arange(1, size + 1, dtype=mu.dtype)                            # pixel",
         "a = np.arange(0, size, dtype=mu.dtype)                            # pixel")]},
        {"filterbank_forward", "filterbank_backward"}),
    "beam_without_finished_beams": ("attention_captioning", {"minicap/decode.py": [
        ("step_logp[finished, end] = 0.0", "step_logp[finished, end] = -np.inf")]}, {"beam_search"}),
}


def test_reference_full_marks_untouched_zero_planted_bugs_lose_their_tests(builds, tmp_path):
    paths, expect = [], []
    for name in NAMES:
        paths += [make_submission(tmp_path / "ref", name, name), builds[name]]
        expect += [(name, "full"), (name, "zero")]
    for bug, (name, edits, tests) in PLANTED.items():
        paths.append(make_submission(tmp_path / bug, bug, name, edits))
        expect.append((name, tests))
    rows = []
    for name in NAMES:   # grade_all grades one assignment: group by it
        chosen = [p for p, (a, _) in zip(paths, expect) if a == name]
        rows += list(zip(chosen, grade_all(chosen, name, workers=2, limits=FAST)))
    by_path = dict(rows)
    for path, (name, want) in zip(paths, expect):
        row = by_path[path]
        assert row["status"] == "ok", row
        if want == "full":
            assert row["total"] == row["max"] > 0, row["feedback"]
        elif want == "zero":
            assert row["total"] == 0 and "not written yet" in row["feedback"]
        else:
            assert lost(row) == want, (path.name, row["points"], row["feedback"])
            functions = {t["function"] for t in manifest(name)["tests"] if t["name"] in want}
            assert all(f"{f}:" in row["feedback"] for f in functions), row["feedback"]
            assert row["total"] < row["max"]


MISBEHAVING = {   # name -> (edit of lstm.py / rnn.py in rnn_lstm, the tests it must fail, the status)
    "endless_loop": ("minicap/nn/rnn.py", ("x, prev_h, Wx, Wh, next_h = cache\n", "x, prev_h, Wx, Wh, next_h = cache\n    while True:\n        pass\n"),
                     {"rnn_step_backward", "rnn_backward"}, "timeout"),
    "memory_hog": ("minicap/nn/lstm.py", ("H = prev_h.shape[1]\n", "H = prev_h.shape[1]\n    hog = [np.empty(2 ** 25) for _ in range(10 ** 4)]\n"),
                   {"lstm_step_forward", "lstm_step_backward"}, "memory"),
    "sys_exit": ("minicap/nn/temporal.py", ("N, T, V = x.shape\n", "N, T, V = x.shape\n    import sys\n    sys.exit(3)\n"),
                 {"temporal_softmax_loss_forward", "temporal_softmax_loss_backward"}, "exited"),
    "prints_megabytes": ("minicap/nn/temporal.py", ("N, T, V = x.shape\n", "N, T, V = x.shape\n    print('x' * 3 * 10 ** 6)\n"),
                         {"temporal_softmax_loss_forward"}, "output"),   # the test that overflowed; later prints are dropped
}


def test_misbehaving_submissions_fail_within_their_limits_and_the_batch_completes(tmp_path):
    paths = [make_submission(tmp_path, "good", "rnn_lstm")]
    for name, (rel, edit, _, _) in MISBEHAVING.items():
        paths.append(make_submission(tmp_path, name, "rnn_lstm", {rel: [edit]}))
    # os._exit in the middle: the process dies, the tests after it are lost, the row says so
    paths.append(make_submission(tmp_path, "dies", "rnn_lstm", {"minicap/nn/lstm.py": [
        ("H = prev_h.shape[1]\n", "H = prev_h.shape[1]\n    import os\n    os._exit(9)\n")]}))
    # ignores the per-test alarm and loops: the submission's time limit kills the process group
    paths.append(make_submission(tmp_path, "hangs", "rnn_lstm", {"minicap/nn/temporal.py": [
        ("N, T, V = x.shape\n", "N, T, V = x.shape\n    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                "    while True:\n        pass\n")]}))
    limits = Limits(seconds=8, test_seconds=1.0, memory_mb=1024, output_kb=256)
    rows = {Path(r["submission"]).name: r for r in grade_all(paths, "rnn_lstm", workers=2, limits=limits)}
    assert rows["good"]["total"] == rows["good"]["max"] and rows["good"]["status"] == "ok"
    for name, (_, _, tests, status) in MISBEHAVING.items():
        row = rows[name]
        assert row["status"] == status, (name, row["status"], row["feedback"])
        assert lost(row) == tests, (name, row["points"], row["feedback"])
    assert "took longer than 1 s" in rows["endless_loop"]["feedback"]
    assert "ran out of memory" in rows["memory_hog"]["feedback"]
    assert "called sys.exit(3)" in rows["sys_exit"]["feedback"]
    assert "printed more than" in rows["prints_megabytes"]["feedback"]
    dies = rows["dies"]
    assert dies["status"] == "crashed" and "exited with code 9 during lstm_step_forward" in dies["feedback"]
    assert dies["points"]["rnn_step_forward"] == 2 and dies["points"]["temporal_softmax_loss_forward"] == 0
    hangs = rows["hangs"]
    assert hangs["status"] == "timeout" and "time limit (8 s)" in hangs["feedback"] and hangs["seconds"] < 20
    assert hangs["points"]["lstm_step_backward"] == 4   # the tests before the hang keep their points


def test_a_submission_importing_its_twin_scores_zero_with_a_note(tmp_path):
    cheat = make_submission(tmp_path, "cheat", "rnn_lstm", {"minicap/nn/lstm.py": [
        ("from minicap import backend\n", "from minicap import backend\nfrom kernels.lstm import lstm_step_forward as _fast\n")]})
    row = grade_submission(cheat, "rnn_lstm", limits=FAST)
    assert row["total"] == 0 and row["status"] == "zero: imports"
    assert "imports the Numba kernels" in row["feedback"]


def test_zip_of_just_the_edited_files_and_seeds(tmp_path):
    archive = tmp_path / "alice.zip"
    with zipfile.ZipFile(archive, "w") as z:   # only lstm.py, at the top of the zip
        z.writestr("lstm.py", (ROOT / "minicap/nn/lstm.py").read_text())
        z.writestr("../evil.py", "x = 1")
    row = grade_submission(archive, "rnn_lstm", course="ml101", limits=FAST)
    assert row["student"] == "alice" and row["seed"] == student_seed("ml101", "rnn_lstm", "alice")
    assert lost(row) == {t["name"] for t in manifest("rnn_lstm")["tests"]} - {"lstm_step_forward", "lstm_step_backward"}
    assert "not found in the submission" in row["feedback"]
    assert student_seed("ml101", "rnn_lstm", "alice") != student_seed("ml101", "rnn_lstm", "bob")
    assert student_seed("ml101", "rnn_lstm", "alice", {"alice": 7}) == 7
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    row = grade_submission(bad, "rnn_lstm", limits=FAST)
    assert row["status"] == "unreadable" and "broken.zip" in row["feedback"]


def test_grade_command_writes_csv_and_json(builds, tmp_path, capsys):
    good = make_submission(tmp_path, "good", "draw_attention")
    out = tmp_path / "out" / "grades.csv"
    assert main(["grade", str(good), str(builds["draw_attention"]), "--assignment", "draw_attention",
                 "--out", str(out), "--json", "--workers", "2", "--test-time-limit", "5"]) == 0
    lines = out.read_text().splitlines()
    tests = [t["name"] for t in manifest("draw_attention")["tests"]]
    assert lines[0].split(",") == ["submission", "total", "max"] + tests + ["feedback"]
    assert lines[1].startswith(f"{good},21,21,")
    details = json.loads(out.with_suffix(".json").read_text())
    assert details["submissions"][1]["details"]["read_backward"]["messages"][0].startswith("read_backward: not written")


def test_local_pool_and_dask_give_the_same_grades(tmp_path):
    distributed = pytest.importorskip("distributed")
    paths = [make_submission(tmp_path, "ok", "rnn_lstm"),
             make_submission(tmp_path, "bug", "rnn_lstm", {"minicap/nn/lstm.py": [PLANTED["forget_gate"][1]["minicap/nn/lstm.py"][0]]})]
    local = grade_all(paths, "rnn_lstm", workers=2, limits=FAST)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = grade_all(paths, "rnn_lstm", limits=FAST, dask_scheduler=client)
    assert [r["points"] for r in local] == [r["points"] for r in remote]
    assert local[0]["total"] == 20 and local[1]["total"] < 20


def test_imports_from_outside_the_copy_are_noticed(tmp_path):
    from minicap.assignments.grade import _imports_of_reference
    copy = tmp_path / "work"
    (copy / "minicap").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "modules.json").write_text(json.dumps([
        ["minicap", str(copy / "minicap" / "__init__.py")], ["minicap.nn.lstm", str(ROOT / "minicap/nn/lstm.py")],
        ["kernels.lstm", str(copy / "kernels" / "lstm.py")], ["kernels", None]]))
    notes = _imports_of_reference(tmp_path / "out", copy, {"kernels.lstm"})
    assert notes == [f"imported minicap.nn.lstm from {ROOT / 'minicap/nn/lstm.py'}, outside the submission",
                     "imported kernels.lstm, the Numba twin of its own task"]


@pytest.mark.slow
def test_fifty_generated_submissions_same_grades_with_1_and_2_workers_and_dask(tmp_path):
    """50 submissions (20 right, 10 forget-gate bugs, 10 transposed dWh, 5 unwritten, 5 sys.exit) graded
    with 1 worker, 2 workers and a Dask LocalCluster (2 worker processes): the same points; the time
    per submission is printed (pytest -s)."""
    import time
    kinds = ["ok"] * 20 + ["forget_gate"] * 10 + ["transposed_dWh"] * 10 + ["unwritten"] * 5 + ["sys_exit"] * 5
    paths = []
    for i, kind in enumerate(kinds):
        name = f"s{i:02d}_{kind}"
        if kind == "ok":
            paths.append(make_submission(tmp_path, name, "rnn_lstm"))
        elif kind == "unwritten":
            paths.append(make_submission(tmp_path, name, "rnn_lstm", only=()))
            (paths[-1]).mkdir(parents=True, exist_ok=True)
        elif kind == "sys_exit":
            rel, edit, _, _ = MISBEHAVING["sys_exit"]
            paths.append(make_submission(tmp_path, name, "rnn_lstm", {rel: [edit]}))
        else:
            paths.append(make_submission(tmp_path, name, "rnn_lstm", PLANTED[kind][1]))
    runs = {}
    for label, kwargs in (("1 worker", {"workers": 1}), ("2 workers", {"workers": 2})):
        start = time.perf_counter()
        runs[label] = grade_all(paths, "rnn_lstm", **kwargs)
        print(f"{label}: {(time.perf_counter() - start) / len(paths):.3f} s per submission")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        start = time.perf_counter()
        runs["dask"] = grade_all(paths, "rnn_lstm", dask_scheduler=cluster.scheduler_address)
        print(f"dask LocalCluster (2 processes): {(time.perf_counter() - start) / len(paths):.3f} s per submission")
        client.close()
    points = {label: [r["points"] for r in rows] for label, rows in runs.items()}
    assert points["1 worker"] == points["2 workers"] == points["dask"]
    totals = [r["total"] for r in runs["1 worker"]]
    assert totals[:20] == [20.0] * 20 and all(t < 20 for t in totals[20:])


def test_grade_command_seed_table_and_bad_inputs(tmp_path, capsys):
    good = make_submission(tmp_path, "carol", "draw_attention", only=("minicap/models/aligndraw.py",))
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"carol": 99}))
    out = tmp_path / "grades.csv"
    assert main(["grade", str(good), "--assignment", "draw_attention", "--out", str(out), "--json",
                 "--seeds", str(seeds)]) == 0
    row = json.loads(out.with_suffix(".json").read_text())["submissions"][0]
    assert row["seed"] == 99 and row["points"]["gaussian_kl_backward"] == 2 and row["points"]["read_forward"] == 0
    seeds.write_text('{"carol": "x"}')
    assert main(["grade", str(good), "--assignment", "draw_attention", "--out", str(out), "--seeds", str(seeds)]) == 2
    assert "seeds.json: expected" in capsys.readouterr().err
    assert main(["grade", str(good), "--assignment", "nope", "--out", str(out)]) == 2
    assert "no assignment 'nope'" in capsys.readouterr().err
