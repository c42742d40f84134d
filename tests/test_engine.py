"""The engine process and its client: protocol, errors, cancel, stop, crash and restart."""

import os
import signal
import sys
import time

import numpy as np
import pytest
from dphm.core.capture.folder import CaptureFolder, FolderWriter
from dphm.core.capture.frame import DepthFrame, Intrinsics
from dphm.core.engine.files import PointCache, read_meshes, write_meshes
from dphm.core.engine.protocol import decode, encode
from dphm.core.paths import shared_data_dir
from dphm.core.tracking.take import read_take
from dphm.dphm_blender.engine import Engine

INTR = Intrinsics(200.0, 200.0, 79.5, 59.5, 160, 120)


def until(condition, job, previews=None) -> None:
    """Poll ``job`` until ``condition()`` holds or it ends, collecting preview events."""
    while not job.finished and not condition():
        events = job.poll()
        if previews is not None:
            previews += [e for e in events if e["event"] == "preview"]
        time.sleep(0.02)


@pytest.fixture(scope="module")
def engine():
    eng = Engine(sys.executable, threads=1)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A 90-frame capture folder of a sphere moving before a wall."""
    out = tmp_path_factory.mktemp("capture") / "take"
    v, u = np.mgrid[0:120, 0:160]
    with FolderWriter(out, INTR, 30.0) as w:
        for i in range(90):
            d = np.full((120, 160), 1.2, np.float32)
            r2 = (u - 60 - i / 3) ** 2 + (v - 60) ** 2
            d[r2 < 900] = 0.6 - np.sqrt(np.maximum(0, 900 - r2[r2 < 900])) / 200 * 0.1
            w.write(DepthFrame(d, INTR, i / 30.0, i))
    return out


def test_messages_round_trip_and_stray_lines_are_ignored():
    m = {"event": "progress", "id": 3, "done": 1, "total": 2}
    assert decode(encode(m)) == m
    assert decode(b"a warning printed by some library\n") is None
    assert decode("{not json") is None


def test_mesh_list_round_trip(tmp_path):
    meshes = [(np.random.rand(5, 3), [[0, 1, 2], [2, 3, 4]]), (np.random.rand(3, 3), [[0, 1, 2]])]
    write_meshes(tmp_path / "m.npz", meshes, tag=np.arange(2))
    back, extra = read_meshes(tmp_path / "m.npz")
    assert [len(v) for v, _ in back] == [5, 3] and back[1][1].tolist() == [[0, 1, 2]]
    assert np.allclose(back[0][0], meshes[0][0]) and extra["tag"].tolist() == [0, 1]


def test_errors_are_one_clear_line(engine, tmp_path):
    job = engine.submit("ping")
    job.wait(120)
    assert job.state == "done" and job.result["modules"]["torch"]
    job = engine.submit("no_such_command")
    job.wait(60)
    assert job.state == "error" and "unknown engine command" in job.error
    job = engine.submit("probe", input=str(tmp_path / "missing.mkv"))
    job.wait(60)
    assert job.state == "error" and "missing.mkv" in job.error and "\n" not in job.error
    job = engine.submit("probe", wrong_argument=1)
    job.wait(60)
    assert job.state == "error" and "bad arguments" in job.error


def test_point_cache_with_progress(engine, capture, tmp_path):
    events = []
    job = engine.submit(
        "point_cache",
        input=str(capture),
        out=str(tmp_path / "p.npz"),
        max_points=500,
        frames="10:20",
    )
    job.wait(120, events.append)
    assert job.state == "done", job.error
    cache = PointCache(tmp_path / "p.npz")
    assert len(cache) == 10 and all(len(cache[i]) == 500 for i in range(10))
    assert cache.intrinsics["fx"] == 200.0
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == 10
    assert "ETA" not in job.status() and "point_cache" in job.status()


def test_cancel_leaves_no_output(engine, capture, tmp_path):
    out = tmp_path / "live"
    job = engine.submit("live", input=str(capture), folder=str(out), record=str(tmp_path / "r"))
    until(lambda: job.done >= 3, job)
    job.cancel()
    job.wait(30)
    assert job.state == "cancelled"
    follow = engine.submit("ping")  # the engine serves on after a cancel
    follow.wait(60)
    assert follow.state == "done"


def test_stop_keeps_a_readable_recording(engine, capture, tmp_path):
    previews = []
    job = engine.submit(
        "live",
        input=str(capture),
        folder=str(tmp_path / "live"),
        record=str(tmp_path / "rec"),
        max_points=300,
    )
    until(lambda: len(previews) >= 5, job, previews)
    job.stop()
    job.wait(30)
    assert job.state == "done" and 5 <= job.result["frames"] < 90
    rec = CaptureFolder(tmp_path / "rec")
    assert rec.length == job.result["frames"]
    assert np.allclose(rec[0].depth, CaptureFolder(capture)[0].depth, atol=1e-3)
    assert len(PointCache(previews[-1]["path"])[0]) == 300


def test_a_crash_is_reported_and_the_next_job_restarts_the_engine(capture, tmp_path):
    eng = Engine(sys.executable, threads=1)
    try:
        job = eng.submit("live", input=str(capture), folder=str(tmp_path / "live"))
        until(lambda: job.done >= 2, job)
        os.kill(eng.proc.pid, signal.SIGKILL)
        job.wait(30)
        assert job.state == "error" and "stopped (exit code" in job.error
        again = eng.submit("ping")
        again.wait(120)
        assert again.state == "done"
    finally:
        eng.close()


def test_a_changed_checkpoint_folder_takes_effect_with_the_next_job(tmp_path):
    from dphm.dphm_blender import engine as bridge

    def weights(eng):
        job = eng.submit("ping")
        job.wait(60)
        return job.result["weights"]

    try:
        a = bridge.get_engine(sys.executable, 1, {"DPHM_WEIGHTS": str(tmp_path / "a")})
        assert weights(a) == str(tmp_path / "a")
        assert bridge.get_engine(sys.executable, 1, {"DPHM_WEIGHTS": str(tmp_path / "a")}) is a
        b = bridge.get_engine(sys.executable, 1, {"DPHM_WEIGHTS": str(tmp_path / "b")})
        assert b is not a and not a.alive
        assert weights(b) == str(tmp_path / "b")
    finally:
        bridge.shutdown()


def test_a_missing_interpreter_is_one_clear_error(tmp_path):
    from dphm.core.errors import DPHMError

    eng = Engine(str(tmp_path / "no-python"))
    with pytest.raises(DPHMError, match="cannot start the DPHM engine"):
        eng.submit("ping")


def test_an_engine_python_without_torch_says_so(tmp_path):
    """The engine in an interpreter where torch cannot be imported (as in a Blender
    without torch): the job fails with one line naming the module and the preference."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "torch.py").write_text(
        "raise ModuleNotFoundError('No module named torch', name='torch')\n"
    )
    eng = Engine(sys.executable, threads=1, env={"PYTHONPATH": str(site)})
    try:
        job = eng.submit("sample", out=str(tmp_path / "s.npz"), identities=1)
        job.wait(120)
        assert job.state == "error"
        assert "torch is not installed" in job.error and "preferences" in job.error
    finally:
        eng.close()


