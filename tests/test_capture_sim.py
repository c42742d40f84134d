"""The rasteriser, the noise model, expression sequences and the simulated Kinect."""

import json

import numpy as np
import pytest
from dphm.core.capture import sequences
from dphm.core.capture.frame import Intrinsics, backproject
from dphm.core.capture.mkv import KinectRecording
from dphm.core.capture.noise import axial_sigma, kinect_noise
from dphm.core.capture.raster import face_normals, rasterize
from dphm.core.capture.simulate import (
    ICT_TO_CAMERA,
    KINECT_NFOV,
    HeadSimulator,
    head_motion,
    simulate,
)
from dphm.core.cli import main
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.data.ict import default_path, load_ict
from scipy.spatial import cKDTree

needs_ict = pytest.mark.skipif(
    default_path() is None, reason="ICT-FaceKit (../shared/data/ict_facekit_light) is absent"
)
SMALL = Intrinsics(300.0, 300.0, 79.5, 59.5, 160, 120)


@pytest.fixture(scope="module")
def ict():
    return load_ict()


def test_plane_depth_is_exact():
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    v[:, 2] = 0.6 + 0.1 * v[:, 0] - 0.05 * v[:, 1]
    r = rasterize(v, [[0, 1, 2], [0, 2, 3]], SMALL)
    assert (r.tri_id >= 0).all()
    p = backproject(r.depth, SMALL)
    np.testing.assert_allclose(p[:, 2], 0.6 + 0.1 * p[:, 0] - 0.05 * p[:, 1], atol=1e-6)
    n = np.array([0.1, -0.05, -1]) / np.linalg.norm([0.1, -0.05, -1])
    ray = p / np.linalg.norm(p, axis=1, keepdims=True)
    np.testing.assert_allclose(r.cos[r.tri_id >= 0], np.abs(ray @ n), atol=1e-6)


def _sphere(radius=0.1, centre=(0.01, -0.02, 0.5), n=96):
    th, ph = np.meshgrid(
        np.linspace(0, np.pi, n), np.linspace(0, 2 * np.pi, 2 * n, endpoint=False), indexing="ij"
    )
    v = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1).reshape(-1, 3)
    idx = np.arange(n * 2 * n).reshape(n, 2 * n)
    a, b = idx[:-1], np.roll(idx, -1, 1)[:-1]
    c, d = idx[1:], np.roll(idx, -1, 1)[1:]
    tris = np.concatenate(
        [np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)]
    )
    return v * radius + centre, tris


def test_sphere_depth_and_backprojection():
    centre, radius = np.array([0.01, -0.02, 0.5]), 0.1
    v, tris = _sphere(radius, centre)
    r = rasterize(v, tris, SMALL)
    p = backproject(r.depth, SMALL)
    err = np.abs(np.linalg.norm(p - centre, axis=1) - radius)
    assert len(p) > 2000 and err.max() < 5e-4  # chord error of the tessellation only
    a, b = (rasterize(v, t, SMALL, cull_back=True) for t in (tris, tris[:, ::-1]))
    front, back = (a, b) if a.depth[a.depth > 0].mean() < b.depth[b.depth > 0].mean() else (b, a)
    assert np.array_equal(front.depth, r.depth)  # culling the far half changes nothing
    both = (back.depth > 0) & (front.depth > 0)
    assert (back.depth[both] > front.depth[both]).all()  # the other winding sees the far half


def test_noise_statistics():
    rng = np.random.default_rng(0)
    depth = np.zeros((200, 200), np.float32)
    depth[20:180, 20:180] = 0.7
    cos = np.ones_like(depth)
    noisy = kinect_noise(depth, cos, rng)
    inner = noisy[30:170, 30:170]
    assert np.allclose(inner * 1000, np.round(inner * 1000), atol=1e-3)  # whole millimetres
    sigma = axial_sigma(np.float64(0.7), np.float64(0.0))
    measured = np.std(inner - 0.7)
    assert np.sqrt(max(measured**2 - 1e-6 / 12, 0)) == pytest.approx(sigma, rel=0.2)
    border = (depth > 0) & ~np.pad(np.ones((158, 158), bool), 21)
    assert 0.4 < (noisy[border] == 0).mean() < 0.8  # silhouette pixels mostly invalid
    grazing = kinect_noise(depth, np.full_like(depth, np.cos(np.deg2rad(85))), rng)
    assert (grazing == 0).all()
    dropped = kinect_noise(depth, cos, rng, dropout=0.5)[30:170, 30:170]
    assert 0.45 < (dropped == 0).mean() < 0.55
    assert axial_sigma(0.8, 0.0) > axial_sigma(0.5, 0.0)
    assert axial_sigma(0.6, 1.2) > axial_sigma(0.6, 0.3)


def test_sequence_files_match_recipes(tmp_path):
    sequences.write_files(tmp_path)
    for name in sequences.NAMES:
        shipped = json.loads((sequences.FOLDER / f"{name}.json").read_text())
        assert shipped == json.loads((tmp_path / f"{name}.json").read_text())
        w = sequences.sample(shipped, 120, 30)
        assert w.shape == (120, 52) and 0 <= w.min() and w.max() <= 1 and w.max() > 0.5
    blink = sequences.sample(sequences.load("blinking"), 60, 30)
    assert blink[:, ARKIT_NAMES.index("eyeBlinkLeft")].max() > 0.9


