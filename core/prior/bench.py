"""``dphm bench --suite prior``: decoded samples against held-out heads, and sample latents.

Methods: ``dphm`` (the diffusion priors, DDIM 50 steps) and ``gaussian`` (a Gaussian with
the codebook's mean and covariance: the baseline), for each head model family whose prior
is shipped (column ``family``; the tri-plane family's rows are ``dphm_triplane`` and
``gaussian_triplane``: ``prior_triplane.pt`` of ``head_model_triplane.pt``). Cases:

- ``identity``: sampled identity codes, decoded neutral, against the neutral meshes of the
  held-out ICT identities.
- ``expression``: sampled expression codes on training identity 0, against that identity
  (its ICT weights) wearing held-out expressions.
- ``grid16``: 4 sampled identities x 4 sampled expressions, the ``dphm sample`` grid:
  ``sample_s_16`` (sampling + meshing at 128^3) and broken samples across identities.

Samples are meshed at 128^3 (``decode``, as ``dphm sample`` writes them) and compared by
face Chamfer-L1 (``compare_meshes``). The identity and expression cases draw 64 samples
and score them as 4 sets of 16 against 16 held-out heads (one set of 16 swings ``cov`` by
0.06 to 0.1 from draw to draw), reporting the means over the sets; in a set each sample is
matched to its nearest held-out head on a coarse distance matrix (5k points
per surface); ``cov`` is the share of held-out heads that are some sample's match.
``mmd_mm`` is the mean over held-out heads of the distance to the nearest sample, that
pair re-measured on 20k points (a coarse matrix of the full 100k would take an hour).
``one_nn_acc``: leave-one-out 1-NN two-sample accuracy between as many sampled codes as
the training codebook holds and the codebook itself (0.5: indistinguishable; well below
0.5 would mean copies, which ``nn_ratio`` shows directly: the median distance of a sample
to its nearest training code over that of a training code to its nearest other one).
``broken_pct``: meshes with boundary edges (holes) or a second component holding more
than 0.1 % of the faces (stray pieces), or no surface at all, over all 64 samples (16 alone
resolve only 6.25 % steps against a 2 % target).
"""

import time

import numpy as np
import torch

from ..data import corpus
from ..data.ict import load_ict
from ..data.surface import topology
from ..geometry.meshing import boundary_edge_count, mesh_components
from ..geometry.metrics import compare_meshes
from ..model.bench import ground_truth_mesh
from ..model.head import load_head
from ..paths import companion
from .latent import load_prior
from .sample import decode

TARGETS = {
    "cov": (">=", 0.5),
    "mmd_mm": ("<=", 1.0),
    "one_nn_acc": ("<=", 0.65),
    "broken_pct": ("<=", 2),
    "sample_s_16": ("<=", 5),
}
N_MATCH, N_FINAL = 5_000, 20_000
N_BROKEN = 64
STRAY_SHARE = 0.001
RESOLUTION = 128


class GaussianCodes:
    """The baseline: codes from N(mean, covariance) of a codebook."""

    def __init__(self, codes):
        codes = torch.as_tensor(codes, dtype=torch.float64)
        self.mean = codes.mean(0)
        cov = torch.cov(codes.T) + 1e-8 * torch.eye(codes.shape[1], dtype=torch.float64)
        self.chol = torch.linalg.cholesky(cov)

    def sample(self, n, generator=None):
        z = torch.randn(n, len(self.mean), generator=generator, dtype=torch.float64)
        return (self.mean + z @ self.chol.T).float()


def is_broken(faces) -> bool:
    if len(faces) == 0 or boundary_edge_count(faces) > 0:
        return True
    sizes = np.bincount(mesh_components(faces, int(faces.max()) + 1)[faces[:, 0]])
    return int((sizes > STRAY_SHARE * len(faces)).sum()) > 1


def one_nn_accuracy(a, b) -> float:
    x = torch.cat([torch.as_tensor(a), torch.as_tensor(b)]).double()
    label = torch.arange(len(x)) >= len(a)
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float((label[d.argmin(1)] == label).double().mean())


def nn_ratio(samples, train) -> float:
    d = torch.cdist(torch.as_tensor(train).double(), torch.as_tensor(train).double())
    d.fill_diagonal_(float("inf"))
    to_train = torch.cdist(torch.as_tensor(samples).double(), torch.as_tensor(train).double())
    return float(to_train.min(1).values.median() / d.min(1).values.median())


