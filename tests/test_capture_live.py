"""The Orbbec (pyorbbecsdk) and Record3D (record3d) live sources, after the device.

No camera here: the SDK module is replaced at the hardware boundary by one that hands over
recorded frames (the shared Azure Kinect recording's depth and colour, with its
calibration, looped), exactly in the SDK's own types' shape; everything after it, through
``dphm convert`` / ``dphm record`` into a capture folder, is the product's code.
"""

import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from dphm.core.capture import orbbec
from dphm.core.capture import record3d as r3d
from dphm.core.capture.folder import CaptureFolder
from dphm.core.capture.opener import open_source
from dphm.core.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RECORDING = SHARED / "azure_kinect" / "recording.mkv"
pytestmark = pytest.mark.skipif(not RECORDING.is_file(), reason="needs the shared recording")
N = 4


@pytest.fixture(scope="module")
def recorded():
    with open_source(RECORDING, color=True) as src:
        return next(iter(src))


# -- Orbbec: a stand-in for pyorbbecsdk that plays the recorded frames -----------------


class _Enum:
    def __init__(self, *names):
        for i, n in enumerate(names):
            setattr(self, n, i)


def fake_orbbec(frame, devices=1, mm_per_unit=0.25):
    """A module with pyorbbecsdk's names, streaming ``frame`` N times."""
    fmt = _Enum("RGB", "BGR", "MJPG", "Y16")
    ns = types.SimpleNamespace

    def cam_intrinsic(i):
        return ns(fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy, width=i.width, height=i.height)

    def distortion(i):
        k1, k2, p1, p2, k3, k4, k5, k6 = i.distortion
        return ns(k1=k1, k2=k2, k3=k3, k4=k4, k5=k5, k6=k6, p1=p1, p2=p2)

    class Profile:
        def __init__(self, intr, fps=30, to_color=None):
            self.intr, self.fps, self.to_color = intr, fps, to_color

        def as_video_stream_profile(self):
            return self

        def get_intrinsic(self):
            return cam_intrinsic(self.intr)

        def get_distortion(self):
            return distortion(self.intr)

        def get_fps(self):
            return self.fps

        def get_extrinsic_to(self, other):
            m = frame.depth_to_color
            return ns(rot=m[:3, :3].astype(np.float32).ravel(),
                      transform=(m[:3, 3] * 1000).astype(np.float32))  # fmt: skip

    color_profile = Profile(frame.color_intrinsics)
    depth_profile = Profile(frame.intrinsics, to_color=color_profile)

    class Video:
        def __init__(self, data, w, h, format, profile, t_us=0, scale=None):
            self.data, self.w, self.h, self.format, self.profile = data, w, h, format, profile
            self.t_us, self.scale = t_us, scale

        def get_data(self):
            return self.data

        def get_width(self):
            return self.w

        def get_height(self):
            return self.h

        def get_format(self):
            return self.format

        def get_depth_scale(self):
            return self.scale

        def get_timestamp_us(self):
            return self.t_us

        def get_stream_profile(self):
            return depth_profile if self.scale is not None else color_profile

    raw = np.round(frame.depth * 1000 / mm_per_unit).astype(np.uint16)

    class FrameSet:
        def __init__(self, i):
            self.i = i

        def get_depth_frame(self):
            h, w = raw.shape
            t_us = 1_000_000 + self.i * 33_333
            return Video(raw.tobytes(), w, h, fmt.Y16, depth_profile, t_us, mm_per_unit)

        def get_color_frame(self):
            h, w = frame.color.shape[:2]
            return Video(frame.color[..., ::-1].tobytes(), w, h, fmt.BGR, color_profile)

    class Pipeline:
        def __init__(self):
            self.sent, self.started, self.stopped = 0, False, False

        def get_stream_profile_list(self, sensor):
            return ns(get_default_video_stream_profile=lambda: sensor,
                      get_video_stream_profile=lambda w, h, f, fps: (sensor, f))  # fmt: skip

        def start(self, config):
            self.started, self.config = True, config

        def wait_for_frames(self, timeout_ms):
            if self.sent >= N:
                time.sleep(timeout_ms / 1000)
                return None
            self.sent += 1
            return FrameSet(self.sent - 1)

        def stop(self):
            self.stopped = True

    class Config:
        def __init__(self):
            self.streams = []

        def enable_stream(self, profile):
            self.streams.append(profile)

    module = types.ModuleType("pyorbbecsdk")
    module.OBFormat, module.OBSensorType = fmt, _Enum("DEPTH_SENSOR", "COLOR_SENSOR")
    module.Pipeline, module.Config = Pipeline, Config
    module.Context = lambda: ns(query_devices=lambda: ns(
        get_count=lambda: devices, get_device_name_by_index=lambda i: "Femto Bolt"))  # fmt: skip
    return module, raw