def test_arkit_csv_variants(tmp_path):
    csv = tmp_path / "llf.csv"
    csv.write_text(
        "Timecode,BlendShapeCount,EyeBlinkLeft,eyeBlink_R,JAWOPEN,HeadYaw\n"
        "00:00:00:00.000,61,0.5,0.25,1.5,0.1\n00:00:00:01.000,61,0,1,0.2,0.1\n"
    )
    times, w = sequences.load_arkit_csv(csv)
    assert times is None and w.shape == (2, 52)
    assert w[0, ARKIT_NAMES.index("eyeBlinkLeft")] == 0.5
    assert w[0, ARKIT_NAMES.index("eyeBlinkRight")] == 0.25
    assert w[0, ARKIT_NAMES.index("jawOpen")] == 1.0  # clipped
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="bad.csv: no column is named like an ARKit"):
        sequences.load_arkit_csv(bad)


def test_head_motion_faces_camera_within_range():
    pivot = np.array([0.0, 0.02, 0.08])
    for kind in ("normal", "fast", "none"):
        R, t = head_motion(90, 30, pivot, 3, kind)
        centre = R @ pivot + t
        assert ((centre[:, 2] >= 0.5) & (centre[:, 2] <= 0.8)).all()
        forward = R @ np.array([0, 0, 1.0])  # ICT +z (out of the face) looks at the camera
        assert (forward[:, 2] < -0.8).all()
        assert np.allclose(np.linalg.det(R), 1)
    assert np.array_equal(head_motion(5, 30, pivot, 0, "none")[0][0], ICT_TO_CAMERA)


@needs_ict
def test_simulator_reproducible_and_on_the_mesh(ict):
    arkit = sequences.sample(sequences.load("talking"), 3, 30)
    a, b = HeadSimulator(ict, 4, seed=9), HeadSimulator(ict, 4, seed=9)
    R, t = head_motion(3, 30, a.pivot, 9)
    fa, fb = a.frame(2, arkit[2], R[2], t[2]), b.frame(2, arkit[2], R[2], t[2])
    assert np.array_equal(fa.frame.depth, fb.frame.depth)
    other = HeadSimulator(ict, 4, seed=10).frame(2, arkit[2], R[2], t[2])
    assert not np.array_equal(other.frame.depth, fa.frame.depth)
    # back-projected pixels lie on the ground-truth surface: exactly when clean, within
    # the noise otherwise (distance to the plane of the triangle seen at that pixel)
    r = rasterize(fa.vertices, a.triangles, KINECT_NFOV, cull_back=True)
    assert np.array_equal(r.depth, fa.clean)
    n = face_normals(fa.vertices, a.triangles)
    for depth, limit in ((fa.clean, 1e-6), (fa.frame.depth, 0.002)):
        m = (depth > 0) & (r.tri_id >= 0)
        p = backproject(depth, KINECT_NFOV, m)
        tri = r.tri_id[m]
        dist = np.abs(((p - fa.vertices[a.triangles[tri, 0]]) * n[tri]).sum(1))
        assert np.median(dist) < limit
    z = fa.frame.depth[fa.frame.valid]
    assert 0.45 < np.median(z) < 0.85 and fa.frame.valid.sum() > 10000
    d, _ = cKDTree(fa.vertices).query(fa.frame.points())
    assert np.percentile(d, 95) < 0.005


@needs_ict
def test_simulate_folder_and_mkv_agree(ict, tmp_path):
    arkit = sequences.sample(sequences.load("smiling"), 4, 30)
    gt = simulate(tmp_path / "cap", ict, arkit, identity_seed=1, seed=2, meshes=True)
    simulate(tmp_path / "take.mkv", ict, arkit, identity_seed=1, seed=2, meshes=False)
    from dphm.core.capture.folder import CaptureFolder

    folder, rec = CaptureFolder(tmp_path / "cap"), KinectRecording(tmp_path / "take.mkv")
    assert folder.intrinsics == KINECT_NFOV and rec.intrinsics.K.tolist() == KINECT_NFOV.K.tolist()
    for f, g in zip(folder, rec, strict=True):
        assert np.array_equal(f.depth, g.depth) and f.timestamp == pytest.approx(
            g.timestamp, abs=1e-6
        )
    assert sorted(p.name for p in gt.iterdir())[:2] == ["000000.obj", "000001.obj"]
    header = (gt / "arkit.csv").read_text().splitlines()[0].split(",")
    assert header == ["frame", "time", *ARKIT_NAMES]
    info = json.loads((gt / "identity.json").read_text())
    assert info["identity_seed"] == 1 and len(info["identity_weights"]) == 100
    pose = np.load(gt / "pose.npz")
    from dphm.core.data.obj import read_obj

    v, _ = read_obj(gt / "000003.obj")
    sim = HeadSimulator(ict, 1)
    placed = sim.vertices(arkit[3]) @ pose["R"][3].T + pose["t"][3]
    np.testing.assert_allclose(v, placed, atol=2e-6)
    assert (tmp_path / "take_ground_truth" / "pose.npz").is_file()
    try:
        import pyk4a
    except ImportError:
        return
    pb = pyk4a.PyK4APlayback(tmp_path / "take.mkv")
    pb.open()
    try:
        for f in folder:
            assert np.array_equal(pb.get_next_capture().depth, np.round(f.depth * 1000))
    finally:
        pb.close()


def test_simulate_without_ict_is_clear(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), "--ict", str(tmp_path / "no.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dphm simulate: error: the simulator renders ICT-FaceKit heads")
    assert "no.npz" in err and "\n" not in err
