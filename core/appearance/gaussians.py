"""A take's Gaussian appearance head: 3D Gaussians bound to the triangles of its head mesh.

The guiding geometry is the take's identity mesh (``tracking.export.identity_mesh``), posed
in every frame as the bake poses it. Each Gaussian sits on one triangle at fixed
barycentrics and lives in that triangle's frame (edge, in-plane normal, normal), so its
position, orientation and view-dependent colour follow the frame's expression and head
pose. Per Gaussian: an offset in the triangle frame (metres), log scales, a rotation
(quaternion, relative to the triangle frame), opacity (logit) and degree-1 spherical
harmonics (DC, then y, z, x bands; 3DGS's convention) for colour.
"""

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .splat import SH_C0

FORMAT = "dphm-appearance/1"
STATE = ("offset", "log_scale", "quat", "opacity_logit", "sh")


def quaternion_matrix(q):
    """(N, 3, 3) rotations of quaternions (N, 4) (w, x, y, z; normalised here)."""
    w, x, y, z = F.normalize(q, dim=1).unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], 1).view(-1, 3, 3)  # fmt: skip


def triangle_frames(vertices, faces):
    """(F, 3, 3) orthonormal frames (columns: first edge, in-plane normal, normal)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    e1 = F.normalize(b - a, dim=1)
    n = F.normalize(torch.linalg.cross(b - a, c - a), dim=1)
    return torch.stack([e1, torch.linalg.cross(n, e1), n], 2)


class GaussianHead(nn.Module):
    def __init__(self, faces, tri, bary, colours, spacing: float):
        """``faces`` (F, 3) of the guiding mesh; ``tri`` (N,), ``bary`` (N, 3) where the
        Gaussians sit; ``colours`` (N, 3) in [0, 1] to start from; ``spacing`` (metres)
        their mean distance, which sets the initial scales."""
        super().__init__()
        n = len(tri)
        self.register_buffer("faces", torch.as_tensor(np.asarray(faces), dtype=torch.long))
        self.register_buffer("tri", torch.as_tensor(np.asarray(tri), dtype=torch.long))
        self.register_buffer("bary", torch.as_tensor(np.asarray(bary), dtype=torch.float32))
        self.offset = nn.Parameter(torch.zeros(n, 3))
        scale = np.log([spacing, spacing, 0.3 * spacing])
        self.log_scale = nn.Parameter(torch.tensor(scale, dtype=torch.float32).repeat(n, 1))
        self.quat = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1))
        self.opacity_logit = nn.Parameter(torch.full((n,), 2.0))
        sh = torch.zeros(n, 4, 3)
        sh[:, 0] = (torch.as_tensor(np.asarray(colours), dtype=torch.float32) - 0.5) / SH_C0
        self.sh = nn.Parameter(sh)

    def place(self, vertices):
        """(means (N, 3), covariances (N, 3, 3), frames (N, 3, 3)) on the mesh posed at
        ``vertices`` (V, 3), in their space (metres)."""
        frames = triangle_frames(vertices, self.faces)[self.tri]
        corners = vertices[self.faces[self.tri]]  # (N, 3, 3)
        centre = torch.einsum("nk,nkd->nd", self.bary, corners)
        means = centre + torch.einsum("nij,nj->ni", frames, self.offset)
        rot = frames @ quaternion_matrix(self.quat)
        covs = rot @ torch.diag_embed(torch.exp(2 * self.log_scale)) @ rot.transpose(1, 2)
        return means, covs, frames

    @property
    def opacity(self):
        return torch.sigmoid(self.opacity_logit)

    def dc_colour(self) -> torch.Tensor:
        """(N, 3) view-independent colour (the DC band)."""
        return (SH_C0 * self.sh[:, 0] + 0.5).clamp(0.0, 1.0)


def write_splat_ply(path, means, rotations, log_scales, opacity_logit, sh) -> None:
    """A standard 3D Gaussian splatting .ply (binary little endian; x y z, nx ny nz, f_dc_*,
    f_rest_* (degree 1: three per channel, channel-major), opacity (logit), scale_* (log),
    rot_* (w x y z)), written atomically; the form splat viewers and Blender add-ons open."""
    means, sh = np.asarray(means, np.float32), np.asarray(sh, np.float32)
    n = len(means)
    rest = sh[:, 1:].transpose(0, 2, 1).reshape(n, 9)  # (N, 3 channels x 3 coefficients)
    cols = [means, np.zeros((n, 3), np.float32), sh[:, 0], rest,
            np.asarray(opacity_logit, np.float32).reshape(n, 1),
            np.asarray(log_scales, np.float32), np.asarray(rotations, np.float32)]  # fmt: skip
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(9)] + ["opacity"]
             + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])  # fmt: skip
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(np.concatenate(cols, 1).astype("<f4").tobytes())
    os.replace(tmp, path)


def matrix_quaternion(m: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z) of rotations (N, 3, 3)."""
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(np.asarray(m, np.float64)).as_quat()
    return np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1).astype(np.float32)


