"""Inverse deformation: posed points whose backward offsets land on the canonical points."""

import numpy as np
import pytest
import torch
from dphm.core.geometry.inverse import InversionError, invert_deformation
from dphm.core.model.head import HeadModel, ModelConfig


def contraction_model(gain):
    torch.manual_seed(0)
    anchors = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.0, 0.5, 0.4], [0.0, -0.2, 0.7]]
    cfg = ModelConfig(mirror=[1, 0, -1, -1], mean_anchors=anchors, anchor_vertices=[1, 2, 3, 4])
    model = HeadModel(cfg).eval().requires_grad_(False)
    with torch.no_grad():
        model.expression.out.weight.normal_(0.0, gain)
    cond = model.condition(torch.randn(1, 64), torch.randn(1, 64))
    return model, cond


def test_inverse_of_a_contraction():
    model, cond = contraction_model(0.01)
    c = np.random.default_rng(0).uniform(-0.9, 0.9, (2000, 3)).astype(np.float32)
    x, residual = invert_deformation(model, cond, c)
    with torch.no_grad():
        back = x + model.deform(torch.from_numpy(x), cond).numpy()
    offsets = np.abs(x - c).max()
    assert offsets > 1e-3  # the deformation really moves the points
    assert np.abs(back - c).max() < 1e-5 and residual.max() < 1e-5
    # A warm start from the answer converges at once.
    again, _ = invert_deformation(model, cond, c, init=x, iters=1, newton_iters=0)
    np.testing.assert_allclose(again, x, atol=1e-5)


class Expanding:
    """delta(x) = -1.5 x + 0.1 sin(3x): no contraction (fixed-point steps diverge), but
    x + delta(x) = -0.5 x + 0.1 sin(3x) is monotone, so Newton finds the inverse."""

    def deform(self, x, cond):
        return -1.5 * x + 0.1 * torch.sin(3 * x)


def test_newton_takes_over_where_fixed_point_steps_diverge():
    c = np.random.default_rng(1).uniform(-0.3, 0.3, (500, 3)).astype(np.float32)
    x, residual = invert_deformation(Expanding(), None, c, iters=3, newton_iters=20)
    back = -0.5 * x + 0.1 * np.sin(3 * x)
    assert residual.max() < 1e-5 and np.abs(back - c).max() < 1e-5


def test_failure_is_loud_or_reported():
    c = np.random.default_rng(2).uniform(-0.3, 0.3, (500, 3)).astype(np.float32)
    with pytest.raises(InversionError, match=r"did not converge for \d+ of 500 points") as e:
        invert_deformation(Expanding(), None, c, iters=3, newton_iters=0)
    assert e.value.residual.shape == (500,) and e.value.residual.max() > 1e-5
    x, residual = invert_deformation(Expanding(), None, c, iters=3, newton_iters=0, strict=False)
    assert x.shape == (500, 3) and (residual > 1e-5).any()
