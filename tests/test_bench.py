"""`minicap bench`: the JSON it prints, its errors, and that both backends compute the same workload.

Speed is never asserted here (DESIGN.md: numbers come from `minicap bench`, not from timed tests); the
hidden --quick flag shrinks every workload to a smoke-test size.
"""
import json

import pytest

from minicap import bench
from minicap.cli import main

REQUIRED_KEYS = {"workload", "backend", "dtype", "median_s", "peak_mb"}


def run_json(capsys, *args):
    assert main(["bench", "--json", "--quick", "--repeat", "2", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def all_results():
    """One `minicap bench --json --quick` over every workload, backend and dtype, shared by the tests."""
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--json", "--quick", "--repeat", "2"]) == 0
    return json.loads(out.getvalue())


def test_json_lists_every_workload_backend_and_dtype(all_results):
    results = all_results
    combos = {(r["workload"], r["backend"], r["dtype"]) for r in results}
    assert combos == {(w, b, d) for w in bench.WORKLOADS for b in ("numpy", "numba") for d in ("float32", "float64")}
    for r in results:
        assert REQUIRED_KEYS <= set(r)
        assert r["median_s"] > 0 and r["peak_mb"] >= 0 and r["compile_s"] >= 0
        assert r["min_s"] <= r["median_s"] and r["repeat"] == 2


def test_both_backends_compute_the_same_loss(all_results):
    loss = {(r["workload"], r["dtype"], r["backend"]): r["loss"] for r in all_results}
    for workload in bench.WORKLOADS:
        for dtype, tol in (("float32", 1e-4), ("float64", 1e-10)):
            numpy_loss, numba_loss = loss[(workload, dtype, "numpy")], loss[(workload, dtype, "numba")]
            assert numba_loss == pytest.approx(numpy_loss, rel=tol), (workload, dtype)


def test_filters_select_one_measurement(capsys):
    results = run_json(capsys, "--workload", "lstm_seq", "--backend", "numba", "--dtype", "float32")
    # (every run also times the gemm ceiling first, under the same filters)
    assert [(r["workload"], r["backend"], r["dtype"]) for r in results if r["workload"] != "gemm"] == [
        ("lstm_seq", "numba", "float32")]
    assert [(r["workload"], r["backend"], r["dtype"]) for r in results][0] == ("gemm", "numba", "float32")


def test_table_output_reports_the_speed_up(capsys):
    assert main(["bench", "--quick", "--repeat", "1", "--workload", "lstm_seq", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "median_ms" in out and "numpy / numba" in out


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_peak_memory_sees_the_iterations_arrays(backend_name):
    result = bench.measure("lstm_seq", backend_name, "float64", repeat=1, quick=True)
    # caches and gradients of 3 steps of (2, 5) states: a few KiB that tracemalloc must see
    assert 1e-3 < result["peak_mb"] < 1


@pytest.mark.parametrize("args, message", [
    (["--workload", "no_such_workload"], "unknown workload"),
    (["--repeat", "0"], "--repeat"),
])
def test_bad_arguments_are_user_errors(capsys, args, message):
    assert main(["bench", "--quick", *args]) == 2
    assert message in capsys.readouterr().err


def test_every_registered_workload_loads():
    for name in bench.WORKLOADS:
        assert callable(bench.load_workload(name))


# --- the GEMM ceiling, GFLOP/s and --threads ---------------------------------------------------------------
def test_every_row_reports_gflops_and_its_share_of_the_gemm_ceiling(all_results):
    ceilings = {}
    for r in all_results:
        if r["workload"] == "gemm":
            ceilings[r["dtype"]] = max(ceilings.get(r["dtype"], 0), r["gflops"])
    assert set(ceilings) == {"float32", "float64"}
    for r in all_results:
        assert {"flops", "gflops", "ceiling_share", "threads", "numba_threads"} <= set(r)
        assert r["flops"] == bench.flops(r["workload"], r["dtype"], quick=True) > 0
        assert r["gflops"] == pytest.approx(r["flops"] / r["median_s"] / 1e9)
        assert r["ceiling_share"] == pytest.approx(r["gflops"] / ceilings[r["dtype"]])
        assert r["threads"] is None
    best = {d: max(r["ceiling_share"] for r in all_results if r["workload"] == "gemm" and r["dtype"] == d)
            for d in ceilings}
    assert best == {"float32": pytest.approx(1.0), "float64": pytest.approx(1.0)}


def test_flop_counts_are_the_documented_formulas():
    assert bench.flops("gemm", "float32") == 2 * 1024 ** 3
    T, B, D, H = 16, 32, 256, 512
    assert bench.flops("lstm_seq", "float64") == 3 * T * 2 * B * 4 * H * (D + H)
    for name in bench.WORKLOADS:    # every workload is counted, at both sizes, the same in both dtypes
        assert bench.flops(name, "float32") == bench.flops(name, "float64") > bench.flops(name, "float32", True) > 0
    # the encoder's first conv layer alone: 64 images, 60 x 60 outputs, 3 x 3 x 1 inputs, 16 channels, x 3
    assert bench.flops("conv_encoder", "float32") > 3 * 2 * 64 * 60 * 60 * 9 * 16


def test_threads_sets_numba_threads_for_the_run_and_restores_them(capsys):
    import numba
    before = numba.get_num_threads()
    results = run_json(capsys, "--threads", "1", "--workload", "lstm_seq", "--backend", "numba", "--dtype", "float64")
    assert {(r["threads"], r["numba_threads"]) for r in results} == {(1, 1)}
    assert numba.get_num_threads() == before


def test_threads_uses_threadpoolctl_when_installed(capsys, monkeypatch):
    import sys
    import types
    calls = []

    class Limits:
        def restore_original_limits(self):
            calls.append("restored")

    def threadpool_limits(limits, user_api):
        calls.append((limits, user_api))
        return Limits()

    import numba
    before = numba.get_num_threads()
    monkeypatch.setitem(sys.modules, "threadpoolctl", types.SimpleNamespace(threadpool_limits=threadpool_limits))
    results = run_json(capsys, "--threads", "1", "--workload", "lstm_seq", "--backend", "numpy", "--dtype", "float32")
    assert calls == [(1, "blas"), "restored"]          # in this process: no child
    assert {(r["threads"], r["numba_threads"]) for r in results} == {(1, 1)}
    assert numba.get_num_threads() == before


def test_threads_without_threadpoolctl_runs_a_child_with_the_environment_set(capsys, monkeypatch):
    from minicap.commands import bench as command
    monkeypatch.setattr(command, "_have_threadpoolctl", lambda: False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    seen = []
    real_run = command.subprocess.run

    def run(argv, env, **kwargs):
        seen.append({name: env[name] for name in command.THREAD_VARIABLES})
        return real_run(argv, env=env, **kwargs)

    monkeypatch.setattr(command.subprocess, "run", run)
    results = run_json(capsys, "--threads", "2", "--workload", "lstm_seq", "--backend", "numba", "--dtype", "float32")
    assert seen == [dict.fromkeys(command.THREAD_VARIABLES, "2")]
    assert [(r["workload"], r["threads"], r["numba_threads"]) for r in results] == [("gemm", 2, 2), ("lstm_seq", 2, 2)]


def test_threads_must_be_positive(capsys):
    assert main(["bench", "--quick", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err



def test_cpu_time_clock_is_recorded_and_passed_to_a_child(capsys, monkeypatch):
    results = run_json(capsys, "--cpu-time", "--workload", "lstm_seq", "--backend", "numba", "--dtype", "float32")
    assert {r["clock"] for r in results} == {"cpu"} and all(r["median_s"] > 0 for r in results)
    assert {r["clock"] for r in run_json(capsys, "--workload", "lstm_seq", "--backend", "numba",
                                         "--dtype", "float32")} == {"wall"}
    from minicap.commands import bench as command
    monkeypatch.setattr(command, "_have_threadpoolctl", lambda: False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    argvs = []
    real_run = command.subprocess.run

    def run(argv, env, **kwargs):
        argvs.append(argv)
        return real_run(argv, env=env, **kwargs)

    monkeypatch.setattr(command.subprocess, "run", run)
    results = run_json(capsys, "--cpu-time", "--threads", "2", "--workload", "lstm_seq", "--backend", "numba",
                       "--dtype", "float32")
    assert "--cpu-time" in argvs[0] and {r["clock"] for r in results} == {"cpu"}


def test_unknown_clock_is_refused():
    from minicap.errors import MinicapError
    with pytest.raises(MinicapError, match="clock"):
        bench.measure("gemm", "numpy", "float32", repeat=1, quick=True, clock="sundial")