def test_orbbec_convert_writes_the_recorded_frames(recorded, tmp_path, monkeypatch, capsys):
    module, raw = fake_orbbec(recorded)
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", module)
    monkeypatch.setattr(orbbec, "TIMEOUT_S", 0.2)
    out = tmp_path / "cap"
    assert main(["convert", "live:orbbec", "--out", str(out), "--frames", "0:3", "--color"]) == 0
    cap = CaptureFolder(out)
    assert len(cap) == 3 and cap.intrinsics == recorded.intrinsics
    expected = raw.astype(np.float32) * np.float32(0.25e-3)
    for i, f in enumerate(cap):
        assert np.abs(f.depth - expected).max() <= 0.5e-3  # millimetre PNGs
        assert f.timestamp == pytest.approx(1.0 + i * 0.033333, abs=1e-6)
        assert f.color is not None and f.color.shape == recorded.color.shape
        assert np.abs(f.color.astype(int) - recorded.color).mean() < 3  # JPEG
    assert cap.color_intrinsics == recorded.color_intrinsics
    np.testing.assert_allclose(cap.depth_to_color, recorded.depth_to_color, atol=1e-6)
    assert "Orbbec Femto Bolt" in " ".join(orbbec.device_names())


def test_orbbec_stream_ends_with_a_warning_and_closes(recorded, monkeypatch):
    module, _ = fake_orbbec(recorded)
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", module)
    monkeypatch.setattr(orbbec, "TIMEOUT_S", 0.2)
    src = open_source("live:orbbec")
    pipe = src._pipe
    with pytest.warns(UserWarning, match="live:orbbec: no frame"):
        frames = list(src)
    assert len(frames) == N and [f.index for f in frames] == list(range(N))
    assert frames[0].color is None  # colour only when asked
    src.close()
    assert pipe.stopped and src._pipe is None


