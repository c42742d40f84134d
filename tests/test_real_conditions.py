"""Real cameras' conditions: camera profiles in the simulator, and the tracker under a rolled
head, a near face and frames far apart in time."""

import numpy as np
import pytest
from dphm.core.capture import profiles
from dphm.core.capture.noise import kinect_noise
from dphm.core.capture.simulate import HeadSimulator, head_motion
from dphm.core.errors import DPHMError
from scipy.spatial.transform import Rotation
from test_capture_sim import ict, needs_ict  # noqa: F401  (the ICT-FaceKit fixture)


@needs_ict
def test_profiles_give_their_image_and_working_range(ict):  # noqa: F811
    for name, near, far in (("azure_nfov", 0.3, 0.6), ("truedepth_320", 0.25, 0.8),
                            ("kinect_v1", 0.6, 0.9)):  # fmt: skip
        p = profiles.get_profile(name)
        sim = HeadSimulator(ict, profile=p, noise="kinect")
        got = {}
        for d in (near, far):
            R, t = head_motion(1, 30, sim.pivot, 0, "none", distance=d)
            depth = sim.frame(0, np.zeros(52), R[0], t[0]).frame.depth
            assert depth.shape == (p.height, p.width)
            got[d] = depth[depth > 0]
        lo, hi = p.range
        # a face nearer or farther than the camera's range gives no reading there
        for d, z in got.items():
            assert z.size == 0 or (z.min() >= lo - 1e-6 and z.max() <= hi + 1e-6), (name, d)
        inside = near if lo <= near <= hi else far
        assert got[inside].size > 1000, (name, inside)
    assert not profiles.get_profile("azure_nfov").range[0] <= 0.3  # the Kinect sees no 0.3 m
    with pytest.raises(DPHMError, match="unknown camera profile"):
        profiles.get_profile("kinect_v3")


def test_kinect_v1_reports_whole_disparity_steps():
    p = profiles.get_profile("kinect_v1")
    depth = np.full((40, 40), 1.5, np.float32) + np.linspace(0, 0.05, 40, dtype=np.float32)
    out = kinect_noise(depth, np.ones_like(depth), np.random.default_rng(0), profile=p)
    z = out[out > 0]
    steps = 1.0 / (z * p.disparity_step)
    assert np.abs(steps - np.round(steps)).max() < 0.1  # a step, to the sensor's whole mm
    # 5 cm of depth at 1.5 m is a dozen 6.5 mm steps; a time-of-flight camera's whole mm
    tof = kinect_noise(depth, np.ones_like(depth), np.random.default_rng(0))
    assert len(np.unique(z)) <= 15 and len(np.unique(tof[tof > 0])) > 40


def _rotation_errors(take_R, truth_R):
    pairs = zip(take_R, truth_R, strict=True)
    return [np.degrees(Rotation.from_matrix(a @ b.T).magnitude()) for a, b in pairs]


@needs_ict
@pytest.mark.slow
@pytest.mark.parametrize(
    "camera,roll,distance,extras",
    [("azure_nfov", 90.0, None, False), ("azure_nfov", 180.0, None, False),
     ("truedepth_320", 0.0, 0.25, False), ("truedepth_640", -90.0, 0.3, True)],  # fmt: skip
)
def test_rolled_and_near_heads_are_found_and_posed(ict, tmp_path, camera, roll, distance, extras):  # noqa: F811, E501
    """A phone held sideways or upside down, a face 25 cm from a TrueDepth, a body and hair
    in view: every frame is a head and the pose is right (before: no head in any frame)."""
    from dphm.core.capture.folder import CaptureFolder
    from dphm.core.capture.simulate import expression_track, simulate
    from dphm.core.model.head import load_head
    from dphm.core.tracking.presets import get_preset
    from dphm.core.tracking.tracker import Tracker, track

    out = tmp_path / "cap"
    arkit = expression_track("talking", None, 8, 30.0)
    simulate(out, ict, arkit, identity_seed=3, meshes=False, camera=camera, roll=roll,
             distance=distance, body=extras, hair=extras)  # fmt: skip
    model, content = load_head()
    results, arrays = track(Tracker(model, content, get_preset("preview")), CaptureFolder(out))
    assert all(r.found for r in results)
    truth = np.load(out / "ground_truth" / "pose.npz")
    errors = _rotation_errors(arrays["R"], truth["R"])
    assert np.median(errors) < 6.0, errors
    assert np.nanmedian(arrays["fit_error_mm"]) < 1.2


def test_frames_far_apart_start_afresh(monkeypatch):
    """Frames seconds apart share no pose: each starts from the rigid search."""
    from dphm.core.tracking import tracker as tracking
    from dphm.core.tracking.fit import State
    from dphm.core.tracking.preprocess import Observation

    t = tracking.Tracker.__new__(tracking.Tracker)
    t.preset = type("P", (), {"encoder_steps": 1, "steps": 1})()
    t.encoder, t.lost, t.history, t.last_time = None, False, [], 0.0
    starts = []

    def rigid(obs):
        starts.append(obs.index)
        return None  # stop before any fitting

    t.rigid_init = rigid
    t._flagged = lambda obs, reason: reason
    t.history = [State(np.zeros(4), np.eye(3), np.zeros(3))]
    continued = []

    def start(obs):
        continued.append(obs.index)
        raise StopIteration  # stop before any fitting

    t._start = start
    t.last_time = 1.0
    with pytest.raises(StopIteration):  # 33 ms after the last frame: continue from it
        t.step(Observation(np.zeros((400, 3)), np.zeros((400, 3)), 6, 1.033))
    assert continued == [6] and starts == []
    t.last_time = 1.0
    far = Observation(np.zeros((400, 3)), np.zeros((400, 3)), 7, 3.0)  # two seconds later
    assert t.step(far) == "blob does not fit a head" and starts == [7] and continued == [6]
    assert t.lost and t.last_time == 3.0


