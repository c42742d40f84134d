"""``dphm bench --suite tracking``: simulated Kinect takes of held-out identities.

Each case is a held-out ICT identity (``corpus`` split) performing a named sequence (the
model never trained on them) at NFOV unbinned, 0.5 to 0.8 m. Every ``EVAL_STRIDE``-th
frame's tracked head (posed SDF meshed at ``EVAL_RESOLUTION``, in camera space, with the
take's identity refinement where the preset makes one) is compared
with the ground-truth mesh by ``geometry.metrics.compare_meshes``; ARKit weights by mean
absolute error. Rows: dphm (diffusion prior and encoder when shipped), no_prior (L2
codes), no_anchor (no anchor-landmark term), dphm_no_encoder, encoder_only (the encoder's
guess per frame, no optimisation after the identity fit), research_budget (our fitting at
the DPHMs tracker's budget: 201 identity steps, 20 steps per frame over 10,000 points, a
joint pass; first case only, not in --quick), dphm_preview, linear_3dmm (ICT
fitted to the same points: an oracle here), and the robustness sweep on the first case:
Kinect noise x2 / x4, 50 / 90 % of the head's depth points dropped (after segmentation:
random pixel dropout in the depth image breaks it into specks no segmentation should call
a head) and fast head motion.
fps counts the per-frame stages (with the offline window pass); fps_live without the
window pass (what live tracking runs per frame); fps_overall includes the one-off identity
fit and the cache. ``dphm_uncached`` and ``dphm_preview_uncached`` run the network for
every query instead of the fixed identity's cache (``model.sdf_cache``): the cached rows
carry ``speedup_cache`` (fps ratio, same run) and ``delta_cd_mm_cache`` (face Chamfer-L1
cached minus uncached), and ``cache_err_mm`` (the cache's mean error in its band).
When the tri-plane family's head is in the weights (``head_model_triplane.pt``),
``dphm_triplane`` and ``dphm_triplane_preview`` track the same takes with it (with its own
prior and encoder where they were trained: ``paths.companion``).
On the first case dphm and dphm_preview carry ``live_skipped_pct``: 300 frames played at
30 fps through the engine's live tracking, the share it had to skip once the identity
was fitted.
"""

import time

import numpy as np

from ..capture import sequences
from ..capture.raster import rasterize
from ..capture.simulate import HeadSimulator, head_motion, place
from ..data import corpus
from ..data.ict import load_ict
from ..data.surface import topology
from ..geometry.meshing import largest_component, mesh_sdf
from ..geometry.metrics import compare_meshes
from ..model.bench import ground_truth_mesh
from ..model.head import load_head
from .encoder import load_encoder_for
from .linear import LinearTracker
from .preprocess import segment_head
from .presets import PRESETS
from .tracker import Tracker, load_prior_for, track

TARGETS = {
    "cd_l1_mm_face": ("<=", 0.8),
    "f1mm_face": (">=", 0.8),
    "arkit_mae": ("<=", 0.08),
    "fps": (">=", 30.0),
    "delta_cd_mm_cache": ("<=", 0.02),
    "live_skipped_pct": ("<=", 5.0),
}
SEQUENCES = ("talking", "smiling", "jaw")
LIVE_QUALITY = {"dphm": "balanced", "dphm_preview": "preview"}  # rows played live too
EVAL_STRIDE, EVAL_RESOLUTION = 5, 192
PER_FRAME = ("preprocess", "landmarks", "encoder", "fit", "refine", "arkit")
RESEARCH_BUDGET = PRESETS["balanced"].but(
    name="research_budget",
    n_points=10_000,
    n_normal=1_000,
    id_steps=201,
    steps=20,
    early_stop_mm=0.0,
    window_steps=20,
)