@pytest.mark.skipif(shared_data_dir() is None, reason="the simulated performer needs ICT-FaceKit")
def test_live_tracking_streams_previews_and_stop_keeps_the_take(engine, tmp_path):
    sim = engine.submit("simulate", out=str(tmp_path / "sim"), frames=150, sequence="talking")
    sim.wait(600)
    assert sim.state == "done", sim.error
    previews = []
    job = engine.submit(
        "track",
        input=str(tmp_path / "sim"),
        out=str(tmp_path / "live.npz"),
        quality="preview",
        live=True,
        record=str(tmp_path / "rec"),
        preview_folder=str(tmp_path / "preview"),
    )
    until(lambda: len(previews) >= 2, job, previews)
    job.stop()
    job.wait(120)
    assert job.state == "done", job.error
    take = read_take(tmp_path / "live.npz")
    assert len(take["z_exp"]) == job.result["frames"] >= 3
    assert np.nanmedian(take["fit_error_mm"]) < 3.0
    [(head, faces)], _ = read_meshes(previews[-1]["path"])
    assert len(faces) > 100 and 0.3 < np.median(head[:, 2]) < 1.0  # before the camera
    assert CaptureFolder(tmp_path / "rec").length >= len(take["z_exp"])
    # every frame read is tracked or counted as skipped (the recording plays in real time)
    r = job.result
    assert r["frames"] + r["skipped"] == CaptureFolder(tmp_path / "rec").length
    assert 0.0 <= r["skipped_pct"] < 100.0


def test_a_job_after_a_cancel_does_not_wait_for_it(capture, tmp_path):
    eng = Engine(sys.executable, threads=1)
    try:
        slow = eng.submit("live", input=str(capture), folder=str(tmp_path / "live"))
        until(lambda: slow.done >= 2, slow)
        slow.cancel()
        t0 = time.monotonic()
        quick = eng.submit("probe", input=str(capture))
        quick.wait(60)
        assert quick.state == "done" and quick.result["length"] == 90
        assert slow.state == "cancelled" and time.monotonic() - t0 < 30
    finally:
        eng.close()


def test_track_job_uses_colour_landmarks_unless_told_not_to(engine, tmp_path):
    """The simulated performer with colour, tracked by the engine: the landmarks are read
    on its frames, and ``landmarks=False`` tracks the same capture on depth only."""
    from dphm.core.tracking import face_landmarks

    if not face_landmarks.available():
        pytest.skip("MediaPipe not installed")
    sim = engine.submit("simulate", out=str(tmp_path / "sim"), frames=8, color=True)
    sim.wait(600)
    assert sim.state == "done", sim.error
    assert CaptureFolder(tmp_path / "sim")[0].color is not None
    seen = []
    for landmarks in (True, False):
        out = str(tmp_path / f"t{landmarks}.npz")
        job = engine.submit("track", input=str(tmp_path / "sim"), quality="preview", out=out,
                            landmarks=landmarks)  # fmt: skip
        job.wait(600)
        assert job.state == "done", job.error
        seen.append(job.result["face_frames"])
    assert seen[0] >= 6 and seen[1] == 0


def test_track_job_refines_the_head_when_asked(engine, tmp_path):
    """``refine`` True stores the identity refinement in the take even at preview quality,
    False leaves it out at balanced; the bake of the refined take meshes the refined head."""
    from dphm.core.tracking.take import read_take, refinement

    sim = engine.submit("simulate", out=str(tmp_path / "sim"), frames=6)
    sim.wait(600)
    assert sim.state == "done", sim.error
    takes = {}
    for quality, refine in (("preview", True), ("balanced", False)):
        out = tmp_path / f"{quality}.npz"
        job = engine.submit("track", input=str(tmp_path / "sim"), quality=quality, out=str(out),
                            refine=refine)  # fmt: skip
        job.wait(900)
        assert job.state == "done", job.error
        takes[quality] = read_take(out)
    assert refinement(takes["preview"]).largest_mm > 0.1
    assert refinement(takes["balanced"]) is None
    job = engine.submit("bake", take=str(tmp_path / "preview.npz"),
                        out=str(tmp_path / "b.npz"), resolution=48, arkit_shapes=False)  # fmt: skip
    job.wait(600)
    assert job.state == "done", job.error
