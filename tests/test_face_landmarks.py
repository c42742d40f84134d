"""Colour face landmarks: the simulator's colour stream, MediaPipe on rolled faces, lifting
through the depth, the shipped landmark model, and the tracker with and without colour."""

import warnings

import numpy as np
import pytest
from dphm.core.capture.profiles import get_profile
from dphm.core.capture.simulate import ICT_TO_CAMERA, HeadSimulator, _rotation
from dphm.core.data import corpus
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.tracking import face_landmarks as fl
from dphm.core.tracking.preprocess import segment_head
from dphm.core.tracking.rigid import SCALE
from scipy.spatial.transform import Rotation
from test_capture_sim import ict, needs_ict  # noqa: F401  (the ICT-FaceKit fixture)

needs_mediapipe = pytest.mark.skipif(not fl.available(), reason="MediaPipe not installed")


def _view(ict, camera="azure_nfov", roll=0.0, distance=0.6, arkit=None, seed=5):  # noqa: F811
    sim = HeadSimulator(ict, seed=seed, profile=get_profile(camera), color=True)
    sim.identity = corpus.identity_weights("heldout", 2, len(ict.identity_deltas))[1]
    sim.base = ict.head(sim.identity)
    R = _rotation(np.deg2rad(10), 0.0, np.deg2rad(roll)) @ ICT_TO_CAMERA
    t = np.array([0.01, -0.01, distance]) - R @ sim.pivot
    w = np.zeros(len(ARKIT_NAMES), np.float32) if arkit is None else arkit
    return sim.frame(0, w, R, t)


def test_color_problems_are_named():
    from dphm.core.capture.frame import DepthFrame, Intrinsics

    intr = Intrinsics(fx=50.0, fy=50.0, cx=32.0, cy=24.0, width=64, height=48)
    f = DepthFrame(np.ones((48, 64), np.float32), intr, 0.0, 0)
    assert fl.color_problem(f) == "the frames carry no colour"
    f.color = np.zeros((48, 64, 3), np.uint8)
    assert "no calibration" in fl.color_problem(f)
    f.color_intrinsics = Intrinsics(fx=100.0, fy=100.0, cx=64.0, cy=48.0, width=128, height=96)
    assert "64x48 but their calibration is 128x96" in fl.color_problem(f)
    f.color = np.zeros((96, 128, 3), np.uint8)
    assert fl.color_problem(f) == ""


def test_crop_turns_the_up_direction_upright():
    for up in ([0.0, -1.0], [1.0, 0.0], [-0.6, 0.8]):
        M = fl.crop_transform(np.array([300.0, 200.0]), 128.0, up)
        assert np.allclose(M[:, :2] @ [300.0, 200.0] + M[:, 2], fl.CROP / 2)
        d = M[:, :2] @ np.asarray(up)
        assert np.allclose(d / np.linalg.norm(d), [0, -1])  # the face's up is the crop's up


@needs_ict
@pytest.mark.parametrize("camera", ["azure_nfov", "realsense_d435"])
def test_lift_lands_colour_pixels_on_the_surface(ict, camera):  # noqa: F811
    """Surface points seen in colour are found again through the depth and the
    depth-to-colour calibration, a few centimetres of baseline apart."""
    f = _view(ict, camera).frame
    obs = segment_head(f, max_points=3000, seed=0)
    rng = np.random.default_rng(0)
    pts = obs.points[rng.choice(len(obs.points), 200, replace=False)]
    cam = fl.to_color(pts, f)
    ci = f.color_intrinsics
    uv = np.stack([ci.fx * cam[:, 0] / cam[:, 2] + ci.cx, ci.fy * cam[:, 1] / cam[:, 2] + ci.cy], 1)
    lifted, ok = fl.lift(uv, f, float(np.median(pts[:, 2])) + 0.05)
    assert ok.mean() > 0.9
    err = np.linalg.norm(lifted[ok] - pts[ok], axis=1)
    assert np.median(err) < 0.002, np.median(err)


def test_similarity_recovers_scale_rotation_translation():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 3))
    R = Rotation.from_rotvec([0.3, -1.2, 2.0]).as_matrix()
    s, Rs, t = fl.similarity(src, 0.2 * src @ R.T + [1, 2, 3])
    assert np.isclose(s, 0.2) and np.allclose(Rs, R) and np.allclose(t, [1, 2, 3])


@pytest.fixture(scope="module")
def face_model():
    model = fl.FaceModel.load(SCALE)
    yield model
    if model is not None:
        model.landmarker.close()


@needs_ict
@needs_mediapipe
@pytest.mark.parametrize("camera,roll,distance", [("azure_nfov", 0, 0.6), ("azure_nfov", 90, 0.6),
                                                  ("azure_nfov", 180, 0.6),
                                                  ("truedepth_640", -90, 0.3)])  # fmt: skip
def test_landmarks_found_and_posed_at_any_roll(ict, face_model, camera, roll, distance):  # noqa: F811
    """No pose given: the crop is turned along the head's long axis until MediaPipe finds
    a face whose steady points fit the embedding; its pose is the head's."""
    s = _view(ict, camera, roll, distance)
    obs = segment_head(s.frame, max_points=3000, seed=0)
    face = face_model.landmarker.observe(s.frame, obs.points)
    assert face is not None
    assert face.rms < fl.STEADY_RMS and face.ok[fl.STEADY].mean() >= 0.8
    R, _ = face_model.start_pose(face)
    err = np.degrees(Rotation.from_matrix(R @ s.R.T).magnitude())
    assert err < 10.0, err


