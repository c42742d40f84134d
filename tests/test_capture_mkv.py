"""Azure Kinect .mkv: reading real and written recordings, SDK agreement, damaged files."""

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest
from dphm.core.capture import k4a_calibration
from dphm.core.capture.frame import Intrinsics
from dphm.core.capture.mkv import KinectRecording
from dphm.core.capture.mkv_write import KinectWriter
from dphm.core.capture.warn import CaptureWarning
from dphm.core.errors import DPHMError
from dphm.core.paths import shared_data_dir

DATA = shared_data_dir()
REAL = DATA / "azure_kinect" / "recording.mkv" if DATA else None
needs_real = pytest.mark.skipif(
    REAL is None or not REAL.is_file(), reason="../shared/data/azure_kinect/recording.mkv is absent"
)
try:
    import pyk4a
except ImportError:
    pyk4a = None
needs_sdk = pytest.mark.skipif(pyk4a is None, reason="pyk4a (pip install pyk4a-bundle) is absent")

INTR = Intrinsics(504.0, 504.0, 319.5, 287.5, 640, 576)


def frames(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(400, 3000, (576, 640)).astype(np.uint16) for _ in range(n)]


def write(path, depth, ir=True):
    with KinectWriter(path, k4a_calibration.synthetic(INTR), INTR, 30, ir=ir) as w:
        for d in depth:
            w.write(d, d // 3 if ir else None)
    return path


def as_mm(frame):
    return np.round(frame.depth * 1000).astype(np.uint16)


@needs_real
def test_real_recording_intrinsics_from_calibration_json():
    raw = json.loads((DATA / "azure_kinect" / "calibration.json").read_text())
    cam = next(
        c
        for c in raw["CalibrationInformation"]["Cameras"]
        if c["Purpose"] == "CALIBRATION_CameraPurposeDepth"
    )
    cx, cy, fx, fy, k1, k2, k3, k4, k5, k6, _, _, p2, p1 = cam["Intrinsics"]["ModelParameters"]
    with KinectRecording(REAL) as rec:
        i = rec.intrinsics
        assert (i.width, i.height) == (640, 576) and rec.metadata["depth_mode"] == "NFOV_UNBINNED"
        np.testing.assert_allclose(
            [i.fx, i.fy, i.cx, i.cy],
            [fx * 1024, fy * 1024, cx * 1024 - 192.5, cy * 1024 - 180.5],
            rtol=1e-6,
        )
        np.testing.assert_allclose(i.distortion, [k1, k2, p1, p2, k3, k4, k5, k6], rtol=1e-6)


@needs_real
def test_real_recording_depth_equals_direct_decode():
    with av.open(str(REAL)) as c:
        s = next(x for x in c.streams.video if x.metadata.get("title") == "DEPTH")
        packets = [p for p in c.demux(s) if p.size]
        direct = [np.frombuffer(bytes(p), ">u2").reshape(576, 640) for p in packets]
        pts = [float(p.pts * p.time_base) for p in packets]
    with KinectRecording(REAL, color=True) as rec:
        got = list(rec)
        assert len(got) == len(direct) == rec.length == 1
        for f, d, t in zip(got, direct, pts, strict=True):
            assert f.depth.dtype == np.float32
            assert np.array_equal(as_mm(f), d)
            assert np.array_equal(f.valid, d > 0)
            assert f.timestamp == pytest.approx(t + 0.336277)
            assert f.color.shape == (720, 1280, 3) and f.color_intrinsics.width == 1280
        assert np.array_equal(rec[0].depth, got[0].depth)


@needs_real
@needs_sdk
def test_real_recording_matches_sdk_playback():
    pb = pyk4a.PyK4APlayback(REAL)
    pb.open()
    try:
        K = pb.calibration.get_camera_matrix(pyk4a.CalibrationType.DEPTH)
        dist = pb.calibration.get_distortion_coefficients(pyk4a.CalibrationType.DEPTH)
        sdk_depth = pb.get_next_capture().depth
    finally:
        pb.close()
    with KinectRecording(REAL) as rec:
        np.testing.assert_allclose(rec.intrinsics.K, K, rtol=0, atol=1e-6)
        np.testing.assert_allclose(rec.intrinsics.distortion, dist, rtol=0, atol=1e-6)
        assert np.array_equal(as_mm(rec[0]), sdk_depth)


def test_written_recording_reads_back_identically(tmp_path):
    depth = frames()
    path = write(tmp_path / "t.mkv", depth)
    with KinectRecording(path) as rec:
        assert rec.length == 4 and rec.fps == 30
        assert rec.intrinsics.K.tolist() == INTR.K.tolist()
        got = list(rec)
        assert all(np.array_equal(as_mm(f), d) for f, d in zip(got, depth, strict=True))
        assert [f.timestamp for f in got] == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30], abs=1e-6)
        assert np.array_equal(as_mm(rec[2]), depth[2]) and np.array_equal(as_mm(rec[-1]), depth[3])


