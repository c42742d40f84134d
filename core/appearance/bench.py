"""``dphm bench --suite appearance``: Gaussian heads of simulated colour takes.

Each case is a held-out ICT identity with its own procedural skin (the simulator's albedo,
seeded per case) performing a named sequence for 60 frames (30 with --quick), seen by the
Azure Kinect's depth and 720p colour cameras; it is tracked (``balanced``) and its
appearance fitted with ``dphm appearance``'s defaults. Every fifth frame is never used for
fitting; rows score those frames inside the head's silhouette: ``gaussians`` (the fitted
Gaussians), ``texture`` (the vertex colours they give the mesh, what a bake wears) and
``projected`` (the baseline: each vertex coloured by averaging the fitting frames that see
it). ``psnr_gain_db`` is gaussians minus projected, same frames. No real colour recording
of a head is available to this suite (the shared Azure Kinect recording shows no head).
"""

import tempfile
import time
from pathlib import Path

from ..capture import sequences
from ..capture.simulate import HeadSimulator, head_motion
from ..data import corpus
from ..data.ict import load_ict
from ..model.head import load_head
from ..tracking.presets import PRESETS
from ..tracking.take import read_take, write_take
from ..tracking.tracker import Tracker, load_prior_for, track
from .commands import evaluate
from .fit import fit, prepare, projected_colours, split

TARGETS = {"psnr_gain_db": (">=", 2.0), "ssim": (">=", 0.9), "fit_s": ("<=", 600.0)}
CASES = (("talking", 0), ("smiling", 1))


def colour_take(ict, case, sequence, frames):
    sim = HeadSimulator(ict, seed=case, identity_seed=case, color=True)
    sim.identity = corpus.identity_weights("heldout", case + 1, len(ict.identity_deltas))[case]
    sim.base = ict.head(sim.identity)
    R, t = head_motion(frames, 30, sim.pivot, case)
    w = sequences.sample(sequences.load(sequence), frames, 30)
    return [sim.frame(i, w[i], R[i], t[i]).frame for i in range(frames)]


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    model, content = load_head()
    ict = load_ict()
    rows = []
    for sequence, case in CASES[:1] if quick else CASES:
        frames = colour_take(ict, case, sequence, 30 if quick else 60)
        tracker = Tracker(model, content, PRESETS["balanced"], load_prior_for(content))
        _, arrays = track(tracker, frames)
        with tempfile.TemporaryDirectory(prefix="dphm-appearance-") as tmp:
            path = Path(tmp) / "take.npz"
            write_take(path, intrinsics=frames[0].intrinsics.to_dict(), source="sim", **arrays)
            take = read_take(path)
        t0 = time.perf_counter()
        v, f, views = prepare(model, take, frames, f"case {case}")
        head = fit(v, f, views)
        fit_s = time.perf_counter() - t0
        train, held = split(views)
        projected, _ = projected_colours(f, train)
        scores, _, _ = evaluate(head, f, held, projected)
        name = f"heldout{case:02d}_{sequence}"
        for method in ("gaussians", "texture", "projected"):
            row = {"method": method, "case": name, **scores[method]}
            if method == "gaussians":
                row["psnr_gain_db"] = scores["gaussians"]["psnr"] - scores["projected"]["psnr"]
                row["fit_s"] = fit_s
                row["frames_fitted"], row["frames_held_out"] = len(train), len(held)
            rows.append(row)
            print(row, flush=True)
    return rows
