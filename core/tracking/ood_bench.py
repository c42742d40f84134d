"""``dphm bench --suite ood``: heads outside ICT-FaceKit's linear span.

Cases: held-out ICT identities pushed outside the span (``data.ood_heads.pushed``: smooth
bumps, a longer nose, a chin forward, ears out) at rest, as the scans are (ICT's own
expression shapes would make the linear model an oracle for what the face does: this
suite measures the head), one of them also performing the talking sequence, and the real
face scans in ``../shared/data/real_heads`` (``read_head_mesh``; held in their own
expression; left out with a note when the folder is absent). Every take is simulated at
Azure Kinect NFOV, 0.5 to 0.8 m, with its noise. Rows: ``dphm`` (balanced, the latent
head only), ``dphm_refined`` (the same track with the take's identity refinement),
``linear_3dmm`` (ICT's linear model with a similarity pose fitted to the same points: on
these heads a baseline, not an oracle). Face metrics count only the ground-truth face the
camera's depth saw in each scored frame (``seen_in_depth``: a scan's interiors, the far
side and what the sensor could not measure never count); ``refine_s`` is the refinement's
seconds for the take.
"""

import numpy as np

from ..capture import sequences
from ..capture.simulate import HeadSimulator, head_motion, place
from ..data import corpus
from ..data.ict import load_ict
from ..data.ood_heads import PUSHED, pushed, read_head_mesh
from ..data.surface import topology
from ..geometry.metrics import compare_meshes
from ..model.bench import ground_truth_mesh
from ..model.head import load_head
from ..paths import shared_data_dir
from .bench import run_dphm, run_linear, scored_meshes
from .encoder import load_encoder_for
from .presets import PRESETS
from .tracker import load_prior_for

TARGETS = {
    "cd_l1_mm_face": ("<=", 0.8),
    "f1mm_face": (">=", 0.7),
    "vs_linear": ("<=", 0.7),
    "refine_s": ("<=", 20.0),
}
SCANS = {"scan_james": "james/james.obj", "scan_demoface": "demoface/demoface.obj"}


def make_case(ict, topo, index, kind, frames, sequence=None):
    """(simulated frames, truth(i) -> (vertices, triangles, face mask) in camera space);
    an ICT head performs ``sequence`` (None: at rest)."""
    seed = 300 + index
    if kind in PUSHED:
        sim = HeadSimulator(ict, seed=seed)
        ids = corpus.identity_weights("heldout", index + 1, len(ict.identity_deltas))
        sim.identity = ids[index]
        sim.base = pushed(ict, ict.head(sim.identity), kind, seed)
        w = sequences.sample(sequences.load(sequence), frames, 30) if sequence else None
    else:
        v, t, face = read_head_mesh(shared_data_dir() / "real_heads" / kind, ict)
        sim = HeadSimulator(ict, seed=seed, mesh=(v, t))
    if sequence is None:
        w = np.zeros((frames, 52), np.float32)
    R, t = head_motion(frames, 30, sim.pivot, seed, "normal")
    sims = [sim.frame(i, w[i], R[i], t[i]) for i in range(frames)]

    def truth(i):
        s = sims[i]
        if kind not in PUSHED:
            return s.vertices, sim.triangles, face
        gv, gf = ground_truth_mesh(topo, (s.vertices - s.t) @ s.R)
        m = np.zeros(len(gv), bool)
        m[: ict.n_vertices] = ict.face_vertex_mask
        return place(gv, s.R, s.t), gf, m

    return sims, truth


def evaluate(meshes, sims, truth) -> dict:
    """Mean visible-face metrics over the scored frames."""
    from .bench import seen_in_depth

    rows = []
    for i, (pv, pf) in meshes:
        gv, gf, m = truth(i)
        m = m & seen_in_depth(gv, sims[i].frame)
        rows.append(compare_meshes(pv, pf, gv, gf, m, n=100_000, seed=i))
    return {k: float(np.mean([r[k] for r in rows])) for k in ("cd_l1_mm_face", "f1mm_face")}


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    model, content = load_head()
    prior, encoder = load_prior_for(content), load_encoder_for(content)
    ict = load_ict()
    topo = topology(ict)
    frames = 30 if quick else 60
    cases = [(f"ict_{k}", k, None) for k in (PUSHED[:2] if quick else PUSHED)]
    cases.append(("ict_nose_talking", "nose", "talking"))
    root = shared_data_dir()
    if root is not None and (root / "real_heads").is_dir():
        cases += [(name, path, None) for name, path in SCANS.items()]
    else:
        print("ood: ../shared/data/real_heads not found: the scan cases are left out")
    rows = []
    for index, (case, kind, sequence) in enumerate(cases):
        sims, truth = make_case(ict, topo, index, kind, frames, sequence)
        meshes, _, timing, arrays = run_dphm(
            model, content, PRESETS["balanced"], prior, sims, encoder, arrays_too=True
        )
        refine_s = timing.get("ms_identity_refine", 0.0) * len(sims) / 1000.0
        latent = scored_meshes(model, arrays, len(sims))
        lin_meshes, _, lin_timing = run_linear(ict, sims, model, content, similarity=True)
        linear = {"method": "linear_3dmm", "case": case,
                  **evaluate(lin_meshes, sims, truth), **lin_timing}  # fmt: skip
        for method, m, extra in (
            ("dphm", latent, {"fps": timing["fps"]}),
            ("dphm_refined", meshes, {"refine_s": refine_s}),
        ):
            row = {"method": method, "case": case, **evaluate(m, sims, truth), **extra}
            row["vs_linear"] = row["cd_l1_mm_face"] / linear["cd_l1_mm_face"]
            rows.append(row)
            print(row, flush=True)
        rows.append(linear)
        print(linear, flush=True)
    return rows