def test_wild_bench_pose_errors_and_correlations():
    """The wild suite's pose errors vanish for the true poses and grow with an error."""
    from types import SimpleNamespace

    from dphm.core.data import corpus
    from dphm.core.tracking import wild_bench

    R = Rotation.from_euler("y", [[0], [20], [40]], degrees=True).as_matrix()
    t = np.array([[0, 0, 0.6], [0.01, 0, 0.62], [0.0, 0.01, 0.64]])
    sims = [SimpleNamespace(R=r, t=v) for r, v in zip(R, t, strict=True)]
    pivot = np.array([0.0, 0.02, 0.08])
    arrays = {"R": R, "t": t + R @ corpus.CANONICAL_CENTER, "s": np.full(3, corpus.CANONICAL_SCALE),
              "fit_error_mm": np.array([0.5, np.nan, 0.6])}  # fmt: skip
    assert np.allclose(wild_bench.pose_errors(arrays, sims, pivot), 0, atol=1e-6)
    turned = {**arrays, "R": Rotation.from_euler("z", 5, degrees=True).as_matrix() @ R}
    rot, trans = wild_bench.pose_errors(turned, sims, pivot)
    assert rot == pytest.approx(5.0) and trans > 0
    w = np.zeros((20, 52))
    w[5:8, [0, 7]] = 1.0  # a blink on both eyes
    corr = wild_bench.correlations(w * 0.8 + 0.1, w)
    assert corr["corr_eyeBlink"] == pytest.approx(1.0) and np.isnan(corr["corr_mouthSmile"])


@needs_ict
def test_body_and_hair_are_seen_but_not_ground_truth(ict):  # noqa: F811
    from dphm.core.capture.simulate import extras

    plain = HeadSimulator(ict, noise="none")
    full = HeadSimulator(ict, noise="none", body=True, hair=True)
    R, t = head_motion(1, 30, plain.pivot, 0, "none")
    a, b = plain.frame(0, np.zeros(52), R[0], t[0]), full.frame(0, np.zeros(52), R[0], t[0])
    rows_a, rows_b = np.nonzero(a.frame.depth)[0], np.nonzero(b.frame.depth)[0]
    assert rows_b.max() > rows_a.max() + 50  # the torso reaches further down the image
    assert rows_b.min() < rows_a.min()  # hair stands above the crown
    assert np.array_equal(a.vertices, b.vertices)  # ground truth is the head alone
    v, *_ = extras(False, True)
    assert v[:, 2].max() < 0.13  # hair leaves the face bare
    assert extras(False, False)[0].shape == (0, 3)


@needs_ict
def test_occluders_hide_part_of_the_face_not_the_truth(ict):  # noqa: F811
    """A hand against the cheek and a microphone before the chin are seen by the depth
    camera, nearer than the face behind them, and are not part of the ground truth."""
    R, t = head_motion(1, 30, HeadSimulator(ict).pivot, 0, "none")
    plain = HeadSimulator(ict).frame(0, np.zeros(52), R[0], t[0])
    for name in ("hand", "microphone"):
        f = HeadSimulator(ict, occluder=name).frame(0, np.zeros(52), R[0], t[0])
        both = (f.clean > 0) & (plain.clean > 0)
        nearer = both & (f.clean < plain.clean - 0.01)
        assert nearer.sum() > 300, name  # the occluder stands in front of the face
        assert ((f.clean > 0) & (plain.clean == 0)).sum() > 100  # and beyond its outline
        np.testing.assert_array_equal(f.vertices, plain.vertices)  # the truth is the head
    with pytest.raises(DPHMError, match="unknown occluder 'cat'"):
        HeadSimulator(ict, occluder="cat")


def test_seen_by_camera_keeps_the_near_side():
    """The face metrics' 'what the camera saw': of a ball 1 m away, the half facing it."""
    from dphm.core.capture.simulate import KINECT_NFOV, ellipsoid
    from dphm.core.tracking.bench import seen_by_camera

    v, t = ellipsoid((0.0, 0.0, 1.0), (0.1, 0.1, 0.1), n_lat=32, n_lon=64)
    seen = seen_by_camera(v, t, KINECT_NFOV)
    assert 0.3 < seen.mean() < 0.5  # a little under half: perspective, and the rim
    assert v[seen, 2].max() < 1.0 + 0.02 and v[~seen, 2].min() > 1.0 - 0.02


@needs_ict
def test_the_neck_under_the_jaw_is_kept_beside_the_head(ict):  # noqa: F811
    """The jaw's edge splits the neck into a blob of its own: it stays out of the head's
    points (the fit's) and is kept beside them for the identity refinement."""
    from dphm.core.tracking.preprocess import segment_head

    sim = HeadSimulator(ict, seed=1)
    R, t = head_motion(1, 30, sim.pivot, 0, "none")
    obs = segment_head(sim.frame(0, np.zeros(52), R[0], t[0]).frame, beside=True)
    below = lambda p: (((p - t[0]) @ R[0])[:, 1] < -0.09).sum()  # noqa: E731  ICT y up
    assert below(obs.points) < 20 and below(obs.beside) > 200
    assert len(obs.beside) <= 1000
