"""Time from enabling the extension to its first panel drawn, in a headless Blender.

    python first_panel.py EXTENSION_DIR

Run by any Python with ``bpy`` (a stock Blender's: it imports nothing of ``dphm`` itself);
``dphm bench --suite blender`` runs it in each stock venv. EXTENSION_DIR is linked as a
local extension repository's ``dphm``; the clock runs from ``addon_utils.enable`` to the
end of drawing every DPHM panel through the layout stand-in. Also reports whether torch
or the engine were touched (neither may be). Prints ``DPHM-RESULT {json}``.
"""

import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bpy  # noqa: E402
from layout import RecordingLayout  # noqa: E402

addon_utils = __import__("addon_utils")


def main(extension_dir: str) -> dict:
    repo = Path(tempfile.mkdtemp(prefix="dphm_bench_repo_"))
    (repo / "dphm").symlink_to(Path(extension_dir).resolve(), target_is_directory=True)
    entry = bpy.context.preferences.extensions.repos.new(
        name="DPHM bench", module="dphm_bench", custom_directory=str(repo), source="USER"
    )
    name = f"bl_ext.{entry.module}.dphm"
    t0 = time.perf_counter()
    errors = []
    addon_utils.enable(name, default_set=True, handle_error=errors.append)
    enabled = time.perf_counter()
    drawn = 0
    for cls in sys.modules[name + ".dphm_blender"]._classes() if not errors else ():
        if issubclass(cls, bpy.types.Panel) and cls.poll(bpy.context):
            cls.draw(SimpleNamespace(layout=RecordingLayout([])), bpy.context)
            drawn += 1
    done = time.perf_counter()
    engine = sys.modules.get(name + ".dphm_blender.engine")
    result = {
        "blender": bpy.app.version_string,
        "python": sys.version.split()[0],
        "errors": [repr(e) for e in errors],
        "enable_s": enabled - t0,
        "first_panel_s": done - t0,
        "panels": drawn,
        "torch_imported": "torch" in sys.modules,
        "engine_started": bool(engine and engine._engine is not None),
    }
    addon_utils.disable(name, default_set=True)
    return result


if __name__ == "__main__":
    print("DPHM-RESULT " + json.dumps(main(sys.argv[1])), flush=True)
