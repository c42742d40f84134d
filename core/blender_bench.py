"""``dphm bench --suite blender``: the Blender side, timed in child processes that have bpy.

Row ``bake``: the bake writers (``dphm_blender/scripts/bench.py``) on a synthetic bake of 1,000
frames x 25,000 vertices, median of 3 runs: per-frame shape keys, PC2 + Mesh Cache, the
ARKit-52 shape-key set, and 30 frames of varying-topology meshes through Alembic (info).
Row ``track_ui`` (``dphm_blender/scripts/ui_bench.py``): the longest main-thread step of the Track
operator while the engine tracks a simulated take (30 frames, balanced).
"""

import importlib.util
import json
import subprocess
import sys

from .errors import DPHMError

TARGETS = {
    "bake_shapekeys_s": ("<=", 10.0),
    "bake_pc2_s": ("<=", 3.0),
    "ui_max_block_s": ("<=", 0.2),
}
MARK = "DPHM-RESULT "


def child(module: str, *args, timeout: float = 1800) -> dict:
    """Run ``python -m <package>.<module> ARGS`` and return its ``DPHM-RESULT`` JSON."""
    if importlib.util.find_spec("bpy") is None:
        raise DPHMError("the blender suite needs bpy, which is not installed (pip install bpy)")
    root = __package__.rpartition(".")[0]
    cmd = [sys.executable, "-m", f"{root}.{module}", *map(str, args)]
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


def run(args) -> list[dict]:
    return [bake_row(args), ui_row(args)]
