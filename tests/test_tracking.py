"""Tracking: take files, preprocessing, rigid initialisation, fitting, ARKit, export."""

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from dphm.core.capture.frame import DepthFrame
from dphm.core.capture.simulate import KINECT_NFOV
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.errors import DPHMError
from dphm.core.paths import WEIGHTS_DIR, shared_data_dir
from dphm.core.tracking import export
from dphm.core.tracking.arkit_map import ArkitMap
from dphm.core.tracking.preprocess import segment_head
from dphm.core.tracking.take import read_take, write_take

DATA = shared_data_dir()
needs_ict = pytest.mark.skipif(
    DATA is None or not (DATA / "ict_facekit_light").is_dir(),
    reason="ICT-FaceKit (../shared/data/ict_facekit_light) is absent",
)
HEAD = Path(os.environ.get("DPHM_TEST_HEAD", WEIGHTS_DIR / "head_model.pt"))
needs_head = pytest.mark.skipif(
    not HEAD.is_file(), reason=f"no head checkpoint at {HEAD} (set DPHM_TEST_HEAD)"
)


def fake_take(n=4, d=8):
    rng = np.random.default_rng(0)
    return dict(
        model_sha256="ab" * 32,
        z_id=rng.standard_normal(d),
        z_exp=rng.standard_normal((n, d)),
        R=np.tile(np.diag([1.0, -1.0, -1.0]), (n, 1, 1)),
        t=np.tile([0, 0, 0.6], (n, 1)),
        s=np.full(n, 0.2),
        timestamps=np.arange(n) / 30,
        arkit=rng.uniform(0, 1, (n, 52)),
        intrinsics=KINECT_NFOV.to_dict(),
        source="sim",
        quality="preview",
        fit_error_mm=np.r_[np.full(n - 1, 0.5), np.nan],
    )


def test_take_round_trip_and_atomic(tmp_path, monkeypatch):
    path = tmp_path / "take.npz"
    write_take(path, **fake_take())
    take = read_take(path)
    assert take["format"] == "dphm-take/2" and take["quality"] == "preview"
    assert tuple(take["arkit_names"]) == ARKIT_NAMES and take["R"].shape == (4, 3, 3)
    assert take["intrinsics"]["fx"] == KINECT_NFOV.fx and np.isnan(take["fit_error_mm"][-1])
    # a failing write leaves the old take intact and no partial file behind as the take
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_take(path, **fake_take(6))
    assert path.read_bytes() == before
    bad = fake_take()
    bad["arkit"] = bad["arkit"][:, :51]
    with pytest.raises(DPHMError):
        write_take(tmp_path / "bad.npz", **bad)


def test_empty_frame_is_flagged():
    frame = DepthFrame(np.zeros((576, 640), np.float32), KINECT_NFOV, 0.0, 7)
    obs = segment_head(frame)
    assert not obs.found and obs.reason and obs.index == 7
    wall = DepthFrame(np.full((576, 640), 1.0, np.float32), KINECT_NFOV, 0.0, 8)
    assert not segment_head(wall).found


def test_thinning_keeps_normal_points_and_reweights():
    import torch
    from dphm.core.tracking.fit import SCALE, _thin, _weighted_median
    from dphm.core.tracking.presets import PRESETS

    preset = PRESETS["balanced"].but(n_normal=3, thin_below_mm=1.0, thin_keep=0.25)
    counts = [1500, 2500]
    res_mm = np.random.default_rng(1).uniform(0, 2, 4000)  # half the points fit within 1 mm
    res = torch.as_tensor(res_mm / 1000 / SCALE, dtype=torch.float32)
    keep, wts = _thin(res, counts, preset, np.random.default_rng(0))
    kept = keep.numpy()
    assert {0, 1, 2, 1500, 1501, 1502} <= set(kept.tolist())  # normal-term points stay
    assert np.all(np.isin(np.flatnonzero(res_mm >= 1), kept))  # poorly fitted points stay
    assert 0.2 < (res_mm[kept] < 1).sum() / (res_mm < 1).sum() < 0.3
    lead = np.isin(kept, [0, 1, 2, 1500, 1501, 1502])
    assert np.all(wts.numpy()[(res_mm[kept] >= 1) | lead] == 1)
    assert np.all(wts.numpy()[(res_mm[kept] < 1) & ~lead] == 4)
    # the weighted mean and median still estimate those of all the points
    assert float((res[keep] * wts).sum() / wts.sum()) == pytest.approx(float(res.mean()), rel=0.05)
    assert _weighted_median(res[keep], wts) == pytest.approx(float(res.median()), rel=0.05)
    # the normal-term indices follow their points into the thinned arrays
    nsel = torch.tensor([0, 1, 2, 1500, 1501, 1502])
    assert torch.equal(keep[torch.searchsorted(keep, nsel)], nsel)