def test_orbbec_without_sdk_or_device_is_one_line(recorded, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", None)
    assert main(["record", "--camera", "orbbec", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dphm record: error: Orbbec camera support needs pyorbbecsdk: {orbbec.HINT}"]
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", fake_orbbec(recorded, devices=0)[0])
    assert main(["track", "live:orbbec", "--out", str(tmp_path / "t.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Orbbec camera connected" in err[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "t.npz").exists()


# -- Record3D: a stand-in for the record3d package streaming the recorded frames -------


def fake_record3d(frame, devices=1, stop_after=N):
    ns = types.SimpleNamespace
    depth = frame.depth.copy()
    depth[depth == 0] = np.nan  # the app sends NaN where it has no depth
    c = frame.color_intrinsics
    # a TrueDepth-like stream: depth at half the colour resolution of the same view
    rgb = frame.color[::2, ::2].copy()
    small = depth[: rgb.shape[0] // 2 * 2 : 2, : rgb.shape[1] // 2 * 2 : 2][:, : rgb.shape[1] // 2]

    class Stream:
        instances = []

        def __init__(self):
            self.on_new_frame = self.on_stream_stopped = None
            self.connected = False
            Stream.instances.append(self)

        @staticmethod
        def get_connected_devices():
            return [ns(product_id=1, udid="00008110-TEST")] * devices

        def connect(self, dev):
            self.connected = True

            def send():
                for _ in range(stop_after):
                    time.sleep(0.02)
                    self.on_new_frame()
                time.sleep(0.02)
                self.on_stream_stopped()

            threading.Thread(target=send, daemon=True).start()
            return True

        def get_depth_frame(self):
            return small

        def get_rgb_frame(self):
            return rgb

        def get_intrinsic_mat(self):
            half = (c.fx / 2, c.fy / 2, (c.cx + 0.5) / 2 - 0.5, (c.cy + 0.5) / 2 - 0.5)
            return ns(**dict(zip(("fx", "fy", "tx", "ty"), half, strict=True)))

        def get_device_type(self):
            return 0

        def disconnect(self):
            self.connected = False

    module = types.ModuleType("record3d")
    module.Record3DStream = Stream
    return module, small, rgb


def test_record3d_stream_records_depth_colour_and_intrinsics(recorded, tmp_path, monkeypatch):
    module, depth, rgb = fake_record3d(recorded)
    monkeypatch.setitem(sys.modules, "record3d", module)
    out = tmp_path / "iphone"
    assert main(["record", "--camera", "record3d", "--out", str(out), "--seconds", "30"]) == 0
    cap = CaptureFolder(out)
    assert len(cap) == N
    dh, dw = depth.shape
    ch, cw = rgb.shape[:2]
    c = recorded.color_intrinsics
    # depth intrinsics: the colour view scaled to the depth image, pixel centres kept
    assert (cap.intrinsics.width, cap.intrinsics.height) == (dw, dh)
    assert cap.intrinsics.fx == pytest.approx(c.fx / 2 * dw / cw)
    assert cap.intrinsics.cx == pytest.approx(((c.cx + 0.5) / 2) * dw / cw - 0.5)
    f = cap[0]
    valid = np.isfinite(depth)
    assert np.abs(f.depth[valid] - depth[valid]).max() <= 0.5e-3
    assert (f.depth[~valid] == 0).all()
    assert f.color.shape == rgb.shape and np.array_equal(cap.depth_to_color, np.eye(4))
    assert module.Record3DStream.instances[-1].connected is False  # disconnected at the end


def test_record3d_without_package_or_device_is_one_line(recorded, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "record3d", None)
    assert main(["convert", "live:record3d", "--out", str(tmp_path / "c"), "--frames", "0:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dphm convert: error: iPhone/iPad streaming needs record3d: {r3d.STREAM_HINT}"]
    monkeypatch.setitem(sys.modules, "record3d", fake_record3d(recorded, devices=0)[0])
    assert main(["convert", "live:record3d", "--out", str(tmp_path / "c"), "--frames", "0:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no iPhone/iPad is streaming over USB" in err[0]


def test_doctor_and_unknown_camera_name_the_new_cameras(capsys):
    from dphm.core.doctor import INSTALL_HINTS, MODULES

    assert {"pyorbbecsdk", "record3d"} <= set(MODULES) <= set(INSTALL_HINTS)
    assert main(["convert", "live:kinect2", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "live:orbbec" in err and "live:record3d" in err


# -- RealSense: a recording written by librealsense's own recorder ---------------------


def write_realsense_recording(path, depth_mm: np.ndarray, intr, frames: int = 3) -> None:
    """Record ``depth_mm`` (uint16) ``frames`` times through a librealsense software device."""
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 needs libusb-1.0-0 (apt)")
    h, w = depth_mm.shape
    dev = rs.software_device()
    sensor = dev.add_sensor("Depth")
    ri = rs.intrinsics()
    ri.width, ri.height, ri.ppx, ri.ppy, ri.fx, ri.fy = w, h, intr.cx, intr.cy, intr.fx, intr.fy
    ri.model, ri.coeffs = rs.distortion.brown_conrady, [0.0] * 5
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid, vs.width, vs.height = rs.stream.depth, 0, 0, w, h
    vs.fps, vs.bpp, vs.fmt, vs.intrinsics = 30, 2, rs.format.z16, ri
    profile = sensor.add_video_stream(vs)
    sensor.add_read_only_option(rs.option.depth_units, 0.001)
    recorder = rs.recorder(str(path), dev)
    sensor.open(profile)
    sensor.start(rs.frame_queue())
    for i in range(frames):
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = depth_mm, w * 2, 2
        f.timestamp, f.frame_number = 1000.0 + i * 33.3, i
        f.domain, f.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
        sensor.on_video_frame(f)
        time.sleep(0.05)
    sensor.stop()
    sensor.close()
    del recorder  # closes the file


def test_realsense_recording_converts(recorded, tmp_path, capsys):
    depth_mm = np.round(recorded.depth * 1000).astype(np.uint16)
    path = tmp_path / "take.db3"  # librealsense 2.57+ records ROS 2 bags
    write_realsense_recording(path, depth_mm, recorded.intrinsics)
    assert main(["convert", str(path), "--out", str(tmp_path / "cap")]) == 0
    cap = CaptureFolder(tmp_path / "cap")
    assert len(cap) == 3
    i = cap.intrinsics
    assert (i.width, i.height, i.fx, i.cx) == pytest.approx(
        (recorded.intrinsics.width, recorded.intrinsics.height, recorded.intrinsics.fx,
         recorded.intrinsics.cx), rel=1e-6)  # fmt: skip
    for f in cap:
        assert np.array_equal(np.round(f.depth * 1000).astype(np.uint16), depth_mm)
    assert [round(f.timestamp - cap[0].timestamp, 4) for f in cap] == [0.0, 0.0333, 0.0666]
