"""``dphm demo`` end to end (simulate, track, bake, Blender) on a tiny untrained checkpoint
(no ICT-FaceKit data needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from dphm.core.capture.folder import CaptureFolder
from dphm.core.data.arkit import ICT_EXPRESSION_NAMES
from dphm.core.data.ict import default_path, load_ict
from dphm.core.model import checkpoint
from dphm.core.model.head import HeadModel, ModelConfig
from dphm.core.tracking.bake import read_bake, to_camera
from dphm.core.tracking.take import read_take
from PIL import Image

HERE = Path(__file__).resolve().parent
CHECK = HERE / "blender_scripts" / "demo_check.py"
CAMERA_TO_WORLD = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])


def env_for(tmp: Path, weights: Path) -> dict:
    env = dict(os.environ, DPHM_WEIGHTS=str(weights), OMP_NUM_THREADS="1")
    env["BLENDER_USER_RESOURCES"] = str(tmp / "blender_user")
    env["HOME"] = str(tmp / "home")
    env["XDG_CONFIG_HOME"] = str(tmp / "home" / ".config")
    env["XDG_CACHE_HOME"] = str(tmp / "home" / ".cache")
    return env


def tiny_checkpoint(folder: Path) -> Path:
    """Untrained weights: the identity SDF starts as a sphere of radius 0.6; a small random
    deformation; three expression codes trained on nothing, labelled neutral, smile, blink."""
    torch.manual_seed(0)
    anchors = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.0, 0.5, 0.4], [0.0, -0.2, 0.7]]
    cfg = ModelConfig(mirror=[1, 0, -1, -1], mean_anchors=anchors, anchor_vertices=[1, 2, 3, 4])
    model = HeadModel(cfg)
    with torch.no_grad():
        model.expression.out.weight.normal_(0.0, 0.01)
    exp_w = torch.zeros(3, 57)
    for row, names in ((1, ("mouthSmile_L", "mouthSmile_R")), (2, ("eyeBlink_L", "eyeBlink_R"))):
        exp_w[row, [ICT_EXPRESSION_NAMES.index(n) for n in names]] = 1.0
    books = {"id": torch.zeros(2, 64), "exp": torch.randn(3, 64), "exp_weights": exp_w}
    path = folder / "head_model.pt"
    content = {"config": cfg.to_dict(), "state_dict": model.state_dict(), "codebooks": books}
    checkpoint.save(path, "head_model", content, half=False)
    return path


@pytest.mark.blender
@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    weights = tmp_path / "weights"
    tiny_checkpoint(weights)
    out = tmp_path / "demo"
    env = env_for(tmp_path, weights)
    args = [
        "--out",
        str(out),
        "--frames",
        "6",
        "--resolution",
        "48",
        "--renders",
        "2",
        "--gt-meshes",
    ]
    args += ["--samples", "2", "--threads", "1", "--quality", "preview"]
    proc = subprocess.run(
        [sys.executable, "-m", "dphm", "demo", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    files = summary["files"]
    assert summary["frames"] == 6 and summary["tracked"] is True
    assert summary["inversion_residual_mm_max"] < 0.01
    tracking = summary["tracking"]
    assert tracking["frames_without_head"] == 0 and tracking["cd_l1_mm_head"] < 20.0
    for key in ("blend", "capture", "performance", "take", "bake", "summary"):
        assert Path(files[key]).exists(), key
    assert len(files["renders"]) == 2
    for png in files["renders"]:
        pixels = np.asarray(Image.open(png), np.float32)
        assert pixels.shape[:2] == (288, 320) and pixels[..., :3].var() > 0

    anim = np.load(out / "performance.npz")
    bake = read_bake(files["bake"])
    assert len(read_take(files["take"])["z_exp"]) == 6
    take = CaptureFolder(out / "capture")
    assert take.length == 6 and take.intrinsics.fx == 504.0
    frame0 = take[0]
    truth = [
        np.loadtxt(
            out / "capture" / "ground_truth" / f"{i:06d}.obj",
            usecols=(1, 2, 3),
            comments=("#", "f"),
        )
        for i in (0, 4)
    ]
    check = subprocess.run(
        [sys.executable, str(CHECK), files["blend"], "0", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    line = [s for s in check.stdout.splitlines() if s.startswith("DPHM-RESULT ")]
    assert check.returncode == 0 and line, check.stdout[-3000:] + check.stderr[-3000:]
    seen = json.loads(line[0][len("DPHM-RESULT ") :])
    assert seen["shape_keys"] == 6 and seen["frame_range"] == [0, 5]
    for frame, gt in zip(("0", "4"), truth, strict=True):
        local = np.array(seen["frames"][frame]["local"])
        np.testing.assert_allclose(local, bake["frames"][int(frame)], atol=1e-5)
        world = np.array(seen["frames"][frame]["world"])
        np.testing.assert_allclose(
            world, to_camera(bake, int(frame)) @ CAMERA_TO_WORLD.T, atol=1e-5
        )
        # the tracked head lies where the performer was: centroids within 2 cm
        assert np.linalg.norm(world.mean(0) - (gt @ CAMERA_TO_WORLD.T).mean(0)) < 0.02
    assert not np.allclose(anim["posed"][0], anim["posed"][4], atol=1e-4)  # it does move
    cam = seen["camera"]
    for k in ("fx", "fy", "cx", "cy", "width", "height"):
        assert cam[k] == pytest.approx(getattr(take.intrinsics, k), abs=1e-3), k
    assert seen["points"] == int(frame0.valid.sum()) > 100


def test_demo_without_checkpoint_says_so_in_one_line(tmp_path):
    env = env_for(tmp_path, tmp_path / "nothing")
    proc = subprocess.run(
        [sys.executable, "-m", "dphm", "demo", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "nothing" / "head_model.pt") in lines[0], lines


@pytest.mark.skipif(default_path() is None, reason="ICT-FaceKit data is absent")
def test_ict_expression_names_match_the_data():
    assert tuple(load_ict().expression_names) == ICT_EXPRESSION_NAMES
