"""``dphm appearance TAKE --capture PATH --out DIR``: a Gaussian appearance head per take.

Writes ``gaussians.ply`` (3D Gaussian splatting, the neutral head in metres, ICT frame),
``appearance.npz`` (the Gaussians, their guiding mesh and scores, for bakes),
``frames/frame_NNNNN.ply`` with ``--per-frame`` (each tracked frame, depth camera space),
``renders/frame_NNNNN.png`` for every held-out frame (Gaussians | texture | projected |
camera) and ``scores.json`` (PSNR and SSIM of the held-out frames for each row).
"""

import json
import os
import time
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from . import GAUSSIANS, ITERATIONS


def evaluate(head, f, views, projected):
    """{row: {"psnr", "ssim"}} means over ``views`` (held-out frames) for the Gaussians, the
    vertex colours they give the mesh (``texture``) and the ``projected`` baseline, and the
    three renders of each view."""
    import torch

    from .fit import image_scores, render_view
    from .texture import colours_at, render_vertex_colours

    texture = colours_at(head, views[0].vertices, views[0].vertices)
    scores, renders = {"gaussians": [], "texture": [], "projected": []}, []
    for w in views:
        with torch.no_grad():
            g = render_view(head, w)[0]
        t = torch.from_numpy(render_vertex_colours(w.vertices.numpy(), f, texture, w.camera))
        p = torch.from_numpy(render_vertex_colours(w.vertices.numpy(), f, projected, w.camera))
        for row, img in (("gaussians", g), ("texture", t), ("projected", p)):
            scores[row].append(image_scores(img, w))
        renders.append((w.index, [g, t, p, w.image]))
    mean = {r: {k: float(np.mean([s[k] for s in v])) for k in ("psnr", "ssim")}
            for r, v in scores.items()}  # fmt: skip
    return mean, renders, texture


def _png(path, images):
    from PIL import Image

    row = np.concatenate([np.clip(i.numpy(), 0, 1) for i in images], 1)
    tmp = Path(str(path) + ".partial")
    Image.fromarray((row * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
    os.replace(tmp, path)


def write_outputs(out: Path, head, v, f, views, take, per_frame=False, fit_s=None) -> dict:
    """Everything of the module table into ``out``; the held-out scores (and ``fit_s``)."""
    from ..data import corpus
    from .fit import projected_colours, split
    from .gaussians import export_ply, save_appearance

    out.mkdir(parents=True, exist_ok=True)
    train, held = split(views)
    projected, _ = projected_colours(f, train)
    scores, renders, texture = evaluate(head, f, held or views[-1:], projected)
    if fit_s is not None:
        scores["fit_s"] = fit_s
    export_ply(head, corpus.from_canonical(v), out / "gaussians.ply")
    if per_frame:
        (out / "frames").mkdir(exist_ok=True)
        for w in views:
            T = np.linalg.inv(w.depth_to_color)
            vd = w.vertices.numpy() @ T[:3, :3].T + T[:3, 3]
            export_ply(head, vd, out / "frames" / f"frame_{w.index:05d}.ply")
    (out / "renders").mkdir(exist_ok=True)
    for index, images in renders:
        _png(out / "renders" / f"frame_{index:05d}.png", images)
    save_appearance(out / "appearance.npz", head, v, f, take, texture, scores)
    tmp = out / "scores.json.partial"
    tmp.write_text(json.dumps(scores, indent=1))
    os.replace(tmp, out / "scores.json")
    return scores


def run(args) -> int:
    from tqdm import tqdm

    from ..capture.opener import open_source
    from ..model.head import load_head_for
    from ..tracking.take import read_take
    from .fit import fit, prepare, split

    if args.gaussians < 100 or args.iterations < 1:
        raise DPHMError("--gaussians must be >= 100 and --iterations >= 1")
    take = read_take(args.take)
    model, _ = load_head_for(take, args.take, args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open_source(args.capture, color=True) as source:
        v, f, views = prepare(model, take, source, args.capture, args.resolution, args.max_side)
    _, held = split(views)
    print(f"{len(views)} colour frames ({len(views) - len(held)} to fit, {len(held)} held out), "
          f"{len(f)} triangles; {time.perf_counter() - t0:.1f} s")  # fmt: skip
    bar = tqdm(total=args.iterations, desc="appearance", unit="it")

    def progress(done, total, eta):
        bar.update(done - bar.n)
        bar.set_postfix(eta=f"{eta:.0f}s")

    head = fit(v, f, views, args.gaussians, args.iterations, progress=progress)
    bar.close()
    scores = write_outputs(out, head, v, f, views, take, args.per_frame,
                           time.perf_counter() - t0)  # fmt: skip
    for row in ("gaussians", "texture", "projected"):
        s = scores[row]
        print(f"{row:10s} held-out PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}")
    print(f"wrote {out}: gaussians.ply, appearance.npz, renders/ ({scores['fit_s']:.0f} s)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("appearance", help="a Gaussian appearance head of a take, from colour")
    p.add_argument("take", help="take .npz (dphm track)")
    p.add_argument("--capture", required=True,
                   help="the depth source the take was tracked from, with colour")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="head checkpoint (default: the one the take was tracked with)")
    p.add_argument("--gaussians", type=int, default=GAUSSIANS)
    p.add_argument("--iterations", type=int, default=ITERATIONS)
    p.add_argument("--resolution", type=int, default=128, help="meshing grid of the head")
    p.add_argument("--max-side", type=int, default=160,
                   help="the head's crop is downsampled to this many pixels at most")  # fmt: skip
    p.add_argument("--per-frame", action="store_true",
                   help="also a splatting .ply per frame (depth camera space)")  # fmt: skip
    p.set_defaults(func=run)
