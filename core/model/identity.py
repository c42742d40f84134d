"""Identity signed distance field: local MLPs on anchors plus one global MLP (NPHM).

A global identity code z_id predicts the anchor positions (offsets from the mean anchors)
and one local code per anchor. A query point x is evaluated by the local MLPs of its K
nearest anchors, in the anchor's local frame, and by the global MLP; the SDF is the blend

    sdf(x) = (w_g f_g(x) + sum_k w_k f_k(x - a_k)) / (w_g + sum_k w_k),
    w_k = exp(-|x - a_k|^2 / (2 sigma^2)).

Left/right anchor pairs share one MLP; the right anchor mirrors its local x coordinate.
Local MLPs run only on the points that chose them, so the cost per query is K small MLPs.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def act(x):
    return F.relu(x)


class IdentitySDF(nn.Module):
    def __init__(
        self,
        mean_anchors,
        mirror,
        d_id=64,
        d_local=16,
        hidden_local=64,
        hidden_global=128,
        k=4,
        sigma=0.15,
        global_weight=0.1,
        local_scale=4.0,
    ):
        super().__init__()
        mirror = torch.as_tensor(mirror, dtype=torch.long)
        a = len(mirror)
        self.k, self.sigma, self.global_weight, self.local_scale = (
            k,
            sigma,
            global_weight,
            local_scale,
        )
        self.register_buffer("mean_anchors", torch.as_tensor(mean_anchors, dtype=torch.float32))
        # one MLP per midline anchor or left/right pair; the right one of a pair is mirrored
        mlp_of, flip, u = torch.zeros(a, dtype=torch.long), torch.zeros(a), 0
        for i in range(a):
            j = int(mirror[i])
            if j >= 0 and j < i:
                mlp_of[i], flip[i] = mlp_of[j], 1.0
            else:
                mlp_of[i], u = u, u + 1
        self.register_buffer("mlp_of", mlp_of)
        self.register_buffer("flip", torch.stack([1 - 2 * flip, torch.ones(a), torch.ones(a)], 1))
        self.n_mlp, self.d_local = u, d_local
        self.to_anchor = nn.Linear(d_id, a * 3)
        self.to_local = nn.Linear(d_id, a * d_local)
        nn.init.zeros_(self.to_anchor.weight)
        nn.init.zeros_(self.to_anchor.bias)
        h = hidden_local
        self.w1x = nn.Parameter(torch.randn(u, 3, h) * math.sqrt(2 / 3))
        self.w1z = nn.Parameter(torch.randn(u, d_local, h) * math.sqrt(1 / d_local))
        self.b1 = nn.Parameter(torch.zeros(u, h))
        self.w2 = nn.Parameter(torch.randn(u, h, h) * math.sqrt(2 / h))
        self.b2 = nn.Parameter(torch.zeros(u, h))
        self.w3 = nn.Parameter(torch.randn(u, h, 1) * 1e-3)
        self.b3 = nn.Parameter(torch.zeros(u, 1))
        g = hidden_global
        self.g_in = nn.Linear(3, g)
        self.g_z = nn.Linear(d_id, g, bias=False)
        self.g_hidden = nn.ModuleList([nn.Linear(g, g) for _ in range(2)])
        self.g_out = nn.Linear(g, 1)
        self._sphere_init(g, radius=0.6)

    def _sphere_init(self, g, radius):
        """Geometric initialisation: the global MLP starts close to a sphere's SDF."""
        for lin in [self.g_in, *self.g_hidden]:
            nn.init.normal_(lin.weight, 0.0, math.sqrt(2 / lin.out_features))
            nn.init.zeros_(lin.bias)
        nn.init.normal_(self.g_out.weight, math.sqrt(math.pi / g), 1e-4)
        nn.init.constant_(self.g_out.bias, -radius)
        nn.init.normal_(self.g_z.weight, 0.0, 1e-4)

    def anchors(self, z_id):
        """(B, A, 3) anchor positions for identity codes (B, D)."""
        return self.mean_anchors + self.to_anchor(z_id).view(len(z_id), -1, 3)

    def condition(self, z_id):
        """Everything per identity that does not depend on the query point."""
        b = len(z_id)
        anchors = self.anchors(z_id)
        local = self.to_local(z_id).view(b, -1, self.d_local)
        bias1 = torch.einsum("bad,adh->bah", local, self.w1z[self.mlp_of]) + self.b1[self.mlp_of]
        return {"anchors": anchors, "bias1": bias1, "gz": self.g_z(z_id)}

    def forward(self, x, cond, shape_index=None):
        """SDF (M,) at points x (M, 3); shape_index (M,) picks each point's identity."""
        m = len(x)
        s = (
            torch.zeros(m, dtype=torch.long, device=x.device)
            if shape_index is None
            else shape_index
        )
        anchors = cond["anchors"]
        d2 = ((x[:, None, :] - anchors.index_select(0, s)) ** 2).sum(-1)
        d2k, idx = d2.topk(self.k, dim=1, largest=False)
        w = torch.exp(-d2k / (2 * self.sigma**2))
        f_local = self._local(x, s, idx.reshape(-1), anchors, cond["bias1"]).view(m, self.k)
        h = act(self.g_in(x) + cond["gz"].index_select(0, s))
        for lin in self.g_hidden:
            h = act(lin(h))
        f_global = self.g_out(h).squeeze(-1)
        num = self.global_weight * f_global + (w * f_local).sum(1)
        return num / (self.global_weight + w.sum(1))

    def _local(self, x, s, anchor, anchors, bias1):
        point = torch.arange(len(x), device=x.device).repeat_interleave(self.k)
        mlp = self.mlp_of[anchor]
        order = torch.argsort(mlp)
        counts = torch.bincount(mlp, minlength=self.n_mlp).tolist()
        n_anchor = anchors.shape[1]
        flat_anchors, flat_bias = anchors.reshape(-1, 3), bias1.reshape(-1, bias1.shape[-1])
        outs = []
        for u, sel in enumerate(torch.split(order, counts)):
            if len(sel) == 0:
                continue
            p, a = point[sel], anchor[sel]
            sa = s.index_select(0, p) * n_anchor + a
            local = x.index_select(0, p) - flat_anchors.index_select(0, sa)
            local = local * self.flip.index_select(0, a) * self.local_scale
            h = act(torch.addmm(flat_bias.index_select(0, sa), local, self.w1x[u]))
            h = act(torch.addmm(self.b2[u], h, self.w2[u]))
            outs.append(torch.addmm(self.b3[u], h, self.w3[u]).squeeze(-1))
        out = torch.cat(outs)
        return torch.zeros(len(point), dtype=x.dtype, device=x.device).index_put((order,), out)