@needs_sdk
def test_written_recording_opens_in_sdk_playback(tmp_path):
    depth = frames(3)
    path = write(tmp_path / "t.mkv", depth)
    pb = pyk4a.PyK4APlayback(path)
    pb.open()
    try:
        assert pb.configuration["depth_mode"] == pyk4a.DepthMode.NFOV_UNBINNED
        K = pb.calibration.get_camera_matrix(pyk4a.CalibrationType.DEPTH)
        np.testing.assert_allclose(K, INTR.K, atol=1e-6)
        for d in depth:
            cap = pb.get_next_capture()
            assert np.array_equal(cap.depth, d) and np.array_equal(cap.ir, d // 3)
    finally:
        pb.close()


SDK_RECORDER = r"""
import ctypes, glob, os, sys, numpy as np, pyk4a
libs = os.path.join(os.path.dirname(pyk4a.__file__), "..", "pyk4a_bundle.libs")
k4a = ctypes.CDLL(glob.glob(libs + "/libk4a-*.so*")[0])
rec = ctypes.CDLL(glob.glob(libs + "/libk4arecord-*.so*")[0])
k4a.k4a_image_get_buffer.restype = ctypes.POINTER(ctypes.c_uint8)
class Config(ctypes.Structure):
    _fields_ = [("color_format", ctypes.c_int), ("color_resolution", ctypes.c_int),
                ("depth_mode", ctypes.c_int), ("camera_fps", ctypes.c_int),
                ("synchronized_images_only", ctypes.c_bool), ("depth_delay", ctypes.c_int32),
                ("wired_sync_mode", ctypes.c_int), ("subordinate_delay", ctypes.c_uint32),
                ("disable_streaming_indicator", ctypes.c_bool)]
out, calib, frames = sys.argv[1], open(sys.argv[2], "rb").read(), np.load(sys.argv[3])
h = ctypes.c_void_p()
assert rec.k4a_record_create(out.encode(), None, Config(3, 0, 2, 2), ctypes.byref(h)) == 0
size = ctypes.c_size_t(len(calib))
assert rec.k4a_record_add_attachment(h, b"calibration.json", calib, size) == 0
assert rec.k4a_record_write_header(h) == 0
for i, f in enumerate(frames):
    cap = ctypes.c_void_p()
    k4a.k4a_capture_create(ctypes.byref(cap))
    for fmt, setter in ((4, k4a.k4a_capture_set_depth_image), (5, k4a.k4a_capture_set_ir_image)):
        img = ctypes.c_void_p()
        assert k4a.k4a_image_create(fmt, 640, 576, 1280, ctypes.byref(img)) == 0
        ctypes.memmove(k4a.k4a_image_get_buffer(img), f.tobytes(), f.nbytes)
        k4a.k4a_image_set_device_timestamp_usec(img, ctypes.c_uint64(5000 + 33333 * i))
        setter(cap, img)
        k4a.k4a_image_release(img)
    assert rec.k4a_record_write_capture(h, cap) == 0
    k4a.k4a_capture_release(cap)
rec.k4a_record_flush(h)
rec.k4a_record_close(h)
"""


@needs_sdk
def test_sdk_recorder_output_reads_back_identically(tmp_path):
    depth = frames(3, seed=5)
    np.save(tmp_path / "f.npy", np.stack(depth))
    (tmp_path / "cal.json").write_text(k4a_calibration.synthetic(INTR))
    script = tmp_path / "rec.py"
    script.write_text(SDK_RECORDER)
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "sdk.mkv"),
            str(tmp_path / "cal.json"),
            str(tmp_path / "f.npy"),
        ],
        check=True,
    )
    with KinectRecording(tmp_path / "sdk.mkv") as rec:
        got = list(rec)
        assert len(got) == 3 and rec.intrinsics.K.tolist() == INTR.K.tolist()
        assert all(np.array_equal(as_mm(f), d) for f, d in zip(got, depth, strict=True))
        assert [f.timestamp for f in got] == pytest.approx([0.005, 0.038333, 0.071666], abs=1e-6)