class SparseTracker(Tracker):
    """A Tracker that keeps a random ``1 - drop`` share of each frame's head points; with
    ``guess_only`` every frame takes the encoder's guess as it is (``encoder_only``)."""

    def __init__(self, *args, drop=0.0, guess_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop, self.guess_only = drop, guess_only

    def _start(self, obs):
        return self.encode(obs, self._prediction()) if self.guess_only else super()._start(obs)

    def observe(self, frame):
        with self.timed("preprocess"):
            n = int(4 * self.preset.n_points / max(1.0 - self.drop, 0.01))  # as Tracker's
            obs = segment_head(frame, n, frame.index, beside=self.preset.refine_identity)
        if obs.found:
            rng = np.random.default_rng(frame.index)
            keep = np.flatnonzero(rng.random(len(obs.points)) >= self.drop)
            keep = rng.permutation(keep)[: 4 * self.preset.n_points]
            obs.points, obs.normals = obs.points[keep], obs.normals[keep]
        return self.landmarks(frame, obs)


def make_take(ict, case, sequence, frames, noise_scale=1.0, motion="normal"):
    sim = HeadSimulator(ict, seed=case, noise_scale=noise_scale)
    sim.identity = corpus.identity_weights("heldout", case + 1, len(ict.identity_deltas))[case]
    sim.base = ict.head(sim.identity)
    R, t = head_motion(frames, 30, sim.pivot, case, motion)
    w = sequences.sample(sequences.load(sequence), frames, 30)
    return [sim.frame(i, w[i], R[i], t[i]) for i in range(frames)]


def seen_by_camera(vertices, triangles, intr) -> np.ndarray:
    """(V,) the vertices of the triangles a camera sees of a mesh (camera space): those
    that win its z-buffer somewhere."""
    tri = np.asarray(triangles)
    ids = rasterize(vertices, tri, intr).tri_id
    seen = np.zeros(len(vertices), bool)
    seen[tri[np.unique(ids[ids >= 0])].ravel()] = True
    return seen


def seen_in_depth(vertices, frame, tol=0.005) -> np.ndarray:
    """(V,) the vertices of a ground-truth mesh (camera space) that the frame's depth saw:
    those whose pixel holds a reading within ``tol`` metres of them (what the camera could
    not measure, at a grazing angle say, does not count)."""
    from ..capture.raster import project

    uv = np.round(project(vertices, frame.intrinsics)).astype(int)
    h, w = frame.depth.shape
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    seen = np.zeros(len(vertices), bool)
    d = frame.depth[uv[ok, 1], uv[ok, 0]]
    seen[ok] = (d > 0) & (np.abs(d - vertices[ok, 2]) < tol)
    return seen


def evaluate(pred_meshes, sims, arkit, ict, topo, seen=False):
    """Mean face and head metrics of the scored frames, and the ARKit MAE; with ``seen``
    also the face metrics over the part of the face the camera saw (``_seen``)."""
    rows = []
    for i, (pv, pf) in pred_meshes:
        sim = sims[i]
        v_ict = (sim.vertices - sim.t) @ sim.R  # back to ICT metres for the closed mesh
        gv, gf = ground_truth_mesh(topo, v_ict)
        gv = place(gv, sim.R, sim.t)
        m = np.zeros(len(gv), bool)
        m[: ict.n_vertices] = ict.face_vertex_mask
        row = compare_meshes(pv, pf, gv, gf, m, n=100_000, seed=i)
        if seen:
            m &= seen_by_camera(gv, gf, sim.frame.intrinsics)
            row.update({k.replace("_face", "_seen"): v
                        for k, v in compare_meshes(pv, pf, gv, gf, m, n=100_000, seed=i).items()
                        if k.endswith("_face")})  # fmt: skip
        rows.append(row)
    keys = ["cd_l1_mm_face", "f1mm_face", "nc_face", "cd_l1_mm_head"]
    keys += ["cd_l1_mm_seen", "f1mm_seen"] if seen else []
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    if arkit is not None:
        out["arkit_mae"] = float(np.abs(arkit - np.stack([s.arkit for s in sims])).mean())
    return out


def run_dphm(
    model, content, preset, prior, sims, encoder, drop=0.0, arrays_too=False, face=None
):
    """(meshes of every EVAL_STRIDE-th frame, ARKit weights, timings[, the take's arrays]);
    ``face``: a ``face_landmarks.FaceModel`` for the frames' colour (None: depth only)."""
    only = preset.encoder_steps == 0
    tracker = SparseTracker(
        model, content, preset, prior, encoder=encoder, drop=drop, guess_only=only, face=face
    )
    t0 = time.perf_counter()
    _, arrays = track(tracker, [s.frame for s in sims])
    total = time.perf_counter() - t0
    per_frame = sum(tracker.timings.get(k, 0.0) for k in PER_FRAME)
    live = per_frame - tracker.timings.get("refine", 0.0)
    meshes = scored_meshes(model, arrays, len(sims), arrays["refinement"])
    timing = {f"ms_{k}": 1000 * v / len(sims) for k, v in tracker.timings.items()}
    timing = {"fps": len(sims) / per_frame, "fps_live": len(sims) / live,
              "fps_overall": len(sims) / total, **timing}  # fmt: skip
    if tracker.cache is not None:
        timing["cache_err_mm"] = tracker.cache.error_mm.get("mean", float("nan"))
    return (
        (meshes, arrays["arkit"], timing, arrays)
        if arrays_too
        else (meshes, arrays["arkit"], timing)
    )


def live_skipped_pct(sims, quality) -> float:
    """Frames skipped (%) when a take plays at its 30 fps into the engine's live tracking
    (a frame whose time has passed while the last was fitted is skipped), counted from the
    first frame after the identity fit (the first keyframes wait for it)."""
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from ..capture.folder import FolderWriter
    from ..engine import jobs
    from .take import read_take

    with tempfile.TemporaryDirectory(prefix="dphm-live-") as tmp:
        tmp = Path(tmp)
        with FolderWriter(tmp / "capture", sims[0].frame.intrinsics, 30) as w:
            for s in sims:
                w.write(s.frame)
        ctx = SimpleNamespace(stopping=False, check=lambda: None, progress=lambda *a: None)
        jobs.track(ctx, tmp / "capture", tmp / "take.npz", quality, live=True, landmarks=False,
                   refine=False)  # fmt: skip
        times = read_take(tmp / "take.npz")["timestamps"]
    ids = np.round(np.asarray(times) * 30).astype(int)[PRESETS[quality].keyframes :]
    return 100.0 * (1.0 - len(ids) / (ids[-1] - ids[0] + 1))


def cache_columns(rows):
    """On each cached row, the speed-up and face Chamfer change against its uncached twin
    (``<method>_uncached``) of the same case, measured in the same run."""
    by = {r["method"]: r for r in rows}
    for name, r in by.items():
        twin = by.get(f"{name}_uncached")
        if twin is not None:
            r["speedup_cache"] = r["fps"] / twin["fps"]
            r["delta_cd_mm_cache"] = r["cd_l1_mm_face"] - twin["cd_l1_mm_face"]


def scored_meshes(model, arrays, n, refinement=None):
    """(frame, (vertices, faces)) of every EVAL_STRIDE-th tracked frame in camera space,
    with the take's identity ``refinement`` when given."""
    meshes = []
    for i in range(0, n, EVAL_STRIDE):
        fn = model.sdf_fn(arrays["z_id"], arrays["z_exp"][i], refinement=refinement)
        v, f = largest_component(*mesh_sdf(fn, resolution=EVAL_RESOLUTION))
        meshes.append((i, (arrays["s"][i] * v @ arrays["R"][i].T + arrays["t"][i], f)))
    return meshes


def run_linear(ict, sims, model, content, similarity=False):
    from ..data.arkit import ict_to_arkit_matrix
    from . import rigid
    from .preprocess import segment_head

    tpl = rigid.mean_head(model, content["codebooks"]["id"].mean(0))
    lt = LinearTracker(ict, similarity=similarity)
    to_arkit = ict_to_arkit_matrix(ict.expression_names)
    meshes, arkit, t0 = [], [], time.perf_counter()
    for i, s in enumerate(sims):
        obs = segment_head(s.frame, max_points=1500, seed=i)
        R = t = None
        if lt.state is None:
            R, t, _ = rigid.initial_pose(obs.points, tpl)
            t = t - R @ corpus.CANONICAL_CENTER
        exp, R, t = lt.fit(obs.points, R, t)
        arkit.append(to_arkit @ exp)
        if i % EVAL_STRIDE == 0:
            meshes.append((i, (lt.mesh(exp, R, t), ict.skin_triangles)))
    return meshes, np.stack(arkit), {"fps_overall": len(sims) / (time.perf_counter() - t0)}


def triplane_head():
    """(model, content, prior, encoder) of the tri-plane family's shipped head, or None."""
    from ..paths import checkpoint_dir
    from ..train.commands import default_out

    path = checkpoint_dir() / default_out("model", "triplane").name
    if not path.is_file():
        return None
    model, content = load_head(path)
    return model, content, load_prior_for(content), load_encoder_for(content)


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    model, content = load_head()
    prior = load_prior_for(content)
    encoder = load_encoder_for(content)
    ict = load_ict()
    topo = topology(ict)
    frames = 30 if quick else 60
    seqs = SEQUENCES[:1] if quick else SEQUENCES
    balanced = PRESETS["balanced"]
    rows = []

    def add(method, case, meshes, arkit, extra):
        row = {"method": method, "case": case, **evaluate(meshes, sims, arkit, ict, topo), **extra}
        rows.append(row)
        print(row, flush=True)

    def run_all(case, sims, methods, drop=0.0):
        for method, preset, pri, enc in methods:
            add(method, case, *run_dphm(model, content, preset, pri, sims, enc, drop))

    main = [("dphm" if prior is not None else "dphm (no diffusion prior shipped: L2)",
             balanced, prior, encoder)]  # fmt: skip
    if prior is not None:
        main.append(("no_prior", balanced, None, encoder))
    if encoder is not None:
        if encoder.n_landmarks:
            main.append(("no_anchor", balanced.but(w_anchor=0.0), prior, encoder))
        main.append(("dphm_no_encoder", balanced, prior, None))
        only = balanced.but(encoder_steps=0, window=0, window_steps=0)
        main.append(("encoder_only", only, prior, encoder))
    main.append(("dphm_preview", PRESETS["preview"], prior, encoder))
    uncached = [(f"{name}_uncached", p.but(cache=False), pri, enc)
                for name, p, pri, enc in (main[0], main[-1])]  # fmt: skip
    triplane = triplane_head()
    for c, seq in enumerate(seqs):
        sims = make_take(ict, c, seq, frames)
        case = f"heldout{c:02d}_{seq}"
        run_all(case, sims, main + uncached)
        these = rows[-len(main) - len(uncached) :]
        cache_columns(these)
        if triplane is not None:  # the other family, its own prior and encoder
            t_model, t_content, t_prior, t_encoder = triplane
            for name, preset in (("dphm_triplane", balanced), ("dphm_triplane_preview",
                                                               PRESETS["preview"])):  # fmt: skip
                out = run_dphm(t_model, t_content, preset, t_prior, sims, t_encoder)
                add(name, case, *out)
        if c == 0:  # 300 frames (10 s: the identity fit takes about 5) played live
            live = make_take(ict, c, seq, 300)
            for r in these:
                if r["method"] in LIVE_QUALITY:
                    r["live_skipped_pct"] = live_skipped_pct(live, LIVE_QUALITY[r["method"]])
        if c == 0 and not quick:  # about 6 s a frame on 2 cores
            run_all(case, sims, [("research_budget", RESEARCH_BUDGET, prior, None)])
        add("linear_3dmm (oracle)", case, *run_linear(ict, sims, model, content))
    sweep = [
        ("noise_x2", {"noise_scale": 2.0}, 0.0),
        ("noise_x4", {"noise_scale": 4.0}, 0.0),
        ("drop_50", {}, 0.5),
        ("drop_90", {}, 0.9),
        ("fast", {"motion": "fast"}, 0.0),
    ]
    for name, kw, drop in [sweep[1], sweep[3], sweep[4]] if quick else sweep:
        sims = make_take(ict, 0, "talking", frames, **kw)
        run_all(name, sims, main[:2], drop)
    return rows
