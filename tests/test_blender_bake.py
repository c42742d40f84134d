"""Bake writers (dphm_blender/bake.py) in headless Blender against the core's own bake.

A 5-frame take of the shipped model's codebook codes is baked here (torch); each Blender
scenario (tests/blender_scripts/bake_scene.py) runs in a fresh subprocess that reads the
bake, writes every form at frame 10 on, and reports what Blender evaluates.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from dphm.core import blender_bench
from dphm.core.capture.simulate import KINECT_NFOV
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.tracking.bake import bake_take, frame_meshes, to_camera, write_bake
from dphm.core.tracking.export import read_pc2
from PIL import Image
from scipy.spatial.transform import Rotation
from test_extension import ROOT, blender_env, needs_bpy

pytestmark = needs_bpy
SCRIPT = ROOT / "tests" / "blender_scripts" / "bake_scene.py"
MARK = "DPHM-RESULT "
T, FIRST_FRAME, RENDER_FRAME = 5, 10, 12
TOL = 1e-5


def codebook_take(content, frames: int, identity: int = 0) -> dict:
    """A take of the checkpoint's codebook codes: one identity, the first expressions, a
    head turning before the Kinect."""
    books = content["codebooks"]
    n = frames
    angles = np.c_[np.linspace(-0.2, 0.2, n), np.linspace(0.3, -0.3, n), np.zeros(n)]
    return {
        "z_id": books["id"][identity].numpy(),
        "z_exp": books["exp"][:n].numpy(),
        "R": Rotation.from_euler("xyz", angles).as_matrix(),
        "t": np.c_[np.linspace(-0.05, 0.05, n), np.zeros(n), np.full(n, 0.6)],
        "s": np.full(n, 0.2),
        "timestamps": np.arange(n) / 30.0,
        "arkit": np.random.default_rng(0).uniform(0, 1, (n, 52)),
        "intrinsics": KINECT_NFOV.to_dict(),
        "source": "test",
    }


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    from dphm.core.model.head import load_head

    model, content = load_head()
    take = codebook_take(content, T)
    bake = bake_take(model, content, take, resolution=64)
    meshes = list(frame_meshes(model, take, resolution=64))
    out = tmp_path_factory.mktemp("bake")
    write_bake(out / "bake.npz", bake)
    with open(out / "meshes.npz", "wb") as fh:
        np.savez(fh, **{f"v{i}": v for i, (v, _) in enumerate(meshes)},
                 **{f"f{i}": f for i, (_, f) in enumerate(meshes)})  # fmt: skip
    return bake, meshes, out


def scenario(mode: str, out) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), mode, out / "bake.npz", out / "meshes.npz", out],
        capture_output=True, text=True, timeout=180, env=blender_env(out), cwd=out,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(lines[-1][len(MARK) :])
    assert "exception" not in result, result["exception"]
    return result


@pytest.fixture(scope="module")
def built(baked):
    return scenario("build", baked[2])


def test_frame_shape_keys_equal_the_core_vertices(baked, built):
    bake = baked[0]
    assert built["frame_keys"] == T
    assert built["key_coord_err"] < TOL  # the stored key coordinates (world, geometry motion)
    for form in ("keys_object", "keys_geometry", "keys_none"):
        assert built["eval_err"][form] < TOL, form
    assert built["residual_mm"] == pytest.approx(float(bake["residual_mm"].max()), rel=1e-6)
    assert np.ptp(bake["frames"], axis=0).max() > 100 * TOL  # frames differ: the check bites


def test_each_frame_key_peaks_on_its_frame(built):
    expected = [[[f - 1, 0.0], [f, 1.0], [f + 1, 0.0]] for f in FIRST_FRAME + np.arange(T)]
    assert built["fcurve_frames"] == expected
    assert {"Keys object", "Keys object_frames", "ARKit head_arkit"} <= set(built["actions"])


def test_arkit_keys_play_the_take_weights(built):
    assert built["arkit_key_names"] == list(ARKIT_NAMES)
    assert built["arkit_value_err"] < 1e-6
    assert built["eval_err"]["arkit"] < TOL


def test_mesh_cache_plays_the_pc2(baked, built):
    bake, _, out = baked
    assert built["cache"] == ["PC2", "//head.pc2", str(out / "head.pc2")]
    np.testing.assert_array_equal(read_pc2(out / "head.pc2"), bake["frames"])
    assert read_pc2(out / "world.pc2").shape == bake["frames"].shape
    assert built["eval_err"]["cache_object"] < TOL
    assert built["eval_err"]["cache_geometry"] < TOL


def test_alembic_reimports_with_per_frame_topology(baked, built):
    _, meshes, out = baked
    counts = [len(v) for v, _ in meshes]
    assert len(set(counts)) > 1  # the topology does vary
    assert built["alembic_counts"] == counts
    assert built["names"]["alembic"] == "Alembic head"  # not Alembic's "Alembic_head"
    assert built["alembic_modifier"] == ["MESH_SEQUENCE_CACHE", str(out / "head.abc")]
    assert built["eval_err"]["alembic"] < TOL
    assert not list(out.glob("*.partial*"))


def test_bad_input_is_one_clear_error(built):
    assert built["errors"] == [
        "rigid motion 'sideways' is not one of object, geometry, none",
        "the bake holds no ARKit shapes: bake the take with arkit_shapes=True",
    ]


def test_cycles_render_shows_the_head(baked, built):
    bake = baked[0]
    alpha = np.asarray(Image.open(built["render"]))[..., 3]
    h, w = alpha.shape
    intr = KINECT_NFOV.to_dict()
    centre = to_camera(bake, RENDER_FRAME - FIRST_FRAME).mean(0)
    u = (intr["fx"] * centre[0] / centre[2] + intr["cx"] + 0.5) * w / intr["width"] - 0.5
    v = (intr["fy"] * centre[1] / centre[2] + intr["cy"] + 0.5) * h / intr["height"] - 0.5
    assert alpha[round(v) - 1 : round(v) + 2, round(u) - 1 : round(u) + 2].min() > 200
    assert alpha[[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0
    assert 50 < (alpha > 0).sum() < alpha.size / 2


def test_saved_blend_reloads_intact(baked, built):
    reloaded = scenario("reload", baked[2])
    for key in ("alembic_counts", "arkit_key_names", "frame_keys", "cache", "alembic_modifier",
                "actions"):  # fmt: skip
        assert reloaded[key] == built[key], key
    assert max(reloaded["eval_err"].values()) < TOL
    assert reloaded["arkit_value_err"] < 1e-6


def test_blender_bench_reports_every_writer():
    row = blender_bench.child("dphm_blender.scripts.bench", "--frames", 4, "--vertices", 300,
                              "--repeats", 1, "--alembic-frames", 3)  # fmt: skip
    assert row["frames"] == 4 and 250 < row["vertices"] < 350
    for col in ("bake_shapekeys_s", "bake_pc2_s", "bake_arkit_s", "bake_alembic_s"):
        assert row[col] > 0, col
