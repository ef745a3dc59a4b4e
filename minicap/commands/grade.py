"""`minicap grade SUBMISSION... --assignment NAME --out grades.csv`: grade a class.

Each submission (a folder or a .zip) runs in its own process in a fresh temporary copy, with time,
memory and output limits, on hidden inputs seeded per student; the expected answers are computed in
this process from the reference (minicap/assignments/grade.py says how). One CSV row per submission
(submission, total, max, each test's points, feedback); --json also writes the details beside it.
A submission that crashes, hangs, prints megabytes or exits early gets a row that says so.
"""
import json
from pathlib import Path

from minicap.commands.runs import int_range, positive_float, writable_file

MAX_SEED_TABLE_BYTES = 4 * 2 ** 20


def configure(parser):
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help="a student's folder or .zip (the whole assignment folder, or just the edited files); "
                             "the folder or zip name is the student id")
    parser.add_argument("--assignment", required=True, metavar="NAME", help="see `minicap assignment list`")
    parser.add_argument("--out", required=True, type=writable_file(".csv"), metavar="GRADES.csv",
                        help="the grades: one row per submission")
    parser.add_argument("--json", action="store_true", help="also write the details to GRADES.json")
    parser.add_argument("--workers", type=int_range(1, 256), default=1,
                        help="submissions graded at the same time on this machine (default 1)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                        help="grade on this Dask distributed cluster instead (tcp://host:8786; needs the "
                             "'dask' extra, and workers that see the submission paths)")
    parser.add_argument("--course", default="minicap", metavar="NAME",
                        help="the course, part of each student's seed (default: minicap)")
    parser.add_argument("--seeds", metavar="FILE.json", default=None,
                        help='override table of seeds: {"student id": seed, ...}')
    parser.add_argument("--time-limit", type=positive_float, default=120.0, metavar="SECONDS",
                        help="per submission, wall clock (default 120)")
    parser.add_argument("--test-time-limit", type=positive_float, default=10.0, metavar="SECONDS",
                        help="per test (default 10)")
    parser.add_argument("--memory-mb", type=int_range(256, 1 << 20), default=1024,
                        help="address-space limit of a submission's process, MB (default 1024)")
    parser.add_argument("--output-kb", type=int_range(16, 1 << 20), default=1024,
                        help="the most a submission may print (and write per file), KB (default 1024)")


def _read_seeds(path):
    from minicap.errors import MinicapError
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_SEED_TABLE_BYTES:
        raise MinicapError(f"{path}: missing, or larger than {MAX_SEED_TABLE_BYTES // 2 ** 20} MB")
    try:
        table = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise MinicapError(f"{path}: not JSON ({err})") from None
    if not isinstance(table, dict) or not all(isinstance(v, int) and 0 <= v < 2 ** 31 for v in table.values()):
        raise MinicapError(f'{path}: expected {{"student id": seed}} with integer seeds from 0 to 2**31 - 1')
    return table


def run(args):
    from minicap.assignments import manifest
    from minicap.assignments.grade import Limits, grade_all, write_csv, write_json
    m = manifest(args.assignment)
    seeds = _read_seeds(args.seeds) if args.seeds else None
    limits = Limits(seconds=args.time_limit, test_seconds=args.test_time_limit, memory_mb=args.memory_mb,
                    output_kb=args.output_kb)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = grade_all(args.submissions, args.assignment, course=args.course, seed_overrides=seeds, limits=limits,
                     workers=args.workers, dask_scheduler=args.dask_scheduler)
    write_csv(rows, m, args.out)
    for row in rows:
        flag = "" if row["status"] == "ok" else f"  [{row['status']}]"
        print(f"{row['student']:24s} {row['total']:g}/{row['max']:g}{flag}")
    print(f"{len(rows)} submissions graded; grades in {args.out}")
    if args.json:
        json_path = Path(args.out).with_suffix(".json")
        write_json(rows, m, json_path, limits)
        print(f"details in {json_path}")
    return 0
