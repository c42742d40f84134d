"""The amortised encoder: one frame's head points -> expression, pose correction, weights.

Given a pose guess (R0, t0) (the rigid search, or the previous frame's prediction), the
head points and normals are brought into the guessed canonical frame, x = R0^T (p - t0) / s,
and ``N_POINTS`` of them go through a PointNet (shared per-point MLP, max and mean pooling,
MLP). It regresses the 57 ICT expression weights (sigmoid), the correction (A, b) that maps
the true canonical head into the guessed frame (x_guess = A x_true + b; A from a 6D
rotation) and hence R = R0 A, t = t0 + s R0 b, and the head model's anchors as landmarks:
where each anchor's vertex sits on the performer's face in this frame (offsets from the
mean anchors, in the guessed frame), with a spread (the scale of a Laplace distribution
of the distance error) so the tracker can weigh each landmark by its confidence. The
expression code is a fixed ridge map of the weights onto the head model's codebook
(``code_map``), so the encoder is tied to the head checkpoint it was trained for (its
sha256 is stored and checked).
"""

import numpy as np
import torch
from torch import nn

from ..data.arkit import ICT_EXPRESSION_NAMES, ict_to_arkit_matrix
from ..errors import DPHMError
from .rigid import SCALE

KIND = "encoder"
DEFAULT_NAME = "encoder.pt"
N_POINTS = 1024


def code_map(content, ridge: float = 1e-3) -> np.ndarray:
    """(E + 1, D) ridge map [ICT weights, 1] -> expression code, fitted on the codebook."""
    books = content["codebooks"]
    w = books["exp_weights"].double().numpy()
    x = np.concatenate([w, np.ones((len(w), 1))], 1)
    reg = ridge * len(w) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + reg, x.T @ books["exp"].double().numpy()).astype(np.float32)


def rotation_6d(r6: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations from (B, 6) (two columns, Gram-Schmidt)."""
    a = nn.functional.normalize(r6[:, :3], dim=1)
    b = nn.functional.normalize(r6[:, 3:] - (a * r6[:, 3:]).sum(1, keepdim=True) * a, dim=1)
    return torch.stack([a, b, torch.cross(a, b, dim=1)], 2)


class PointEncoder(nn.Module):
    """(B, N, 6) canonicalised points + normals -> weights (B, E), A (B, 3, 3), b (B, 3),
    landmarks (B, L, 3) and their log spreads (B, L), all in the guessed canonical frame.
    ``anchors`` (L, 3): the mean anchors the landmark offsets start from."""

    def __init__(self, n_weights: int = 57, width: int = 256, anchors=()):
        super().__init__()
        anchors = torch.as_tensor(np.asarray(anchors, np.float32).reshape(-1, 3))
        self.config = {"n_weights": n_weights, "width": width, "anchors": anchors.tolist()}
        self.register_buffer("anchors", anchors, persistent=False)
        self.point = nn.Sequential(
            nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, width)
        )
        self.head = nn.Sequential(
            nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, 128), nn.ReLU()
        )
        self.out = nn.Linear(128, n_weights + 9 + 4 * len(anchors))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        f = self.point(x)
        h = self.head(torch.cat([f.max(1).values, f.mean(1)], 1))
        o = self.out(h)
        e, n_lm = self.config["n_weights"], len(self.anchors)
        eye6 = torch.tensor([1.0, 0, 0, 0, 1, 0])
        lm = self.anchors + o[:, e + 9 : e + 9 + 3 * n_lm].view(len(o), n_lm, 3)
        log_spread = (o[:, e + 9 + 3 * n_lm :] - 3.0).clamp(min=-6.0)  # >= 0.5 mm
        return (
            torch.sigmoid(o[:, :e] - 3.0),
            rotation_6d(eye6 + o[:, e : e + 6]),
            o[:, e + 6 : e + 9],
            lm,
            log_spread,
        )


def canonical_input(points, normals, R0, t0, n=N_POINTS, seed=0) -> np.ndarray:
    """(n, 6) float32: ``n`` of the points (drawn with replacement when fewer) and their
    normals in the canonical frame of the pose guess (R0, t0)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(points), n, replace=len(points) < n)
    x = (points[pick] - t0) @ R0 / SCALE
    return np.concatenate([x, normals[pick] @ R0], 1).astype(np.float32)


