"""Backward expression deformation (DPHMs): posed space -> canonical space.

delta(x, z_exp, c_id) is an MLP on the posed point, the expression code and a compressed
identity c_id (a linear map of the identity code and its anchors), so x + delta lands on the
identity's canonical (neutral) surface. The conditioning enters the first layer as a
per-shape bias, so a query costs one small MLP.
"""

import torch
from torch import nn

from .identity import act


class ExpressionDeformation(nn.Module):
    def __init__(self, n_anchors, d_id=64, d_exp=64, d_id_compressed=16, hidden=128, layers=3):
        super().__init__()
        self.compress = nn.Linear(d_id + n_anchors * 3, d_id_compressed)
        self.inp = nn.Linear(3, hidden)
        self.cond = nn.Linear(d_exp + d_id_compressed, hidden, bias=False)
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(layers - 1)])
        self.out = nn.Linear(hidden, 3)
        nn.init.normal_(self.out.weight, 0.0, 1e-4)
        nn.init.zeros_(self.out.bias)

    def condition(self, z_exp, z_id, anchors):
        c_id = self.compress(torch.cat([z_id, anchors.flatten(1)], 1))
        return self.cond(torch.cat([z_exp, c_id], 1))

    def forward(self, x, cond, shape_index=None):
        """Offsets (M, 3) taking posed points x (M, 3) to canonical space."""
        c = cond[0] if shape_index is None else cond.index_select(0, shape_index)
        h = act(self.inp(x) + c)
        for lin in self.hidden:
            h = act(lin(h))
        return self.out(h)
