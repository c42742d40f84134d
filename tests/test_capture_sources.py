"""Capture folders, Record3D, RealSense conversion, the opener and the convert command."""

import json
import shutil
import zipfile

import numpy as np
import pytest
from dphm.core.capture import realsense
from dphm.core.capture.folder import CaptureFolder, FolderWriter
from dphm.core.capture.frame import DepthFrame, Intrinsics, backproject
from dphm.core.capture.opener import open_source
from dphm.core.capture.warn import CaptureWarning
from dphm.core.cli import main
from dphm.core.errors import DPHMError
from PIL import Image

INTR = Intrinsics(500.0, 501.0, 80.5, 60.25, 160, 120, (0.1, -0.02, 0.001, 0.0, 0.0))


def depth_frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mm = rng.integers(500, 900, (120, 160)).astype(np.uint16)
        mm[:5] = 0
        out.append(DepthFrame(mm.astype(np.float32) * np.float32(0.001), INTR, i / 30 + 0.01, i))
    return out


def test_folder_round_trip_exact(tmp_path):
    frames = depth_frames()
    colour = Intrinsics(600, 600, 10, 10, 20, 10)
    frames[0].color = np.full((10, 20, 3), 7, np.uint8)
    frames[0].color_intrinsics, frames[0].depth_to_color = colour, np.eye(4)
    with FolderWriter(tmp_path / "cap", INTR, 30) as w:
        for f in frames:
            w.write(f)
    meta = json.loads((tmp_path / "cap" / "intrinsics.json").read_text())
    assert meta["depth_scale"] == 0.001 and meta["fps"] == 30 and meta["width"] == 160
    src = open_source(tmp_path / "cap")
    assert isinstance(src, CaptureFolder) and len(src) == 3 and src.intrinsics == INTR
    for f, g in zip(src, frames, strict=True):
        assert np.array_equal(f.depth, g.depth) and f.timestamp == pytest.approx(g.timestamp)
    assert src[0].color.shape == (10, 20, 3) and src[0].color_intrinsics == colour
    raw = np.asarray(Image.open(tmp_path / "cap" / "depth" / "000001.png"))
    assert raw.dtype == np.uint16 and np.array_equal(raw, np.round(frames[1].depth * 1000))


def test_backprojection_contract():
    depth = np.zeros((120, 160), np.float32)
    depth[60, 100] = 2.0
    p = backproject(depth, INTR)
    assert p.tolist() == [[(100 - 80.5) * 2 / 500, (60 - 60.25) * 2 / 501, 2.0]]


def _folder(tmp_path, n=3):
    root = tmp_path / "cap"
    with FolderWriter(root, INTR, 30) as w:
        for f in depth_frames(n):
            w.write(f)
    return root


def test_folder_gaps_warn_and_keep_frame_times(tmp_path):
    root = _folder(tmp_path, 4)
    (root / "timestamps.txt").unlink(missing_ok=True)
    (root / "depth" / "000002.png").unlink()
    with pytest.warns(CaptureWarning, match=r"depth: frame numbering has gaps \(missing 2\)"):
        src = CaptureFolder(root)
    assert len(src) == 3 and src[2].timestamp == pytest.approx(3 / 30)


def test_folder_mixed_sizes_and_units(tmp_path):
    root = _folder(tmp_path)
    Image.fromarray(np.full((10, 10), 600, np.uint16)).save(root / "depth" / "000001.png")
    with pytest.raises(DPHMError, match="000001.png: image is 10x10, intrinsics.json says 160x120"):
        list(CaptureFolder(root))
    meta = json.loads((root / "intrinsics.json").read_text())
    meta["depth_scale"] = 1.0  # millimetre values read as metres
    (root / "intrinsics.json").write_text(json.dumps(meta))
    with pytest.raises(DPHMError, match="000000.png: depth values look like millimetres"):
        CaptureFolder(root)[0]


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(DPHMError, match="empty: not a capture folder"):
        (tmp_path / "empty").mkdir()
        CaptureFolder(tmp_path / "empty")
    with pytest.raises(DPHMError, match="nothing.xyz: no such file"):
        open_source(tmp_path / "nothing.xyz")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DPHMError, match="a.txt: unknown depth format"):
        open_source(tmp_path / "a.txt")


def test_record3d(tmp_path):
    lzfse = pytest.importorskip("lzfse", reason="lzfse (pip install lzfse) is absent")
    depth = np.random.default_rng(1).uniform(0.3, 0.9, (96, 72)).astype(np.float32)
    K = [[900.0, 0, 0], [0, 900.0, 0], [359.5, 479.5, 1]]  # column-major, for 720 x 960
    meta = {"K": sum(K, []), "w": 720, "h": 960, "dw": 72, "dh": 96, "fps": 60}
    path = tmp_path / "t.r3d"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata", json.dumps(meta))
        for i in range(2):
            z.writestr(f"rgbd/{i}.depth", lzfse.compress((depth + i).tobytes()))
    src = open_source(path)
    assert len(src) == 2 and src.fps == 60
    i = src.intrinsics
    assert (i.fx, i.fy, i.cx, i.cy, i.width, i.height) == pytest.approx(
        (90, 90, 35.5, 47.5, 72, 96)
    )
    assert np.array_equal(src[1].depth, depth + 1) and src[1].timestamp == pytest.approx(1 / 60)


class FakeRSFrame:
    def __init__(self, data, ms):
        self.data, self.ms = data, ms

    def get_data(self):
        return self.data

    def get_timestamp(self):
        return self.ms


class FakeRSIntrinsics:
    fx, fy, ppx, ppy, width, height, coeffs = 380.0, 381.0, 320.2, 239.8, 640, 480, [0] * 5


def test_realsense_frame_conversion():
    intr = realsense.intrinsics_of(FakeRSIntrinsics())
    assert intr == Intrinsics(380.0, 381.0, 320.2, 239.8, 640, 480)
    raw = np.full((480, 640), 2400, np.uint16)  # D400 units of 0.25 mm -> 0.6 m
    f = realsense.to_frame(FakeRSFrame(raw, 1500.0), 0.00025, intr, 0, "test.bag")
    assert f.depth[0, 0] == pytest.approx(0.6) and f.timestamp == 1.5
    with pytest.raises(DPHMError, match="test.bag: depth values look like millimetres"):
        realsense.to_frame(FakeRSFrame(raw, 0.0), 1.0, intr, 0, "test.bag")


def test_convert_command(tmp_path, capsys):
    root = _folder(tmp_path, 4)
    assert main(["convert", str(root), "--out", str(tmp_path / "out"), "--frames", "1:3"]) == 0
    out = CaptureFolder(tmp_path / "out")
    assert len(out) == 2 and np.array_equal(out[0].depth, CaptureFolder(root)[1].depth)
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "missing.mkv"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"dphm convert: error: {tmp_path / 'missing.mkv'}: no such file or folder "
        "(nor a camera: live:k4a, live:orbbec, live:realsense, live:record3d)"
    ]
    shutil.rmtree(tmp_path / "out")


def test_live_without_devices_is_clear():
    from dphm.core.capture.live import list_devices

    assert isinstance(list_devices(), list)
    if not list_devices():
        with pytest.raises(DPHMError, match="(no Azure Kinect|needs pyk4a|cannot load)"):
            open_source("live:k4a")
        with pytest.raises(DPHMError, match="(RealSense|pyrealsense2)"):
            open_source("live:realsense")