@needs_ict
@needs_mediapipe
def test_landmarks_read_blinks_depth_cannot(ict, face_model):  # noqa: F811
    blink = np.zeros(len(ARKIT_NAMES), np.float32)
    blink[[ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]] = 1.0
    cols = [ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]
    read = []
    for w in (None, blink):
        s = _view(ict, arkit=w)
        obs = segment_head(s.frame, max_points=3000, seed=0)
        face = face_model.landmarker.observe(s.frame, obs.points)
        read.append(face_model.arkit(face, np.zeros(len(ARKIT_NAMES), np.float32))[cols].mean())
    assert read[1] > read[0] + 0.4, read


@needs_ict
@needs_mediapipe
def test_no_face_in_colour_is_not_fatal(ict, face_model):  # noqa: F811
    s = _view(ict)
    s.frame.color = np.full_like(s.frame.color, 128)  # the colour camera saw nothing
    obs = segment_head(s.frame, max_points=3000, seed=0)
    assert face_model.landmarker.observe(s.frame, obs.points) is None


@needs_ict
@needs_mediapipe
@pytest.mark.slow
def test_tracker_uses_colour_and_falls_back_once(ict, tmp_path, face_model):  # noqa: F811
    """With colour, landmarks start and steer the fit and give the eye weights; a colour
    stream that does not match its calibration is said once and tracking goes on."""
    from dphm.core.capture.folder import CaptureFolder
    from dphm.core.capture.simulate import expression_track, simulate
    from dphm.core.model.head import load_head
    from dphm.core.tracking.presets import get_preset
    from dphm.core.tracking.tracker import Tracker, track

    out = tmp_path / "cap"
    arkit = expression_track("talking", None, 8, 30.0)
    simulate(out, ict, arkit, identity_seed=3, meshes=False, roll=90.0, color=True)
    model, content = load_head()
    tracker = Tracker(model, content, get_preset("preview"), face=face_model)
    results, arrays = track(tracker, CaptureFolder(out))
    assert all(r.found for r in results)
    assert tracker.timings["landmarks"] > 0 and tracker.face_targets is not None
    assert tracker.face_targets.shape == (fl.N_LANDMARKS, 3)
    truth = np.load(out / "ground_truth" / "pose.npz")
    err = [np.degrees(Rotation.from_matrix(a @ b.T).magnitude())
           for a, b in zip(arrays["R"], truth["R"], strict=True)]  # fmt: skip
    assert np.median(err) < 5.0, err

    def shrunk(frames):
        for f in frames:
            f.color = f.color[::2, ::2].copy()
            yield f

    tracker = Tracker(model, content, get_preset("preview"), face=face_model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results, _ = track(tracker, shrunk(CaptureFolder(out)))
    said = [str(w.message) for w in caught if "colour landmarks: off" in str(w.message)]
    assert len(said) == 1 and "but their calibration is" in said[0]
    assert all(r.found for r in results) and tracker.face_targets is None


@needs_ict
@pytest.mark.slow
def test_colour_stream_round_trips_folder_and_mkv(ict, tmp_path):  # noqa: F811
    """The simulator's colour frames and calibration come back from both formats."""
    from dphm.core.capture.opener import open_source
    from dphm.core.capture.simulate import expression_track, simulate

    arkit = expression_track("talking", None, 3, 30.0)
    for out in (tmp_path / "cap", tmp_path / "take.mkv"):
        simulate(out, ict, arkit, identity_seed=1, meshes=False, color=True)
        with open_source(out, color=True) as src:
            frames = list(src)
        assert len(frames) == 3
        for f in frames:
            ci = f.color_intrinsics
            assert f.color.shape == (ci.height, ci.width, 3) and fl.color_problem(f) == ""
            assert abs(f.depth_to_color[0, 3] + 0.032) < 0.005  # the Kinect's baseline
            face = f.color[f.color.sum(2) > 30]
            assert len(face) > 10_000 and face.std() > 5  # a shaded head, not a blank


@pytest.mark.slow
@needs_ict
@needs_mediapipe
def test_tiny_landmark_training_gives_a_loadable_model(ict, tmp_path):  # noqa: F811
    from dphm.core.train.face_landmarks import train_face_landmarks

    out = tmp_path / "face_landmarks.pt"
    report = train_face_landmarks("tiny", out, quiet=True)
    model = fl.FaceModel.load(SCALE, out)
    assert report["notes"]["frames_found"] > 20
    assert model.canonical.shape == (fl.N_LANDMARKS, 3)
    inner = model.spread[fl.STEADY]
    assert np.median(inner) < 0.004  # MediaPipe holds the nose and eye corners to mm
    model.landmarker.close()


@needs_ict
@needs_mediapipe
@pytest.mark.slow
def test_track_command_reads_the_mkv_colour_track(ict, tmp_path):  # noqa: F811
    """``dphm track`` on a colour .mkv opens its COLOR track and uses the landmarks;
    ``--no-landmarks`` tracks the same file on depth only."""
    from dphm.core.capture.simulate import expression_track, simulate
    from dphm.core.cli import main
    from dphm.core.tracking.take import read_take

    mkv = tmp_path / "take.mkv"
    simulate(mkv, ict, expression_track("blinking", None, 6, 30.0), identity_seed=2,
             meshes=False, color=True)  # fmt: skip
    takes = []
    for extra in ([], ["--no-landmarks"]):
        out = tmp_path / f"take{len(takes)}.npz"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            argv = ["track", str(mkv), "--out", str(out), "--quality", "preview", *extra]
            assert main(argv) == 0
        assert not [w for w in caught if "colour landmarks: off" in str(w.message)]
        takes.append(read_take(out))
    blink = [ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]
    # the eyelid weights come from the landmarks, so the two takes differ there
    assert not np.allclose(takes[0]["arkit"][:, blink], takes[1]["arkit"][:, blink])
