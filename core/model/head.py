"""The head model: identity SDF in canonical space composed with the backward deformation.

    sdf_posed(x; z_id, z_exp) = sdf_id(x + delta(x; z_exp, z_id, anchors(z_id)); z_id)

Two families of identity SDF, chosen by ``ModelConfig.family`` (checkpoints without the
key are ``nphm``): ``nphm``, local MLPs on anchors (``identity.py``), and ``triplane``,
generated feature planes and a small decoder (``triplane.py``). Sizes are chosen for the
CPU: an ``nphm`` query costs K=4 local MLPs of width 64 and a global MLP of width 64, a
``triplane`` query three bilinear reads and an MLP of width 64; in posed space both add a
deformation MLP of width 128.
"""

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import FAMILIES
from .expression import ExpressionDeformation
from .identity import IdentitySDF
from .triplane import TriplaneSDF


@dataclass
class ModelConfig:
    d_id: int = 64
    d_exp: int = 64
    d_local: int = 16
    hidden_local: int = 64
    hidden_global: int = 64
    k: int = 4
    sigma: float = 0.15
    hidden_exp: int = 128
    layers_exp: int = 3
    d_id_compressed: int = 16
    anchor_vertices: list = field(default_factory=list)  # ICT vertex ids
    mirror: list = field(default_factory=list)  # partner index or -1
    mean_anchors: list = field(default_factory=list)  # (A, 3) canonical
    family: str = "nphm"
    plane_channels: int = 16  # triplane: channels per plane
    plane_res: int = 128  # triplane: plane resolution over the canonical cube
    plane_width: int = 128  # triplane: generator width at its 8x8 seed
    plane_generated: int = 64  # triplane: resolution the generator's convolutions reach
    hidden_plane: int = 64  # triplane: decoder width

    def to_dict(self):
        return asdict(self)


class HeadModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        a = len(cfg.mirror)
        if cfg.family == "triplane":
            self.identity = TriplaneSDF(
                cfg.mean_anchors,
                cfg.d_id,
                cfg.plane_channels,
                cfg.plane_res,
                cfg.plane_width,
                cfg.hidden_plane,
                cfg.plane_generated,
            )
        elif cfg.family == "nphm":
            self.identity = IdentitySDF(
                cfg.mean_anchors,
                cfg.mirror,
                cfg.d_id,
                cfg.d_local,
                cfg.hidden_local,
                cfg.hidden_global,
                cfg.k,
                cfg.sigma,
            )
        else:
            raise ValueError(f"unknown head model family {cfg.family!r} (one of {FAMILIES})")
        self.expression = ExpressionDeformation(
            a, cfg.d_id, cfg.d_exp, cfg.d_id_compressed, cfg.hidden_exp, cfg.layers_exp
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def condition(self, z_id, z_exp=None):
        """Per-shape conditioning for codes (B, D); reused across many query batches. Codes
        may come from the checkpoint's codebooks on the CPU: they move to the model."""
        z_id = torch.as_tensor(z_id, device=self.device)
        if z_exp is not None:
            z_exp = torch.as_tensor(z_exp, device=self.device)
        cond = {"id": self.identity.condition(z_id)}
        if z_exp is not None:
            cond["exp"] = self.expression.condition(z_exp, z_id, cond["id"]["anchors"])
        return cond

    def sdf(self, x, cond, shape_index=None, refinement=None, canonical=None):
        """Canonical SDF, or posed SDF when the condition holds an expression; a take's
        ``refinement`` (``refinement.Refinement``) corrects the canonical SDF; ``canonical``
        (a ``sdf_cache.CachedSDF`` of the one identity in ``cond``, its refinement
        included) replaces both."""
        if "exp" in cond:
            x = x + self.expression(x, cond["exp"], shape_index)
        if canonical is not None:
            return canonical(x)
        out = self.identity(x, cond["id"], shape_index)
        return out if refinement is None else out + refinement(x)

    def deform(self, x, cond, shape_index=None):
        return self.expression(x, cond["exp"], shape_index)

    def sdf_fn(self, z_id, z_exp=None, batch=16384, refinement=None, canonical=None):
        """A numpy/torch (N, 3) -> (N,) SDF for one head, for meshing, in batches (16k
        queries run faster a query on a CPU than 64k); ``refinement`` (a
        ``refinement.Refinement`` of the identity) corrects the canonical SDF;
        ``canonical`` (a ``sdf_cache.CachedSDF`` of this identity) serves it instead."""
        z_id = torch.as_tensor(z_id, dtype=torch.float32, device=self.device).view(1, -1)
        if z_exp is not None:
            z_exp = torch.as_tensor(z_exp, dtype=torch.float32, device=self.device).view(1, -1)
        with torch.no_grad():
            cond = self.condition(z_id, z_exp)

        @torch.no_grad()
        def fn(x):
            x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
            parts = torch.split(x, batch)
            return torch.cat([self.sdf(c, cond, None, refinement, canonical) for c in parts])

        return fn


def load_head(path=None):
    """(HeadModel in eval mode, checkpoint content) from ``path`` or the default head
    (``paths.head_checkpoint``: the shipped one of ``$DPHM_FAMILY``)."""
    from ..errors import DPHMError
    from ..paths import head_checkpoint
    from .checkpoint import load

    path = path or head_checkpoint()
    content = load(path, kind="head_model")
    try:
        model = HeadModel(ModelConfig(**content["config"]))
        model.load_state_dict(content["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as e:
        raise DPHMError(f"{path}: checkpoint does not match this version's head model ({e})") from e
    return model.eval().requires_grad_(False), content


def load_head_for(take, name, path=None):
    """(HeadModel, content) a take was tracked with (``take["model_sha256"]``): ``path``, or
    whichever head model in the checkpoint folder has that sha256 (the default first), so a
    take of either family finds its own; ``name`` (the take's file) heads the error line."""
    from ..errors import DPHMError
    from ..paths import HEAD_FILES, checkpoint_dir, head_checkpoint
    from .checkpoint import peek

    sha = str(take["model_sha256"])
    if path is None:
        found = [head_checkpoint(), *(checkpoint_dir() / f for f in HEAD_FILES.values())]
        path = next((p for p in found if p.is_file() and peek(p)["sha256"] == sha), None)
        if path is None:
            raise DPHMError(f"{name}: tracked with head model {sha[:12]}, which is not in "
                            f"{checkpoint_dir()}; pass --model")  # fmt: skip
    model, content = load_head(path)
    if content["sha256"] != sha:
        raise DPHMError(f"{name}: tracked with head model {sha[:12]}, not "
                        f"{content['sha256'][:12]}; pass --model")  # fmt: skip
    return model, content
