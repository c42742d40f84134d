"""The ``linear_3dmm`` baseline: ICT-FaceKit's linear model fitted to the same points.

Identity (100) and expression (57, in [0, 1]) weights and the pose are fitted by
point-to-plane ICP against the skin vertices: identity on the first frame, then per frame
expression and pose warm started from the previous frame. On ICT-simulated takes this is
an oracle (the generating model). With ``similarity`` the first frame also fits a scale
(the pose is a similarity), as for heads that are not ICT's.
"""

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..data.ict import HEAD_NECK
from .fit import _skew_exp

STRIDE = 3  # every STRIDE-th skin vertex takes part in the correspondences


class LinearTracker:
    def __init__(self, ict, steps=(120, 25), w_id=1e-4, similarity=False):
        n = HEAD_NECK[1]
        sel = np.arange(0, n, STRIDE)
        self.ict, self.sel, self.steps, self.w_id = ict, sel, steps, w_id
        self.neutral = torch.as_tensor(ict.neutral[sel])
        self.id_basis = torch.as_tensor(ict.identity_deltas[:, sel])
        self.exp_basis = torch.as_tensor(ict.expression_deltas[:, sel])
        self.id_w, self.state = torch.zeros(len(self.id_basis)), None
        self.similarity, self.scale = similarity, torch.zeros(())  # log scale

    def vertices(self, id_w, exp_w):
        return (
            self.neutral
            + torch.tensordot(id_w, self.id_basis, 1)
            + torch.tensordot(exp_w, self.exp_basis, 1)
        )

    def fit(self, points, R0, t0):
        """(exp weights (57,), R, t) for one frame; R0, t0 map ICT metres -> camera."""
        first = self.state is None
        exp = torch.zeros(57) if first else self.state[0].clone()
        if not first:
            R0, t0 = self.state[1], self.state[2]
        logit = torch.logit(exp.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
        id_w = self.id_w.clone().requires_grad_(first)
        w = torch.zeros(3, requires_grad=True)
        dt = torch.zeros(3, requires_grad=True)
        p = torch.as_tensor(points, dtype=torch.float32)
        R0 = torch.as_tensor(R0, dtype=torch.float32)
        t0 = torch.as_tensor(t0, dtype=torch.float32)
        log_s = self.scale.clone().requires_grad_(first and self.similarity)
        params = [logit, w, dt] + ([id_w] if first else [])
        params += [log_s] if log_s.requires_grad else []
        opt = torch.optim.Adam(params, lr=0.02)
        steps = self.steps[0] if first else self.steps[1]
        for k in range(steps):
            R = _skew_exp(w[None])[0] @ R0
            v = log_s.exp() * self.vertices(id_w, torch.sigmoid(logit)) @ R.T + t0 + 0.01 * dt
            if k % 5 == 0:
                vn = v.detach().cpu().numpy()
                _, idx = cKDTree(vn).query(points)
                nrm = torch.as_tensor(_vertex_normals(vn)[idx])
            d = ((p - v[idx]) * nrm).sum(1)
            loss = d.abs().clamp(max=0.01).mean() + self.w_id * (id_w**2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            R = _skew_exp(w[None])[0] @ R0
            self.state = (torch.sigmoid(logit).detach(), R, t0 + 0.01 * dt.detach())
            if first:
                self.id_w, self.scale = id_w.detach(), log_s.detach()
        return self.state[0].cpu().numpy(), R.cpu().numpy(), self.state[2].cpu().numpy()

    def mesh(self, exp_w, R, t):
        """All ICT vertices in camera space for the fitted identity."""
        v = float(self.scale.exp()) * self.ict.head(self.id_w.cpu().numpy(), exp_w)
        return v @ np.asarray(R).T + np.asarray(t)


def _vertex_normals(v_sel):
    """Normals of the vertices from their 8 nearest neighbours (PCA), facing the camera."""
    tree = cKDTree(v_sel)
    _, nb = tree.query(v_sel, k=8)
    q = v_sel[nb] - v_sel[nb].mean(1, keepdims=True)
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    n = vt[:, -1]
    n *= np.where(np.sum(n * v_sel, 1, keepdims=True) > 0, -1.0, 1.0)
    return n.astype(np.float32)
