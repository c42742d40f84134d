"""``dphm bench --suite model``: held-out identities with random held-out expressions.

For each case the codes are fitted to 20k points (with normals) sampled on the complete
ground-truth surface, the posed SDF is meshed at 256^3, and the mesh is compared with the
ground truth by ``core.geometry.metrics.compare_meshes`` (face = ICT's narrow face area).
"""

import time

import numpy as np

from ..data import corpus
from ..data.ict import load_ict
from ..data.surface import REGION_EYE, closed_vertices, inside, sample_surface, topology
from ..geometry.meshing import mesh_sdf
from ..geometry.metrics import compare_meshes
from .fit import fit_codes
from .head import load_head

TARGETS = {
    "cd_l1_mm_face": ("<=", 0.5),
    "f1mm_face": (">=", 0.90),
    "nc_face": (">=", 0.98),
    "cd_l1_mm_head": ("<=", 1.5),
    "mesh_s_256": ("<=", 0.5),
}


def ground_truth_mesh(topo, vertices):
    """The closed head as triangles (metres): skin, caps, and eyeball parts outside the skin."""
    v = closed_vertices(topo, vertices)
    t = topo.triangles
    eye = topo.region == REGION_EYE
    skin = sample_surface(topo, vertices, 100_000, np.random.default_rng(0), (1, 1, 1, 0))
    centroids = v[t[eye]].mean(1)
    keep = ~eye
    keep[np.flatnonzero(eye)] = ~inside(centroids, skin.points, skin.normals)
    return v, t[keep]


def evaluate_case(model, content, ict, topo, id_w, exp_w, seed, resolution=256, steps=300):
    verts = ict.head(id_w, exp_w)
    rng = np.random.default_rng(seed)
    s = sample_surface(topo, verts, 20_000, rng)
    z_id, z_exp = fit_codes(
        model, content, corpus.to_canonical(s.points), s.normals, steps=steps, seed=seed
    )
    stats = {}
    t0 = time.perf_counter()
    pv, pf = mesh_sdf(model.sdf_fn(z_id, z_exp), resolution=resolution, stats=stats)
    mesh_s = time.perf_counter() - t0
    gt_v, gt_t = ground_truth_mesh(topo, verts)
    mask = np.zeros(len(gt_v), bool)
    mask[: ict.n_vertices] = ict.face_vertex_mask
    row = compare_meshes(corpus.from_canonical(pv), pf, gt_v, gt_t, mask, seed=seed)
    row["mesh_s_256"] = mesh_s
    row["queries_256"] = stats.get("queries")
    return row


def checkpoints() -> list[tuple[str, str, object]]:
    """(method, family, path) of every head model present in the weights: the shipped
    families, then the tri-plane ablation (``dphm train model --family triplane --losses``)."""
    from ..paths import checkpoint_dir
    from ..train.commands import default_out

    found = [("dphm", "nphm", checkpoint_dir() / "head_model.pt")]
    for losses in ("full", "3d", "3d_reg", "2d_reg"):
        path = checkpoint_dir() / default_out("model", "triplane", losses).name
        name = "triplane" if losses == "full" else f"triplane_{losses}"
        found.append((name, "triplane", path))
    return [c for c in found if c[2].is_file()]


def run(args) -> list[dict]:
    ict = load_ict()
    topo = topology(ict)
    n = 2 if getattr(args, "quick", False) else 6
    id_w = corpus.identity_weights("heldout", n, len(ict.identity_deltas))
    exp_w = corpus.expression_weights("heldout", ict.expression_names, n)
    rows = []
    for method, family, path in checkpoints():
        model, content = load_head(path)
        mine = []
        for i in range(n):
            row = {"method": method, "family": family, "case": f"heldout{i:02d}"}
            row.update(evaluate_case(model, content, ict, topo, id_w[i], exp_w[i], seed=i))
            mine.append(row)
        keys = [k for k in mine[0] if k not in ("method", "family", "case")]
        median = {k: float(np.median([r[k] for r in mine])) for k in keys}
        rows += [*mine, {"method": method, "family": family, "case": "median", **median}]
    return rows