def export_ply(head: GaussianHead, vertices, path) -> None:
    """The Gaussians placed on the mesh at ``vertices`` (metres) as a splatting .ply: their
    world rotations, and the SH bands rotated from triangle frames to the mesh's axes."""
    with torch.no_grad():
        means, _, frames = head.place(torch.as_tensor(vertices, dtype=torch.float32))
        rot = frames @ quaternion_matrix(head.quat)
        # the degree-1 bands (y, z, x) add C1 v . dir with v = (-b_x, -b_y, b_z) per channel:
        # v rotates with the frame
        b = head.sh[:, 1:]
        v = torch.einsum("nij,njc->nic", frames, torch.stack([-b[:, 2], -b[:, 0], b[:, 1]], 1))
        sh = torch.stack([head.sh[:, 0], -v[:, 1], v[:, 2], -v[:, 0]], 1)
    write_splat_ply(path, means, matrix_quaternion(rot.numpy()), head.log_scale.detach(),
                    head.opacity_logit.detach(), sh)  # fmt: skip


def save_appearance(path, head, v, f, take, texture, scores) -> Path:
    """The fitted head as one ``.npz`` (written atomically)."""
    from ..npz import save_npz

    data = {k: getattr(head, k).detach().numpy() for k in STATE}
    data.update(format=np.array(FORMAT), vertices=v.astype(np.float32), faces=f.astype(np.int32),
                tri=head.tri.numpy().astype(np.int32), bary=head.bary.numpy(),
                vertex_colours=texture.astype(np.float32),
                model_sha256=np.array(str(take["model_sha256"])),
                z_id=np.asarray(take["z_id"], np.float32),
                scores=np.array(json.dumps(scores)))  # fmt: skip
    return save_npz(path, data)


def load_appearance(path):
    """(GaussianHead, the file's arrays: guiding mesh ``vertices`` (V, 3) canonical units and
    ``faces``, the take's ``z_id`` ...) of a ``dphm appearance`` result (``appearance.npz``);
    one clear error for anything else."""
    from ..errors import DPHMError
    from ..npz import load_npz
    data = load_npz(path, "appearance")
    if str(data.get("format", "")) != FORMAT:
        raise DPHMError(f"{path}: not an appearance of format {FORMAT}")
    try:
        head = GaussianHead(data["faces"], data["tri"], data["bary"],
                            np.full((len(data["tri"]), 3), 0.5), 1.0)  # fmt: skip
        head.load_state_dict({k: torch.from_numpy(np.asarray(data[k], np.float32)) for k in STATE},
                             strict=False)  # fmt: skip
    except (KeyError, RuntimeError, ValueError) as e:
        raise DPHMError(f"{path}: damaged appearance ({e})") from e
    return head.eval().requires_grad_(False), data