def coverage_mmd(meshes, refs, mask) -> dict:
    """cov and mmd_mm of sample meshes (metres) against reference meshes (face Chamfer)."""

    def face_cd(m, r, n):
        return compare_meshes(*m, *r, mask, n=n, seed=0)["cd_l1_mm_face"] if len(m[1]) else np.inf

    d = np.array([[face_cd(m, r, N_MATCH) for r in refs] for m in meshes])
    cov = len(set(d.argmin(1).tolist())) / len(refs)
    mmd = [face_cd(meshes[s], r, N_FINAL) for s, r in zip(d.argmin(0), refs, strict=True)]
    return {"cov": cov, "mmd_mm": float(np.mean(mmd))}


def _case(method, case, meshes, n_ref, refs, mask, samples, train):
    """A row from the sample meshes: cov and mmd_mm averaged over sets of n_ref."""
    row = {"method": method, "case": case}
    sets = [coverage_mmd(meshes[i : i + n_ref], refs, mask) for i in range(0, len(meshes), n_ref)]
    row.update({k: float(np.mean([r[k] for r in sets])) for k in ("cov", "mmd_mm")})
    row["one_nn_acc"] = one_nn_accuracy(samples, train)
    row["nn_ratio"] = nn_ratio(samples, train)
    row["broken_pct"] = 100.0 * np.mean([is_broken(f) for _, f in meshes])
    return row


def heads():
    """(family, model, head content, priors) of each shipped family whose prior exists."""
    from ..paths import HEAD_FILES, checkpoint_dir

    found = []
    for family, name in HEAD_FILES.items():
        path = checkpoint_dir() / name
        if path.is_file() and companion(path, "prior.pt").is_file():
            model, head = load_head(path)
            priors, _ = load_prior(companion(path, "prior.pt"), head["sha256"])
            found.append((family, model, head, priors))
    return found


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    n_ref, n_broken = (4, 8) if quick else (16, N_BROKEN)
    ict = load_ict()
    topo = topology(ict)
    id_w = corpus.identity_weights("heldout", n_ref, len(ict.identity_deltas))
    exp_w = corpus.expression_weights("heldout", ict.expression_names, n_ref)
    id_refs = [ground_truth_mesh(topo, ict.head(w)) for w in id_w]
    mask = np.zeros(len(id_refs[0][0]), bool)
    mask[: ict.n_vertices] = ict.face_vertex_mask
    rows = []
    for family, model, head, priors in heads():
        books = head["codebooks"]
        train_id_w = books["id_weights"][0].numpy()
        exp_refs = [ground_truth_mesh(topo, ict.head(train_id_w, w)) for w in exp_w]

        def dphm(space, n, seed, priors=priors):
            return priors[space].sample(n, "ddim", 50, torch.Generator().manual_seed(seed))

        gauss = {s: GaussianCodes(books[s]) for s in ("id", "exp")}

        def gaussian(space, n, seed, gauss=gauss):
            return gauss[space].sample(n, torch.Generator().manual_seed(seed))

        tail = "" if family == "nphm" else f"_{family}"
        for method, draw in ((f"dphm{tail}", dphm), (f"gaussian{tail}", gaussian)):
            z_id = draw("id", len(books["id"]), 1)
            meshes = [decode(model, z, None, RESOLUTION) for z in z_id[:n_broken]]
            rows.append(_case(method, "identity", meshes, n_ref, id_refs, mask, z_id, books["id"]))
            z_exp = draw("exp", len(books["exp"]), 2)
            meshes = [decode(model, books["id"][0], z, RESOLUTION) for z in z_exp[:n_broken]]
            rows.append(
                _case(method, "expression", meshes, n_ref, exp_refs, mask, z_exp, books["exp"])
            )
            t0 = time.perf_counter()
            zi, ze = draw("id", 4, 3), draw("exp", 4, 4)
            meshes = [decode(model, a, b, RESOLUTION) for a in zi for b in ze]
            seconds = time.perf_counter() - t0
            broken = 100.0 * np.mean([is_broken(f) for _, f in meshes])
            rows.append({"method": method, "case": "grid16", "broken_pct": broken,
                         "sample_s_16": seconds})  # fmt: skip
        for r in rows:
            r.setdefault("family", family)
    return rows
