"""``dphm bench``: run a benchmark suite, print its table against the targets, write JSON.

Each suite lives in the module that owns the work (``SUITES``) and exposes
``run(args) -> list[dict]`` (one row per method and case) and ``TARGETS``
(column -> (op, value), op one of "<=", ">=").
"""

import importlib
import json
import os
import platform
import sys
from pathlib import Path

from .errors import DPHMError

# name -> module (relative to core)
SUITES = {
    "model": ".model.bench",
    "prior": ".prior.bench",
    "capture": ".capture.bench",
    "tracking": ".tracking.bench",
    "blender": ".blender_bench",
    "wild": ".tracking.wild_bench",
    "ood": ".tracking.ood_bench",
    "appearance": ".appearance.bench",
}


def machine() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def check(value, op: str, target) -> bool:
    return value <= target if op == "<=" else value >= target


def format_table(rows: list[dict], targets: dict) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    target_row = [f"{targets[c][0]} {targets[c][1]}" if c in targets else "" for c in cols]
    widths = [
        max(len(c), len(t), *(len(x[i]) for x in cells))
        for i, (c, t) in enumerate(zip(cols, target_row, strict=True))
    ]

    def line(vals):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)) + " |"

    out = [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    if any(target_row):
        out.append(
            line(
                ["target" if i == 0 and not target_row[0] else t for i, t in enumerate(target_row)]
            )
        )
    return "\n".join(out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def run_suite(name: str, args) -> dict:
    """One suite's rows; torch uses the 2 cores the targets assume, or $OMP_NUM_THREADS
    (one thread per job when several share the machine: more threads than cores stall)."""
    module = importlib.import_module(SUITES[name], __package__)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 2)))
    rows = module.run(args)
    return {"suite": name, "machine": machine(), "targets": module.TARGETS, "rows": rows}


def run(args) -> int:
    names = list(SUITES) if args.suite == "all" else [args.suite]
    if not names:
        raise DPHMError("no benchmark suites are available yet")
    results = []
    for name in names:
        result = run_suite(name, args)
        print(f"\nsuite {name}")
        print(format_table(result["rows"], result["targets"]))
        results.append(result)
    if args.json:
        out = Path(args.json)
        payload = results[0] if len(results) == 1 else {"suites": results}
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(json.dumps(payload, indent=2, default=float))
        os.replace(tmp, out)
        print(f"\nwrote {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark suites of BENCHMARKS.md")
    p.add_argument("--suite", default="all", choices=[*SUITES, "all"])
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repeats and cases (smoke run)")
    p.set_defaults(func=run)
