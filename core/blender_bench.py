"""``dphm bench --suite blender``: the Blender side, timed in child processes that have bpy.

Row ``bake``: the bake writers (``dphm_blender/scripts/bench.py``) on a synthetic bake of 1,000
frames x 25,000 vertices, median of 3 runs: per-frame shape keys, PC2 + Mesh Cache, the
ARKit-52 shape-key set, and 30 frames of varying-topology meshes through Alembic (info).
Row ``track_ui`` (``dphm_blender/scripts/ui_bench.py``): the longest main-thread step of
the Track operator while the engine tracks a simulated take (30 frames, balanced).
Rows ``first_panel`` (``dphm_blender/scripts/first_panel.py``), one per stock Blender venv
(``.venvs/bpy-*``, made by ``tools/blender_matrix.py``: bpy and nothing else): seconds from
enabling the extension to every panel drawn, median of 3 fresh processes; torch and the
engine must stay untouched.
"""

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

from .errors import DPHMError

TARGETS = {
    "bake_shapekeys_s": ("<=", 10.0),
    "bake_pc2_s": ("<=", 3.0),
    "ui_max_block_s": ("<=", 0.2),
    "first_panel_s": ("<=", 0.5),
}
ROOT = Path(__file__).resolve().parents[1]
STOCK_VENVS = ROOT / ".venvs"
MARK = "DPHM-RESULT "


def child(module: str, *args, timeout: float = 1800, python: str | None = None) -> dict:
    """Run ``python -m <package>.<module> ARGS`` (or, with another ``python``, the module's
    file) and return its ``DPHM-RESULT`` JSON."""
    if python is None and importlib.util.find_spec("bpy") is None:
        raise DPHMError("the blender suite needs bpy, which is not installed (pip install bpy)")
    root = __package__.rpartition(".")[0]
    if python is None:
        cmd = [sys.executable, "-m", f"{root}.{module}", *map(str, args)]
    else:
        cmd = [python, str(ROOT.joinpath(*module.split(".")).with_suffix(".py")), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise DPHMError(f"the Blender benchmark {module} failed:\n{tail}")
    return json.loads(lines[-1][len(MARK) :])


def bake_row(args) -> dict:
    quick = getattr(args, "quick", False)
    frames, repeats = (100, 1) if quick else (1000, 3)
    row = child("dphm_blender.scripts.bench", "--frames", frames, "--repeats", repeats)
    return {"case": "bake", **row}


def ui_row(args) -> dict:
    """Tracking a simulated take in the engine while Blender's timer steps are timed."""
    frames = 10 if getattr(args, "quick", False) else 30
    row = child("dphm_blender.scripts.ui_bench", "--frames", frames, "--quality", "balanced")
    if not row.pop("finished"):
        raise DPHMError("the Blender benchmark ui_bench: tracking did not finish")
    return {"case": "track_ui", **row}


def stock_pythons() -> list[Path]:
    """The stock Blender venvs' interpreters, oldest release first."""

    def release(p: Path):
        return tuple(int(x) for x in p.parents[1].name.removeprefix("bpy-").split("."))

    return sorted(STOCK_VENVS.glob("bpy-*/bin/python"), key=release)


def first_panel_rows(args) -> list[dict]:
    pythons = stock_pythons()
    if not pythons:
        raise DPHMError(f"no stock Blender venvs in {STOCK_VENVS}: python tools/blender_matrix.py "
                        "create (make blender-matrix)")  # fmt: skip
    rows = []
    for python in pythons:
        runs = [child("dphm_blender.scripts.first_panel", ROOT, python=str(python), timeout=300)
                for _ in range(1 if getattr(args, "quick", False) else 3)]  # fmt: skip
        if runs[0]["errors"] or runs[0]["panels"] == 0:
            raise DPHMError(f"bpy {runs[0]['blender']}: the extension did not enable: "
                            f"{runs[0]['errors']}")  # fmt: skip
        rows.append({
            "case": "first_panel",
            "blender": runs[0]["blender"],
            "python": runs[0]["python"],
            "enable_s": statistics.median(r["enable_s"] for r in runs),
            "first_panel_s": statistics.median(r["first_panel_s"] for r in runs),
            "torch_or_engine": any(r["torch_imported"] or r["engine_started"] for r in runs),
        })  # fmt: skip
    return rows


def run(args) -> list[dict]:
    return [bake_row(args), ui_row(args), *first_panel_rows(args)]
