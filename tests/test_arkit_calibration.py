"""ARKit weights calibrated to the performer: neutral clip, per-shape gain, One-Euro filter."""

import numpy as np
import pytest
from dphm.core.cli import main
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.errors import DPHMError
from dphm.core.tracking import arkit_calibration as cal
from dphm.core.tracking.take import read_take

BLINK_L, BLINK_R = ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")
SMILE_L = ARKIT_NAMES.index("mouthSmileLeft")


def biased_performance(t=60, seed=0):
    """A resting face that reads half-asleep (blink 0.25, smile 0.11) for 10 frames, then a
    full blink and a smile, with tracker jitter."""
    rng = np.random.default_rng(seed)
    w = np.zeros((t, 52))
    w[:, [BLINK_L, BLINK_R]] = 0.25
    w[:, SMILE_L] = 0.11
    w[20:24, [BLINK_L, BLINK_R]] = 1.0
    w[30:50, SMILE_L] = 0.11 + 0.6
    return np.clip(w + rng.normal(0, 0.01, w.shape), 0, 1)


def test_neutral_clip_removes_the_resting_bias_and_keeps_the_range():
    raw = biased_performance()
    neutral = cal.neutral_weights(raw, range(0, 10))
    assert neutral[BLINK_L] == pytest.approx(0.25, abs=0.02)
    out = cal.calibrate(raw, neutral)
    assert np.abs(out[:10]).max() <= 0.05  # the resting face reads neutral
    assert out[20:24, BLINK_L].min() >= 0.95  # a full blink is still a full blink
    # a smile of 0.6 above rest reads 0.6 / (1 - 0.11) of the way up
    assert np.median(out[30:50, SMILE_L]) == pytest.approx(0.6 / 0.89, abs=0.03)
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_gains_scale_named_shapes_both_sides():
    gain = cal.parse_gains(["eyeBlink=1.5", "jawOpen=0.5", "mouthSmileLeft=2"])
    assert gain[BLINK_L] == gain[BLINK_R] == 1.5 and gain[SMILE_L] == 2
    assert gain[ARKIT_NAMES.index("jawOpen")] == 0.5 and gain.sum() == 48 + 1.5 * 2 + 0.5 + 2
    out = cal.calibrate(np.full((1, 52), 0.4), None, gain)
    puff = ARKIT_NAMES.index("cheekPuff")
    assert out[0, BLINK_L] == pytest.approx(0.6) and out[0, puff] == pytest.approx(0.4)
    for bad in ("eyeBlnk=1.2", "jawOpen=x", "jawOpen=-1", "jawOpen"):
        with pytest.raises(DPHMError, match="--gain"):
            cal.parse_gains([bad])


def test_one_euro_steadies_rest_and_keeps_a_blinks_timing():
    t = np.arange(120) / 30.0
    rng = np.random.default_rng(1)
    rest = 0.2 + rng.normal(0, 0.03, 120)
    step = np.where(np.arange(120) >= 60, 1.0, 0.0) + rng.normal(0, 0.03, 120)
    out = cal.one_euro(np.c_[rest, step], t, min_cutoff=1.5, beta=0.5)
    assert out[:, 0].std() < rest.std() / 3  # jitter at rest: at least 3x smaller
    # the blink reaches 80 % within 3 frames; a 9-frame moving average needs 4 or more
    assert out[63, 1] >= 0.8
    box = np.convolve(step, np.ones(9) / 9, mode="full")[:120]
    assert box[63] < 0.8
    np.testing.assert_allclose(cal.one_euro(np.c_[rest], t, 1e6, 0.0)[:, 0], rest, atol=1e-4)
    assert cal.one_euro(np.zeros((1, 52)), [0.0]).shape == (1, 52)
    with pytest.raises(DPHMError, match="One-Euro"):
        cal.one_euro(np.zeros((3, 2)), t[:3], min_cutoff=0)


def test_track_writes_a_calibrated_take(tmp_path, capsys):
    """``dphm track --neutral --gain`` on a simulated take: calibrated weights, the raw kept."""
    pytest.importorskip("torch")
    cap = tmp_path / "cap"
    if main(["simulate", "--out", str(cap), "--frames", "6", "--sequence", "blinking",
             "--no-meshes"]) != 0:  # fmt: skip
        pytest.skip("the simulator needs ICT-FaceKit: " + capsys.readouterr().err)
    take = tmp_path / "take.npz"
    argv = ["track", str(cap), "--out", str(take), "--quality", "preview", "--neutral", "0:3",
            "--gain", "eyeBlink=1.4"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    t = read_take(take)
    neutral = np.median(t["arkit_raw"][:3], axis=0)
    np.testing.assert_allclose(t["arkit_neutral"], neutral, atol=1e-6)
    assert t["arkit_gain"][BLINK_L] == t["arkit_gain"][BLINK_R] == pytest.approx(1.4)
    expected = cal.calibrate(t["arkit_raw"], t["arkit_neutral"], t["arkit_gain"])
    np.testing.assert_allclose(t["arkit"], expected, atol=1e-6)
    assert np.abs(t["arkit"][:3]).max() <= np.abs(t["arkit_raw"][:3]).max()
    capsys.readouterr()
    assert main(["track", str(cap), "--out", str(tmp_path / "x.npz"), "--neutral", "4:2"]) == 2
    assert "--neutral 4:2: the clip is empty" in capsys.readouterr().err
    assert main(["track", str(cap), "--out", str(tmp_path / "x.npz"), "--neutral", "9:12",
                 "--quality", "preview"]) == 2  # fmt: skip
    assert "no such frames in the take (6 frames)" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
