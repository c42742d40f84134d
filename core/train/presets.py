"""Named training presets. ``tiny`` is for tests (a minute or two on 2 cores); ``default``
produces the shipped weights (head model: about an hour on 2 CPU cores; priors: under 10
minutes; encoder: about half an hour); ``long`` (head model only) trains the same data
four times as long (about three hours: it resumes across sessions)."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class HeadPreset:
    n_identities: int  # training identities (codes)
    exps_per_identity: int  # posed heads per identity
    n_expressions: int  # distinct expression codes, shared across identities
    id_steps: int
    exp_steps: int
    shapes_per_step: int
    n_surf: int  # surface points per shape and step
    n_sdf: int  # near + space points with SDF per shape and step
    n_grad: int  # points per shape with normal / eikonal terms
    n_corr: int  # correspondences per posed head and step
    lr: float = 1e-3
    lr_codes: float = 3e-3
    seed: int = 0
    # triplane family: the 2D adversarial objective on volume-rendered normal maps
    adv_views: int = 4  # fake maps per adversarial step (its first shapes, random views)
    adv_every: int = 2  # steps per adversarial step (generator and discriminator)
    adv_res: int = 32  # map resolution (rays per side)
    adv_samples: int = 12  # samples per ray in the band around the traced surface
    real_views: int = 8  # real maps rendered per training identity
    lr_disc: float = 2e-4
    r1: float = 1.0  # R1 penalty weight, applied every ``r1_every`` steps (lazy R1)
    r1_every: int = 2  # in adversarial steps


HEAD_PRESETS = {
    "tiny": HeadPreset(
        n_identities=4,
        exps_per_identity=3,
        n_expressions=6,
        id_steps=250,
        exp_steps=250,
        shapes_per_step=4,
        n_surf=512,
        n_sdf=512,
        n_grad=64,
        n_corr=512,
        adv_views=2,
        adv_res=16,
        adv_samples=8,
        real_views=4,
    ),
    "default": HeadPreset(
        n_identities=192,
        exps_per_identity=12,
        n_expressions=768,
        id_steps=5000,
        exp_steps=5000,
        shapes_per_step=16,
        n_surf=512,
        n_sdf=768,
        n_grad=96,
        n_corr=1024,
    ),
}
HEAD_PRESETS["long"] = replace(HEAD_PRESETS["default"], id_steps=20_000, exp_steps=20_000)

# loss weights (canonical units: 1 mm = 0.005)
ID_LOSS = {"surf": 3.0, "sdf": 1.0, "normal": 0.1, "eikonal": 0.05, "anchor": 10.0, "reg": 1e-4}
EXP_LOSS = {"corr": 1.0, "surf": 0.2, "reg": 1e-4}
ADV_LOSS = 0.01  # the triplane family's generator loss on normal maps
# which identity terms each loss set keeps (the 2D-adversarial thesis' ablation): 3D losses
# are surf, sdf and normal; regularisers eikonal and the code norm; anchors always
LOSS_SETS = {
    "full": ("surf", "sdf", "normal", "eikonal", "anchor", "reg", "adv"),
    "3d": ("surf", "sdf", "normal", "anchor"),
    "3d_reg": ("surf", "sdf", "normal", "eikonal", "anchor", "reg"),
    "2d_reg": ("eikonal", "anchor", "reg", "adv"),
}
SDF_CLAMP = 0.1  # canonical units (2 cm)
N_ANCHOR_HALF = 22  # farthest-point samples on the left half; 35 anchors in all


@dataclass(frozen=True)
class PriorPreset:
    width: int  # denoiser width (residual MLP)
    depth: int  # residual blocks
    dropout: float
    id_steps: int
    exp_steps: int
    batch: int
    lr: float = 1e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    seed: int = 0
    id_width: int | None = None  # identity denoiser, if smaller than the expression one
    id_depth: int | None = None

    def for_space(self, space: str) -> "PriorPreset":
        """This preset with the denoiser size of one latent space ("id" or "exp")."""
        if space != "id":
            return self
        return replace(self, width=self.id_width or self.width, depth=self.id_depth or self.depth)


PRIOR_PRESETS = {
    "tiny": PriorPreset(width=64, depth=2, dropout=0.0, id_steps=200, exp_steps=200, batch=64),
    # 192 identity codes: a quarter-size denoiser and 1,500 steps generalise (1-NN 0.44,
    # nn_ratio 0.81); width 256 x 4 blocks at 2,000 steps copies its codes (0.27, 0.51)
    "default": PriorPreset(
        width=256,
        depth=4,
        dropout=0.2,
        id_steps=1500,
        exp_steps=3000,
        batch=256,
        id_width=128,
        id_depth=3,
    ),
}


@dataclass(frozen=True)
class EncoderPreset:
    n_frames: int  # simulated frames (the samples of the last ``val`` share validate)
    steps: int
    batch: int
    n_points: int  # points per frame (training draws a quarter to all of them)
    guesses: int = 2  # pose guesses (samples) per frame
    width: int = 256
    lr: float = 1e-3
    val: float = 0.05
    seed: int = 0


ENCODER_PRESETS = {
    "tiny": EncoderPreset(n_frames=20, steps=80, batch=8, n_points=128, width=64, lr=1e-2),
    "default": EncoderPreset(n_frames=2000, steps=4000, batch=32, n_points=1024),
}
