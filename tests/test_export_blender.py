"""``dphm export --to blend|abc``: a take written through a headless Blender child process."""

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
from dphm.core.capture.simulate import KINECT_NFOV
from dphm.core.model.head import load_head
from dphm.core.tracking.take import write_take

pytestmark = pytest.mark.skipif(find_spec("bpy") is None, reason="bpy (pip bpy==5.0.1) missing")
CHECK = """
import json, sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
head = bpy.data.objects["DPHM head"]
arkit = bpy.data.objects["DPHM ARKit head"]
before = set(bpy.data.objects)
bpy.ops.wm.alembic_import(filepath=sys.argv[2], as_background_job=False)
(abc,) = [o for o in bpy.data.objects if o not in before]
counts = []
for f in range(3):
    bpy.context.scene.frame_set(f)
    counts.append(len(abc.evaluated_get(bpy.context.evaluated_depsgraph_get()).data.vertices))
print("DPHM-RESULT " + json.dumps({
    "frame_keys": len(head.data.shape_keys.key_blocks) - 1,
    "arkit_keys": len(arkit.data.shape_keys.key_blocks) - 1,
    "camera": bpy.context.scene.camera is not None,
    "abc_modifiers": [m.type for m in abc.modifiers],
    "abc_counts": counts,
}))
"""


def test_export_blend_and_alembic(tmp_path):
    _, content = load_head()
    books = content["codebooks"]
    T = 3
    R = np.stack([np.diag([1.0, -1.0, -1.0])] * T)  # facing the camera
    write_take(
        tmp_path / "take.npz",
        model_sha256=content["sha256"],
        z_id=books["id"][0].numpy(),
        z_exp=books["exp"][:T].numpy(),
        R=R,
        t=np.tile([0.0, 0.0, 0.6], (T, 1)),
        s=np.full(T, 0.2),
        timestamps=np.arange(T) / 30,
        arkit=np.zeros((T, 52)),
        intrinsics=KINECT_NFOV.to_dict(),
        source="test",
        quality="balanced",
        fit_error_mm=np.zeros(T),
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", BLENDER_USER_RESOURCES=str(tmp_path / "bu"))
    for to in ("blend", "abc"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dphm",
                "export",
                str(tmp_path / "take.npz"),
                "--to",
                to,
                "--out",
                str(tmp_path / f"take.{to}"),
                "--resolution",
                "40",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "take.blend"), str(tmp_path / "take.abc")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("DPHM-RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    r = json.loads(line[0][len("DPHM-RESULT ") :])
    assert r["frame_keys"] == T and r["arkit_keys"] == 52 and r["camera"]
    assert "MESH_SEQUENCE_CACHE" in r["abc_modifiers"]
    assert min(r["abc_counts"]) > 500
