"""`minicap bench`: time the hot workloads with the numpy and numba backends, print a table or JSON.

    minicap bench                                   every workload, both backends, float32 and float64
    minicap bench --workload lstm_seq --backend numba --dtype float32 --repeat 21
    minicap bench --json                            a JSON list of result objects
    minicap bench --threads 2                       BLAS and Numba on 2 threads for the run
    minicap bench --cpu-time                        CPU time instead of wall time (a busy shared machine)

Every run times the `gemm` ceiling first and reports, beside each median, the achieved GFLOP/s and
its share of that ceiling (the workloads, their operation counts and the timing method are in
minicap/bench.py).

--threads N sets NumPy's BLAS and Numba to N threads together. BLAS: through threadpoolctl when it
is installed; otherwise BLAS reads its thread count from the environment once, when NumPy loads (the
`minicap` command sets OPENBLAS_NUM_THREADS=1 before that unless you set it, see minicap/cli.py), so
unless the environment already says N the command runs itself again in a child process with
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, OMP_NUM_THREADS and NUMBA_NUM_THREADS set to N. Numba:
numba.set_num_threads(N). The settings are restored when the command returns.
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys

from minicap import backend
from minicap.bench import CEILING, DTYPES, WORKLOADS, add_rates, load_workload, measure_interleaved
from minicap.errors import MinicapError


def configure(parser):
    parser.add_argument("--workload", action="append", metavar="W",
                        help=f"a workload to time (repeatable; default all): {', '.join(WORKLOADS)}")
    parser.add_argument("--backend", choices=backend.BACKENDS, action="append",
                        help="numpy or numba (repeatable; default both)")
    parser.add_argument("--dtype", choices=DTYPES, action="append", help="float32 or float64 (repeatable; default both)")
    parser.add_argument("--repeat", type=int, default=7, metavar="N",
                        help="timed iterations per measurement; the median is reported (default 7)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of objects with keys workload, backend, dtype, median_s, peak_mb, "
                             "compile_s, min_s, repeat, loss, clock, flops, gflops, ceiling_share, threads, "
                             "numba_threads")
    parser.add_argument("--peer", metavar="FILE",
                        help="the JSON list that torch_peer.py --json printed: add its median and the ratio "
                             "numba / peer to the table (peer_median_s and peer_ratio in --json)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="run NumPy's BLAS and Numba on N threads (default: as the environment says; "
                             "the minicap command's BLAS default is 1)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU time instead of wall time: on a machine that other "
                             "busy programs share, it leaves out the waits for a core (with --threads N > 1 "
                             "it sums the threads)")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tiny sizes, for the tests


def run(args):
    workloads = args.workload or [name for name in WORKLOADS if name != CEILING]
    for name in workloads:
        load_workload(name)  # unknown names fail before anything is timed
    if args.repeat < 1:
        raise MinicapError(f"--repeat must be at least 1, got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        raise MinicapError(f"--threads must be at least 1, got {args.threads}")
    if args.threads is not None and _needs_child(args.threads):
        return _run_in_child(args)
    with _threads(args.threads):
        return _bench(args, workloads)


def _bench(args, workloads):
    import numba
    backends, dtypes = args.backend or list(backend.BACKENDS), args.dtype or list(DTYPES)
    peer = load_peer(args.peer) if args.peer else {}
    workloads = [CEILING] + [name for name in workloads if name != CEILING]   # the ceiling first, always
    threads = {"threads": args.threads, "numba_threads": numba.get_num_threads()}
    results, ceilings = [], {}
    if not args.json:
        print(f"{'workload':<22}{'backend':<9}{'dtype':<9}{'median_ms':>11}{'min_ms':>10}{'peak_mb':>10}"
              f"{'compile_s':>11}{'GFLOP/s':>9}{'ceiling':>9}")
    for name in workloads:
        configs = [(backend_name, dtype) for dtype in dtypes for backend_name in backends]
        measured = measure_interleaved(name, configs, repeat=args.repeat, quick=args.quick,
                                       clock="cpu" if args.cpu_time else "wall")
        if name == CEILING:   # the best gemm rate of each dtype in this run
            for result in measured:
                rate = add_rates(result, {}, args.quick)["gflops"]
                ceilings[result["dtype"]] = max(ceilings.get(result["dtype"], 0.0), rate)
        for result in measured:
            add_rates(result, ceilings, args.quick)
            result.update(threads)
            if (name, result["dtype"]) in peer:
                result["peer_median_s"] = peer[(name, result["dtype"])]
                result["peer_ratio"] = result["median_s"] / result["peer_median_s"]
            results.append(result)
            if not args.json:
                gflops = f"{result['gflops']:>9.1f}" if result["gflops"] is not None else f"{'':>9}"
                share = f"{result['ceiling_share']:>8.0%} " if result["ceiling_share"] is not None else f"{'':>9}"
                print(f"{name:<22}{result['backend']:<9}{result['dtype']:<9}{result['median_s'] * 1e3:>11.2f}"
                      f"{result['min_s'] * 1e3:>10.2f}{result['peak_mb']:>10.1f}{result['compile_s']:>11.2f}"
                      f"{gflops}{share}", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        _print_ratios(results)
        print("ceiling (gemm, the best of its rows): " + ", ".join(f"{d} {c:.1f} GFLOP/s" for d, c in ceilings.items())
              + f"; threads: --threads {args.threads}, Numba {threads['numba_threads']}"
              + ("; clock: CPU time of this process" if args.cpu_time else ""))
    return 0


# --- --threads -----------------------------------------------------------------------------------------
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")


def _have_threadpoolctl():
    try:
        import threadpoolctl  # noqa: F401  (optional: not a dependency of minicap)
    except ImportError:
        return False
    return True


def _needs_child(n):
    """True if this process cannot give BLAS and Numba n threads itself: no threadpoolctl and an
    environment that told BLAS something else when it loaded, or more threads than Numba started with."""
    import numba
    if n > numba.config.NUMBA_NUM_THREADS:
        return True
    if _have_threadpoolctl():
        return False
    return not (os.environ.get("OPENBLAS_NUM_THREADS") == str(n)
                and os.environ.get("MKL_NUM_THREADS", str(n)) == str(n))


def _run_in_child(args):
    """Run this same `minicap bench` in a child process whose environment sets every thread count to
    args.threads; pass its output through. Returns its exit status."""
    env = dict(os.environ, **{name: str(args.threads) for name in THREAD_VARIABLES})
    argv = [sys.executable, "-m", "minicap", "bench", "--repeat", str(args.repeat), "--threads", str(args.threads)]
    for flag, values in (("--workload", args.workload), ("--backend", args.backend), ("--dtype", args.dtype)):
        for value in values or []:
            argv += [flag, value]
    argv += ["--json"] * args.json + ["--quick"] * args.quick + ["--cpu-time"] * args.cpu_time
    argv += ["--peer", args.peer] if args.peer else []
    child = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stdout.write(child.stdout)
    sys.stderr.write(child.stderr)
    return child.returncode


@contextlib.contextmanager
def _threads(n):
    """BLAS (threadpoolctl, if installed) and Numba on n threads for the block; None: leave them."""
    if n is None:
        yield
        return
    import numba
    numba_before = numba.get_num_threads()
    limits = None
    if _have_threadpoolctl():
        import threadpoolctl
        limits = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(numba_before)
        if limits is not None:
            limits.restore_original_limits()


# torch_peer.py calls the soft-attention workload by its long name
PEER_NAMES = {"soft_attention_captioner_step": "soft_attention_step"}


def load_peer(path):
    """{(workload, dtype): median_s} from the JSON list torch_peer.py --json prints."""
    try:
        with open(path) as f:
            records = json.load(f)
        return {(PEER_NAMES.get(r["workload"], r["workload"]), r["dtype"]): float(r["median_s"]) for r in records}
    except FileNotFoundError:
        raise MinicapError(f"--peer: no file {path}; write it with torch_peer.py --json > {path}") from None
    except (ValueError, TypeError, KeyError) as err:
        raise MinicapError(f"--peer: {path} is not the JSON list torch_peer.py --json prints ({err})") from None


def _print_ratios(results):
    by_key = {(r["workload"], r["dtype"], r["backend"]): r for r in results}
    lines = []
    for (w, d, b), r in by_key.items():
        if b != "numba" or w == CEILING:   # the gemm rows run the same NumPy product under both
            continue
        parts = []
        if (w, d, "numpy") in by_key:
            parts.append(f"numpy / numba = {by_key[(w, d, 'numpy')]['median_s'] / r['median_s']:.2f}x")
        if "peer_ratio" in r:
            parts.append(f"numba / peer = {r['peer_ratio']:.2f} (peer {r['peer_median_s'] * 1e3:.1f} ms)")
        if parts:
            lines.append(f"  {w:<22}{d:<9} " + ",  ".join(parts))
    if lines:
        print("ratios:")
        print("\n".join(lines))