class Encoder:
    """A trained PointEncoder with its code map; ``predict`` works on numpy observations."""

    def __init__(self, net: PointEncoder, code_map_: np.ndarray, head_sha256: str, path=""):
        self.net = net.eval().requires_grad_(False)
        self.code_map = np.asarray(code_map_, np.float32)
        self.head_sha256, self.path = head_sha256, str(path)
        self.to_arkit = ict_to_arkit_matrix(ICT_EXPRESSION_NAMES).astype(np.float32)
        self.n_landmarks = len(net.anchors)

    def predict(self, observations, poses, seed=0) -> list[dict]:
        """Per observation and pose guess (R0, t0): dict of z_exp (D,), R, t, ict (57,) and
        arkit (52,) weights, landmarks (L, 3) in camera space and their spreads (L,) in
        metres."""
        x = np.stack(
            [
                canonical_input(o.points, o.normals, R0, t0, seed=seed + o.index)
                for o, (R0, t0) in zip(observations, poses, strict=True)
            ]
        )
        with torch.no_grad():
            w, A, b, lm, log_spread = (
                v.cpu().numpy().astype(np.float64) for v in self.net(torch.as_tensor(x))
            )
        codes = np.concatenate([w, np.ones((len(w), 1))], 1) @ self.code_map
        out = []
        for i, (R0, t0) in enumerate(poses):
            out.append(
                {
                    "z_exp": codes[i].astype(np.float32),
                    "R": R0 @ A[i],
                    "t": t0 + SCALE * R0 @ b[i],
                    "ict": w[i].astype(np.float32),
                    "arkit": np.clip(self.to_arkit @ w[i], 0, 1).astype(np.float32),
                    "landmarks": t0 + SCALE * lm[i] @ R0.T,
                    "landmark_spread": SCALE * np.exp(log_spread[i]),
                }
            )
        return out


def save_encoder(path, net: PointEncoder, content, notes: dict) -> str:
    from ..model import checkpoint

    return checkpoint.save(
        path,
        KIND,
        {
            "config": dict(net.config),
            "state_dict": net.state_dict(),
            "code_map": torch.from_numpy(code_map(content)),
            "head_sha256": content["sha256"],
            "notes": notes,
        },
    )


def load_encoder(path, head_sha256: str | None = None, required: bool = True):
    """The encoder in ``path``. A DPHMError names the file when it is damaged or not an
    encoder, and (unless not ``required``, which returns None then) when it is missing or
    was trained for another head model than ``head_sha256``."""
    from pathlib import Path

    from ..model import checkpoint

    if not required and not Path(path).is_file():
        return None
    content = checkpoint.load(path, kind=KIND)
    if head_sha256 is not None and content.get("head_sha256") != head_sha256:
        if not required:
            return None
        raise DPHMError(
            f"{path}: encoder was trained for head model {str(content.get('head_sha256'))[:12]},"
            f" not {head_sha256[:12]}; retrain it with `dphm train encoder`"
        )
    try:
        net = PointEncoder(**content["config"])
        net.load_state_dict(content["state_dict"])
        cmap = content["code_map"].float().numpy()
    except (TypeError, KeyError, RuntimeError) as e:
        raise DPHMError(f"{path}: checkpoint does not match this version's encoder ({e})") from e
    return Encoder(net, cmap, content["head_sha256"], path)


def load_encoder_for(content, required=False) -> Encoder | None:
    """The encoder beside the checkpoints (``paths.checkpoint_dir``) for this head model;
    optional by default (see ``load_encoder``)."""
    from ..paths import companion

    return load_encoder(companion(content.get("path"), DEFAULT_NAME), content["sha256"], required)