def test_truncated_recording_yields_intact_frames(tmp_path):
    depth = frames(5)
    path = write(tmp_path / "t.mkv", depth, ir=False)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    frame_bytes = 640 * 576 * 2
    cut.write_bytes(data[: len(data) - 300 - int(1.5 * frame_bytes)])  # mid frame 4 (index 3)
    with pytest.warns(CaptureWarning, match="cut.mkv"), KinectRecording(cut) as rec:
        got = list(rec)
    assert len(got) == 3
    assert all(np.array_equal(as_mm(f), d) for f, d in zip(got, depth, strict=False))


def test_crash_mid_take_leaves_readable_file(tmp_path):
    depth = frames(3)
    path = tmp_path / "crash.mkv"
    w = KinectWriter(path, k4a_calibration.synthetic(INTR), INTR, 30, ir=False)
    for d in depth:
        w.write(d)
    w._fh.flush()  # no close(): as if the process died here
    with (
        pytest.warns(CaptureWarning, match="crash.mkv: recording was not closed"),
        KinectRecording(path) as rec,
    ):
        assert all(np.array_equal(as_mm(f), d) for f, d in zip(rec, depth, strict=True))
    w._fh.close()


def _patched(tmp_path, name, *pairs):
    data = write(tmp_path / "src.mkv", frames(2)).read_bytes()
    for a, b in pairs:
        assert len(a) == len(b) and a in data
        data = data.replace(a, b)
    out = tmp_path / name
    out.write_bytes(data)
    return out


def test_missing_calibration_attachment(tmp_path):
    path = _patched(
        tmp_path,
        "nocal.mkv",
        (b"calibration.json", b"notes_other.json"),
        (b"K4A_CALIBRATION_FILE", b"K4A_OTHER_NOTES_FILE"),
    )
    with pytest.raises(DPHMError, match="nocal.mkv.*no calibration.json attachment"):
        KinectRecording(path)
    cal = tmp_path / "calibration.json"
    cal.write_text(k4a_calibration.synthetic(INTR))
    with KinectRecording(path, calibration=cal) as rec:
        assert rec.length == 2


def test_no_depth_track(tmp_path):
    path = _patched(tmp_path, "nodepth.mkv", (b"DEPTH", b"DEPTQ"))
    with pytest.raises(DPHMError, match="nodepth.mkv: no DEPTH track"):
        KinectRecording(path)


def test_zero_frames_and_garbage(tmp_path):
    empty = write(tmp_path / "empty.mkv", [])
    with pytest.raises(DPHMError, match="empty.mkv: recording holds no depth frames"):
        list(KinectRecording(empty))
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(DPHMError, match="junk.mkv"):
        KinectRecording(junk)


def test_wrong_units(tmp_path):
    metres_as_mm = [np.full((576, 640), 1, np.uint16)]  # "0.6 m" stored as 1 (mm)
    path = write(tmp_path / "units.mkv", metres_as_mm)
    with pytest.raises(DPHMError, match="units.mkv: depth values look like metres"):
        list(KinectRecording(path))


def test_color_modes_follow_sdk_tables():
    cal = k4a_calibration.synthetic(INTR)
    for mode, (_, _, (w, h)) in k4a_calibration.DEPTH_MODES.items():
        i = k4a_calibration.depth_intrinsics(cal, mode)
        assert (i.width, i.height) == (w, h)
    nfov = k4a_calibration.depth_intrinsics(cal, "NFOV_UNBINNED")
    binned = k4a_calibration.depth_intrinsics(cal, "NFOV_2X2BINNED")
    assert binned.fx == pytest.approx(nfov.fx / 2) and binned.cx == pytest.approx(
        (nfov.cx - 0.5) / 2
    )
    assert np.allclose(k4a_calibration.depth_to_color(cal)[:3, 3], [-0.032, 0, 0])
    with pytest.raises(DPHMError, match="unknown depth mode"):
        k4a_calibration.depth_intrinsics(cal, "HUGE")
