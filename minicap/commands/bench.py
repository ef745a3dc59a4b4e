"""`minicap bench`: time the hot workloads with the numpy and numba backends, print a table or JSON.

    minicap bench                                   every workload, both backends, float32 and float64
    minicap bench --workload lstm_seq --backend numba --dtype float32 --repeat 21
    minicap bench --json                            a JSON list of result objects

The workloads and the timing method are in minicap/bench.py.
"""
import argparse
import json

from minicap import backend
from minicap.bench import DTYPES, WORKLOADS, load_workload, measure_interleaved
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
                             "compile_s, min_s, repeat, loss")
    parser.add_argument("--peer", metavar="FILE",
                        help="the JSON list that torch_peer.py --json printed: add its median and the ratio "
                             "numba / peer to the table (peer_median_s and peer_ratio in --json)")
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # tiny sizes, for the tests


def run(args):
    workloads = args.workload or list(WORKLOADS)
    for name in workloads:
        load_workload(name)  # unknown names fail before anything is timed
    if args.repeat < 1:
        raise MinicapError(f"--repeat must be at least 1, got {args.repeat}")
    backends, dtypes = args.backend or list(backend.BACKENDS), args.dtype or list(DTYPES)
    peer = load_peer(args.peer) if args.peer else {}
    results = []
    if not args.json:
        print(f"{'workload':<22}{'backend':<9}{'dtype':<9}{'median_ms':>11}{'min_ms':>10}{'peak_mb':>10}{'compile_s':>11}")
    for name in workloads:
        configs = [(backend_name, dtype) for dtype in dtypes for backend_name in backends]
        for result in measure_interleaved(name, configs, repeat=args.repeat, quick=args.quick):
            if (name, result["dtype"]) in peer:
                result["peer_median_s"] = peer[(name, result["dtype"])]
                result["peer_ratio"] = result["median_s"] / result["peer_median_s"]
            results.append(result)
            if not args.json:
                print(f"{name:<22}{result['backend']:<9}{result['dtype']:<9}{result['median_s'] * 1e3:>11.2f}"
                      f"{result['min_s'] * 1e3:>10.2f}{result['peak_mb']:>10.1f}{result['compile_s']:>11.2f}",
                      flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        _print_ratios(results)
    return 0


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
        if b != "numba":
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
