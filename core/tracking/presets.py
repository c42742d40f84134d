"""Tracking presets: every weight, step count and learning rate, by quality.

Units: points and SDF values are canonical (1 = 0.2 m); ``trunc`` caps a point's residual
(outliers stop pulling); ``w_*`` weigh the loss terms of ``fit.fit_frames``:
data (mean truncated |sdf|), normal (1 - cos between SDF gradient and observed normal),
anchor landmarks (distance in units of each landmark's spread, capped at 3; 1e-3 was the
best of 0 / 3e-4 / 1e-3 / 3e-3 on the benchmark takes, and it never enters identity fits),
prior on each code (diffusion prior, or L2 toward the codebook statistics without one;
each with its own weights, tuned on the clean benchmark take: the diffusion loss is a
noisy, flatter pull than L2 and wants about ten times the weight on the expression code),
temporal smoothness of the expression code and of the pose (rotation in radians,
translation in canonical units) toward the neighbouring frames.
"""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    n_points: int  # points per frame in the loss
    n_normal: int  # of which carry the normal term (costs a double backward)
    keyframes: int  # frames fitted jointly for the identity
    id_steps: int
    steps: int  # per frame, warm started from the previous frame
    encoder_steps: int  # per frame instead, when the encoder's guess started it
    early_stop_mm: float  # stop a frame's steps once the fit error drops below
    window: int  # joint refinement window (0: none)
    window_steps: int
    lr_id: float = 1e-2
    lr_exp: float = 2e-2
    lr_rot: float = 3e-3
    lr_trans: float = 3e-3
    trunc: float = 0.05
    n_select: int = 0  # points scoring the start candidates of a frame (0: n_points)
    thin_below_mm: float = 0.0  # after a frame's first step, points fitting within this
    thin_keep: float = 1.0  # keep this share of them (weighted up) for the later steps
    w_normal: float = 0.02
    w_anchor: float = 1e-3  # the encoder's anchor landmarks (per frame; none without it)
    w_face: float = 2e-3  # the colour stream's face landmarks (none without colour)
    w_prior_id: float = 3e-3  # diffusion prior (DPHMs' denoising loss, t in [0.4, 0.6] T)
    w_prior_exp: float = 3e-2
    w_l2_id: float = 1e-3  # the L2 code prior used instead when no diffusion prior is given
    w_l2_exp: float = 1e-3
    w_smooth_exp: float = 1e-3
    w_smooth_rot: float = 1.0
    w_smooth_trans: float = 1.0
    refine_identity: bool = False  # fit the per-take correction of the identity's SDF
    cache: bool = True  # frames query the fixed identity's cached SDF (``model.sdf_cache``)

    def but(self, **changes) -> "Preset":
        return replace(self, **changes)


PRESETS = {
    "preview": Preset("preview", 400, 0, 3, 60, 3, 1, 0.6, 0, 0, lr_exp=4e-2, n_select=150),
    "balanced": Preset(
        "balanced", 1000, 100, 5, 100, 10, 3, 0.4, 8, 3, n_select=200, thin_below_mm=1.0,
        thin_keep=0.5, refine_identity=True,
    ),
    "best": Preset(
        "best", 4000, 500, 8, 300, 40, 20, 0.0, 10, 15, thin_below_mm=1.0, thin_keep=0.25,
        refine_identity=True,
    ),
}


def get_preset(name: str) -> Preset:
    from ..errors import DPHMError

    if name not in PRESETS:
        raise DPHMError(f"unknown quality {name!r} (one of {', '.join(PRESETS)})")
    return PRESETS[name]
