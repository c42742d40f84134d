"""The amortised encoder: training (tiny preset), checkpoint, prediction, use in the tracker."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dphm.core.errors import DPHMError
from dphm.core.model import checkpoint
from dphm.core.paths import WEIGHTS_DIR, shared_data_dir
from dphm.core.tracking.encoder import (
    Encoder,
    PointEncoder,
    canonical_input,
    code_map,
    load_encoder,
    load_encoder_for,
    save_encoder,
)

DATA = shared_data_dir()
HEAD = Path(os.environ.get("DPHM_TEST_HEAD", WEIGHTS_DIR / "head_model.pt"))
needs_data = pytest.mark.skipif(
    DATA is None or not (DATA / "ict_facekit_light").is_dir() or not HEAD.is_file(),
    reason="needs ICT-FaceKit (../shared/data) and a head checkpoint (DPHM_TEST_HEAD)",
)


def fake_content(sha="ab" * 32, d=8):
    g = torch.Generator().manual_seed(0)
    return {
        "codebooks": {"exp_weights": torch.rand(30, 57, generator=g), "exp": torch.randn(30, d)},
        "sha256": sha,
    }


def test_checkpoint_missing_damaged_or_foreign(tmp_path, monkeypatch):
    monkeypatch.setenv("DPHM_WEIGHTS", str(tmp_path))
    content = fake_content()
    assert load_encoder_for(content) is None  # optional: silently absent
    with pytest.raises(DPHMError, match="encoder.pt: checkpoint not found"):
        load_encoder_for(content, required=True)
    path = tmp_path / "encoder.pt"
    save_encoder(path, PointEncoder(width=16), content, {})
    enc = load_encoder_for(content)
    assert enc is not None and enc.code_map.shape == (58, 8)
    other = fake_content("cd" * 32)
    assert load_encoder_for(other) is None  # belongs to another head model
    with pytest.raises(DPHMError, match="trained for head model abababababab"):
        load_encoder_for(other, required=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for required in (False, True):
        with pytest.raises(DPHMError, match="encoder.pt: not a readable checkpoint"):
            load_encoder_for(content, required=required)
    checkpoint.save(path, "prior", {"x": 1})
    with pytest.raises(DPHMError, match="is a 'prior' checkpoint, expected 'encoder'"):
        load_encoder(path)


def test_prediction_shapes_and_pose_composition():
    content = fake_content()
    anchors = [[0.0, 0.0, 0.5], [0.3, -0.2, 0.1]]
    net = PointEncoder(width=16, anchors=anchors)
    with torch.no_grad():  # a known pose correction: b = (0.1, 0, 0), A = identity
        net.out.bias[57 + 6] = 0.1
        net.out.bias[57 + 9 + 2] = 0.05  # the first landmark 0.05 (1 cm) off its anchor in z
    enc = Encoder(net, code_map(content), content["sha256"])
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 0.05, (50, 3)) + [0, 0, 0.6]
    nrm = np.tile([0.0, 0.0, -1.0], (50, 1))
    x = canonical_input(pts, nrm, np.eye(3), np.array([0, 0, 0.6]), n=64, seed=1)
    assert x.shape == (64, 6) and x.dtype == np.float32  # drawn with replacement
    np.testing.assert_allclose(np.abs(x[:, :3]).max() * 0.2, np.abs(pts - [0, 0, 0.6]).max(), 0.3)

    class Obs:
        points, normals, index = pts, nrm, 0

    R0 = np.diag([1.0, -1.0, -1.0])
    (p,) = enc.predict([Obs], [(R0, np.array([0, 0, 0.6]))])
    assert p["z_exp"].shape == (8,) and p["ict"].shape == (57,) and p["arkit"].shape == (52,)
    assert 0 <= p["arkit"].min() and p["arkit"].max() <= 1
    np.testing.assert_allclose(p["R"], R0, atol=1e-6)
    np.testing.assert_allclose(p["t"], [0.02, 0, 0.6], atol=1e-6)  # t0 + s R0 b
    # landmarks: t0 + s R0 (anchor + offset), in the guess's frame; spreads s exp(-3)
    np.testing.assert_allclose(p["landmarks"], [[0, 0, 0.49], [0.06, 0.04, 0.58]], atol=1e-6)
    np.testing.assert_allclose(p["landmark_spread"], 0.2 * np.exp(-3.0), rtol=1e-5)
    assert Encoder(PointEncoder(width=16), code_map(content), "").n_landmarks == 0


@needs_data
def test_tiny_training_lowers_loss_and_drives_the_tracker(tmp_path, monkeypatch):
    from dphm.core import cli
    from dphm.core.capture import sequences
    from dphm.core.capture.simulate import HeadSimulator, head_motion
    from dphm.core.data.ict import load_ict
    from dphm.core.model.head import load_head
    from dphm.core.tracking.presets import PRESETS
    from dphm.core.tracking.tracker import Tracker, track
    from dphm.core.train import encoder as train_encoder

    torch.set_num_threads(1)
    monkeypatch.setattr(train_encoder, "WEIGHTS_DIR", tmp_path)  # the sample cache
    out = tmp_path / "w" / "encoder.pt"
    args = ["train", "encoder", "--preset", "tiny", "--head", str(HEAD), "--out", str(out)]
    assert cli.main(args) == 0
    assert list((tmp_path / "training").glob("encoder_data_tiny_*.npz"))
    history = checkpoint.load(out, kind="encoder")["notes"]["history"]
    assert history["train_end"] < 0.95 * history["train_start"]

    model, content = load_head(HEAD)
    monkeypatch.setenv("DPHM_WEIGHTS", str(out.parent))
    enc = load_encoder_for(content, required=True)
    monkeypatch.setenv("DPHM_WEIGHTS", str(tmp_path / "none"))
    assert Tracker(model, content, PRESETS["preview"]).encoder is None

    sim = HeadSimulator(load_ict(), identity_seed=5, seed=1)
    R, t = head_motion(3, 30, sim.pivot, 1)
    w = sequences.sample(sequences.load("talking"), 3, 30)
    frames = [sim.frame(i, w[i], R[i], t[i]).frame for i in range(3)]
    preset = PRESETS["preview"].but(id_steps=5, keyframes=1)
    tracker = Tracker(model, content, preset, encoder=enc)
    results, arrays = track(tracker, frames)
    assert all(r.found for r in results) and tracker.timings["encoder"] > 0
    assert arrays["z_exp"].shape == (3, content["codebooks"]["exp"].shape[1])

    # a frame starts from whichever of the encoder's guess and the prediction fits better
    from dphm.core.tracking.fit import fit_frames

    obs = tracker.observe(frames[2])
    tracker.history = [results[1].state]
    pred = tracker._prediction()

    def err(state):
        p = preset.but(n_normal=0)
        return fit_frames(model, tracker.z_id, [obs], [state], p, tracker.prior, 0, seed=2)[2][0]

    start = tracker._start(obs)
    assert obs.landmarks.shape == (enc.n_landmarks, 3) == (len(model.cfg.anchor_vertices), 3)
    assert err(start) <= min(err(pred), err(tracker.encode(obs, pred))) + 1e-4