def test_arkit_map_is_in_range_with_apple_names():
    rng = np.random.default_rng(1)
    codes = rng.standard_normal((200, 16))
    weights = np.clip(codes[:, : 57 % 16] @ rng.standard_normal((57 % 16, 57)) * 0.2 + 0.3, 0, 1)
    m = ArkitMap(codes, weights)
    out = m(rng.standard_normal((10, 16)) * 5)
    assert out.shape == (10, 52) and out.min() >= 0 and out.max() <= 1
    assert len(ARKIT_NAMES) == 52 and ARKIT_NAMES[0] == "eyeBlinkLeft"


def test_pc2_and_live_link_csv(tmp_path):
    frames = [np.full((5, 3), i, np.float32) for i in range(3)]
    path = tmp_path / "a.pc2"
    assert export.write_pc2(path, iter(frames)) == 3
    assert path.read_bytes()[:12] == b"POINTCACHE2\0"
    assert struct.unpack("<i", path.read_bytes()[16:20])[0] == 5
    np.testing.assert_array_equal(export.read_pc2(path)[2], frames[2])
    csv = tmp_path / "a.csv"
    take = fake_take()
    export.write_arkit_csv(csv, take)
    lines = csv.read_text().splitlines()
    head = lines[0].split(",")
    assert head[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    assert head[2:54] == [n[0].upper() + n[1:] for n in ARKIT_NAMES]
    assert head[-9:] == list(export.LIVE_LINK_EXTRA) and len(lines) == 5
    row = lines[1].split(",")
    assert row[1] == "61" and float(row[2]) == pytest.approx(take["arkit"][0, 0], abs=1e-5)
    assert abs(float(row[-9])) < 1e-6  # facing the camera: no yaw


@pytest.fixture(scope="module")
def sim_frames():
    from dphm.core.capture import sequences
    from dphm.core.capture.simulate import HeadSimulator, head_motion
    from dphm.core.data.ict import load_ict

    sim = HeadSimulator(load_ict(), identity_seed=11, seed=3)
    n = 8
    R, t = head_motion(n, 30, sim.pivot, 3)
    w = sequences.sample(sequences.load("talking"), n, 30)
    return [sim.frame(i, w[i], R[i], t[i]) for i in range(n)]


@pytest.fixture(scope="module")
def head():
    import torch
    from dphm.core.model.head import load_head

    torch.set_num_threads(1)
    return load_head(HEAD)


@needs_ict
def test_preprocessing_segments_a_simulated_head(sim_frames):
    f = sim_frames[0]
    obs = segment_head(f.frame, max_points=3000)
    assert obs.found and len(obs.points) == 3000
    from scipy.spatial import cKDTree

    d, i = cKDTree(f.vertices).query(obs.points)
    assert np.median(d) < 0.003  # on the head, not the background
    # normals face the camera and agree with the mesh
    assert (np.sum(obs.normals * obs.points, 1) < 0).mean() > 0.95


@needs_ict
@needs_head
def test_rigid_init_recovers_pose(sim_frames, head):
    from dphm.core.data.corpus import CANONICAL_CENTER
    from dphm.core.tracking import rigid

    model, content = head
    tpl = rigid.mean_head(model, content["codebooks"]["id"].mean(0))
    for f in sim_frames[::4]:
        obs = segment_head(f.frame, max_points=3000)
        R, t, res = rigid.initial_pose(obs.points, tpl)
        angle = np.degrees(np.arccos(np.clip((np.trace(R.T @ f.R) - 1) / 2, -1, 1)))
        assert angle < 10
        assert np.linalg.norm(t - (f.t + f.R @ CANONICAL_CENTER)) < 0.02
        assert res < 0.0045


@needs_ict
@needs_head
def test_tracking_lowers_fit_error(sim_frames, head, tmp_path):
    from dphm.core.tracking.fit import fit_frames
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.tracker import Tracker, track

    model, content = head
    preset = PRESETS["preview"].but(id_steps=30, keyframes=2)
    tracker = Tracker(model, content, preset)
    results, arrays = track(tracker, [f.frame for f in sim_frames])
    assert all(r.found for r in results)
    obs = tracker.observe(sim_frames[-1].frame)
    init = tracker.rigid_init(obs)
    init.z_exp = tracker.neutral
    _, _, (err0,), _ = fit_frames(model, tracker.z_id, [obs], [init], preset, tracker.prior, 0)
    assert arrays["fit_error_mm"][-1] < err0
    assert np.nanmedian(arrays["fit_error_mm"]) < 1.5
    assert arrays["arkit"].min() >= 0 and arrays["arkit"].max() <= 1
    path = write_take_from(arrays, tmp_path)
    faces, frames = export.posed_meshes(model, read_take(path), resolution=32)
    n = export.write_pc2(tmp_path / "t.pc2", frames)
    assert export.read_pc2(tmp_path / "t.pc2").shape[0] == n == len(sim_frames)


@needs_ict
@needs_head
def test_identity_keyframes_keep_their_own_poses(head):
    """Keyframes far apart in time (here a fast turn) must not be pulled toward each other's
    pose while the identity is fitted."""
    from dphm.core.capture.simulate import HeadSimulator, head_motion
    from dphm.core.data.ict import load_ict
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.tracker import Tracker

    sim = HeadSimulator(load_ict(), identity_seed=5, seed=2)
    R, t = head_motion(30, 30, sim.pivot, 0, "fast")
    frames = [sim.frame(i, np.zeros(52), R[i], t[i]) for i in (0, 14, 29)]
    model, content = head
    tracker = Tracker(model, content, PRESETS["preview"].but(id_steps=60), encoder=None)
    obs = [tracker.observe(f.frame) for f in frames]
    assert len(tracker.fit_identity(obs)) == 3
    for f, o in zip(frames, obs, strict=True):
        tracker.history, tracker.lost = [], True
        r = tracker.step(o)
        angle = np.degrees(np.arccos(np.clip((np.trace(r.state.R.T @ f.R) - 1) / 2, -1, 1)))
        assert angle < 5 and r.fit_error_mm < 1.2


@needs_head
def test_anchor_landmarks_pull_the_pose_home(head):
    """Landmarks at the model's own posed anchors: the anchor term vanishes at the true pose
    and brings a shifted, turned start back to it several times closer than the same points
    as plain surface points do; identity fits ignore it."""
    import torch
    from dphm.core.tracking.fit import fit_frames
    from dphm.core.tracking.preprocess import Observation
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.rigid import SCALE
    from dphm.core.tracking.tracker import CodePrior, State

    model, content = head
    z_id = content["codebooks"]["id"].mean(0).numpy()
    z_exp = content["codebooks"]["exp"][5].numpy()
    with torch.no_grad():
        cond = model.condition(torch.as_tensor(z_id)[None], torch.as_tensor(z_exp)[None])
        a = cond["id"]["anchors"][0]
        p = a.clone()
        for _ in range(50):  # posed anchors: p + delta(p) = a
            p = a - model.expression(p, cond["exp"])
    R = np.diag([1.0, -1.0, -1.0])
    t = np.array([0.01, -0.02, 0.6])
    lm = t + SCALE * p.numpy().astype(np.float64) @ R.T
    obs = Observation(
        lm, np.zeros_like(lm), 0, 0.0, landmarks=lm, landmark_spread=np.full(len(lm), 0.002)
    )
    preset = PRESETS["preview"].but(w_normal=0.0, early_stop_mm=0.0, w_prior_exp=0.0)
    prior = CodePrior(content, preset.but(w_l2_exp=0.0))
    turn = np.array([[1, 0, 0], [0, np.cos(0.08), -np.sin(0.08)], [0, np.sin(0.08), np.cos(0.08)]])
    start = State(z_exp.copy(), turn @ R, t + [0.012, 0.0, -0.008])
    err = {}
    for w in (0.0, 0.05):
        fit = preset.but(w_anchor=w)
        _, (s,), _, _ = fit_frames(model, z_id, [obs], [start], fit, prior, 150)
        err[w] = np.linalg.norm(s.t - t) * 1000
    from dphm.core.tracking.fit import _anchor_term, _landmarks

    with torch.no_grad():
        term = _anchor_term(
            model,
            cond,
            torch.as_tensor(R, dtype=torch.float32)[None],
            torch.as_tensor(t, dtype=torch.float32)[None],
            *_landmarks([obs], preset.but(w_anchor=1)),
        )
    assert float(term) < 0.05  # in spreads: the landmarks sit where the model puts them
    assert err[0.05] < 0.2 and err[0.05] < 0.3 * err[0.0]
    # the identity fit leaves the landmarks out
    plain = Observation(lm, np.zeros_like(lm), 0, 0.0)
    z = [
        fit_frames(model, z_id, [o], [start], preset.but(w_anchor=0.05), prior, 5, True)[0]
        for o in (obs, plain)
    ]
    np.testing.assert_array_equal(z[0], z[1])


def write_take_from(arrays, tmp_path):
    return write_take(tmp_path / "t.npz", intrinsics=KINECT_NFOV.to_dict(), source="sim", **arrays)


@needs_head
@pytest.mark.skipif(
    DATA is None or not (DATA / "azure_kinect" / "recording.mkv").is_file(),
    reason="the Azure Kinect recording (../shared/data/azure_kinect) is absent",
)
def test_real_recording_gives_take_or_clear_message(tmp_path, capsys):
    from dphm.core.cli import main

    out = tmp_path / "ak.npz"
    rc = main([
        "track", str(DATA / "azure_kinect" / "recording.mkv"), "--out", str(out),
        "--quality", "preview", "--model", str(HEAD),
    ])  # fmt: skip
    err = capsys.readouterr().err
    if rc == 0:
        assert read_take(out)["z_exp"].shape[0] >= 1
    else:
        assert rc == 2 and "recording.mkv: no head in view" in err and "Traceback" not in err
