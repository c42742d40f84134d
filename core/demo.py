"""``dphm demo``: the whole story on a machine without a camera, in one command.

Simulate: one identity of the shipped model performs a named ARKit sequence (expression
codes blended from the checkpoint's codebook, posed by inverting the backward
deformation) before a simulated Azure Kinect, written as a capture folder with ground
truth. Track: the depth frames alone are tracked into a take (``take.npz``). Bake: the
take becomes a fixed-topology head (per-frame vertices by inverse deformation). Blender:
a headless Blender (bpy) child process builds ``demo.blend`` (the tracked head as
per-frame shape keys with its motion keyed, the capture camera, a depth frame's points)
and renders a few Cycles frames. The summary compares the tracked head with the truth.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .device import add_argument as add_device_argument
from .errors import DPHMError
from .npz import save_npz

FPS = 30.0


def animate(model, content, identity, arkit, resolution):
    """Canonical mesh of one identity and its posed vertices per frame (canonical units)."""
    import torch

    from .data.arkit import ICT_EXPRESSION_NAMES, ict_to_arkit_matrix
    from .geometry.inverse import invert_deformation
    from .geometry.meshing import largest_component, mesh_sdf
    from .tracking.arkit_map import codes_for_arkit

    books = content["codebooks"]
    if identity >= len(books["id"]):
        raise DPHMError(f"--identity {identity}: the checkpoint has {len(books['id'])} identities")
    z_id = books["id"][identity].float()
    verts, faces = largest_component(*mesh_sdf(model.sdf_fn(z_id), resolution))
    if len(faces) == 0:
        raise DPHMError("the checkpoint's identity SDF has no surface in the unit cube")
    to_arkit = ict_to_arkit_matrix(ICT_EXPRESSION_NAMES)
    exp_arkit = books["exp_weights"].float().numpy() @ to_arkit.T
    z_exp, fitted = codes_for_arkit(arkit, exp_arkit, books["exp"].float().numpy())
    posed, residual, x = [], [], None
    for z in tqdm(z_exp, desc="pose frames", unit="frame"):
        cond = model.condition(z_id.view(1, -1), torch.as_tensor(z).view(1, -1))
        x, r = invert_deformation(model, cond, verts, init=x, strict=False)
        posed.append(x)
        residual.append(r)
    return {
        "z_id": z_id.numpy(),
        "z_exp": z_exp,
        "arkit_fitted": fitted,
        "neutral": verts,
        "faces": faces,
        "posed": np.stack(posed),
        "residual": np.stack(residual),
    }


def capture(anim, arkit, out: Path, seed=0, meshes=True):
    """Simulated Kinect take of the animation; adds the canonical -> camera poses to ``anim``."""
    from .capture.folder import FolderWriter
    from .capture.frame import DepthFrame
    from .capture.noise import kinect_noise
    from .capture.raster import rasterize
    from .capture.simulate import KINECT_NFOV, GroundTruthWriter, SimFrame, head_motion, place
    from .data.corpus import CANONICAL_CENTER, CANONICAL_SCALE, from_canonical

    neutral = from_canonical(anim["neutral"])
    if (out / "intrinsics.json").is_file():  # an earlier demo's capture: start afresh
        shutil.rmtree(out)
    front = neutral[:, 2] > np.median(neutral[:, 2])  # pivot: the middle of the face side
    R, t = head_motion(len(arkit), FPS, neutral[front].mean(0), seed)
    truth = GroundTruthWriter(out / "ground_truth", anim["faces"], meshes)
    with FolderWriter(out, KINECT_NFOV, FPS) as writer:
        for i in tqdm(range(len(arkit)), desc="simulate Kinect", unit="frame"):
            v = place(from_canonical(anim["posed"][i]), R[i], t[i])
            clean, _, cos = rasterize(v, anim["faces"], KINECT_NFOV, cull_back=True)
            depth = kinect_noise(clean, cos, np.random.default_rng([seed, i, 2]))
            frame = DepthFrame(depth, KINECT_NFOV, i / FPS, i)
            writer.write(frame)
            truth.write(SimFrame(frame, None, None, v, R[i], t[i], arkit[i]))
    truth.close({"source": "dphm demo: the head model's own codes", "seed": seed, "fps": FPS})
    # x_cam = s R c + t for canonical c (c * scale + centre are ICT metres).
    anim.update(R=R, t=t + R @ CANONICAL_CENTER, s=np.full(len(R), CANONICAL_SCALE))
    anim["intrinsics"] = json.dumps(KINECT_NFOV.to_dict())


def blender_scene(manifest: dict, out: Path):
    """Run ``dphm_blender.scripts.demo_scene`` in a child Python with bpy; returns its report."""
    path = out / "blender_manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    root = __package__.rpartition(".")[0]
    cmd = [sys.executable, "-m", f"{root}.dphm_blender.scripts.demo_scene", str(path)]
    env = dict(os.environ, OMP_NUM_THREADS=str(manifest["threads"]))
    steps = 2 + len(manifest["render_frames"])
    report, tail = None, []
    with (
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as proc,
        tqdm(total=steps, desc="blender", unit="step") as bar,
    ):
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if line.startswith("DPHM-STEP "):
                bar.update(1)
            elif line.startswith("DPHM-RESULT "):
                report = json.loads(line[len("DPHM-RESULT ") :])
    path.unlink()
    if proc.returncode != 0 or report is None:
        raise DPHMError("Blender could not build the demo scene:\n" + "\n".join(tail))
    return report


def track_capture(model, content, folder: Path, quality: str, out: Path) -> dict:
    """Track a capture folder into ``out`` (a take); returns the take and the timing."""
    from .capture.folder import CaptureFolder
    from .tracking.presets import get_preset
    from .tracking.take import read_take, write_take
    from .tracking.tracker import Tracker, load_prior_for, track

    tracker = Tracker(model, content, get_preset(quality), load_prior_for(content))
    source = CaptureFolder(folder)
    bar = tqdm(total=source.length, desc=f"track ({quality})", unit="frame")
    t0 = time.perf_counter()
    results, arrays = track(tracker, source, lambda done, _: done and bar.update(1), folder)
    bar.close()
    seconds = time.perf_counter() - t0
    write_take(out, intrinsics=source.intrinsics.to_dict(), source=str(folder), **arrays)
    return {"take": read_take(out), "seconds": seconds, "lost": sum(not r.found for r in results)}


def tracking_error(bake, anim, frames) -> dict:
    """Face-and-head Chamfer of the tracked head against the performer, camera space."""
    from .geometry.metrics import compare_meshes
    from .tracking.bake import to_camera

    rows = []
    for i in frames:
        truth = anim["s"][i] * anim["posed"][i] @ anim["R"][i].T + anim["t"][i]
        rows.append(
            compare_meshes(to_camera(bake, i), bake["faces"], truth, anim["faces"], n=30_000)
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in ("cd_l1_mm_head", "f1mm_head")}


def run(args) -> int:
    from .capture import sequences
    from .capture.folder import CaptureFolder
    from .model.head import load_head
    from .tracking.bake import bake_take, write_bake

    if importlib.util.find_spec("bpy") is None:
        raise DPHMError(
            "the demo writes a .blend through bpy, which is not installed here "
            "(pip install bpy==5.0.1)"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = {}
    t0 = time.perf_counter()
    model, content = load_head()
    arkit = sequences.sample(sequences.load(args.sequence), args.frames, FPS)
    print(f"performer: identity {args.identity} of {content['path']}, '{args.sequence}'")
    anim = animate(model, content, args.identity, arkit, args.resolution)
    capture(anim, arkit, out / "capture", args.seed, args.gt_meshes)
    frame0 = CaptureFolder(out / "capture")[0]  # read back, as a user of the folder would
    save_npz(out / "performance.npz", {**anim, "arkit": arkit, "fps": FPS})
    clock["simulate"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    tracked = track_capture(model, content, out / "capture", args.quality, out / "take.npz")
    clock["track"] = time.perf_counter() - t1
    take = tracked["take"]

    t2 = time.perf_counter()
    bake = bake_take(model, content, take, args.resolution, arkit_shapes=False, progress=None)
    write_bake(out / "take.bake.npz", bake)
    clock["bake"] = time.perf_counter() - t2

    n = len(arkit)
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(args.renders, n))})
    t3 = time.perf_counter()
    report = blender_scene(
        {
            "bake": str(out / "take.bake.npz"),
            "capture": str(out / "capture"),
            "blend": str(out / "demo.blend"),
            "renders": str(out / "renders"),
            "render_frames": picks,
            "samples": args.samples,
            "threads": args.threads,
        },
        out,
    )
    clock["blender"] = time.perf_counter() - t3
    clock["total"] = time.perf_counter() - t0
    res = bake["residual_mm"]
    err = take["fit_error_mm"]
    summary = {
        "checkpoint": str(content["path"]),
        "checkpoint_sha256": content["sha256"],
        "identity": args.identity,
        "sequence": args.sequence,
        "frames": n,
        "fps": FPS,
        "tracked": True,
        "tracking": {
            "quality": args.quality,
            "fps": n / clock["track"],
            "frames_without_head": tracked["lost"],
            "fit_error_mm_median": float(np.nanmedian(err)) if np.isfinite(err).any() else None,
            "arkit_mae": float(np.abs(take["arkit"] - arkit).mean()),
            **tracking_error(bake, anim, picks),
        },
        "mesh": {"vertices": len(bake["rest"]), "faces": len(bake["faces"])},
        "inversion_residual_mm_max": float(res.max()),
        "point_cloud_points": int(frame0.valid.sum()),
        "files": {
            "blend": str(out / "demo.blend"),
            "renders": report["renders"],
            "capture": str(out / "capture"),
            "performance": str(out / "performance.npz"),
            "take": str(out / "take.npz"),
            "bake": str(out / "take.bake.npz"),
            "summary": str(out / "summary.json"),
        },
        "seconds": {k: round(v, 1) for k, v in clock.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(_describe(summary))
    return 0


def _describe(s: dict) -> str:
    t, sec = s["tracking"], s["seconds"]
    fit = t["fit_error_mm_median"]
    lines = [
        f"performer: identity {s['identity']} of {s['checkpoint']}, {s['frames']} frames of"
        f" '{s['sequence']}' at {s['fps']:g} fps, seen by a simulated Azure Kinect",
        f"tracked ({t['quality']}): {t['fps']:.2f} fps, median fit "
        + (f"{fit:.2f} mm" if fit is not None else "n/a")
        + f", {t['frames_without_head']} frames without a head",
        f"against the truth: head Chamfer-L1 {t['cd_l1_mm_head']:.2f} mm, F@1mm"
        f" {t['f1mm_head']:.2f}, ARKit weight MAE {t['arkit_mae']:.3f}",
        f"baked head: {s['mesh']['vertices']} vertices, inverse-deformation residual"
        f" <= {s['inversion_residual_mm_max']:.4f} mm",
        f"blend file:  {s['files']['blend']}",
        f"renders:     {', '.join(s['files']['renders'])}",
        f"capture:     {s['files']['capture']} (simulated Azure Kinect, ground truth inside)",
        f"take:        {s['files']['take']}",
        f"summary:     {s['files']['summary']}",
        f"time: simulate {sec['simulate']} s, track {sec['track']} s, bake {sec['bake']} s,"
        f" blender {sec['blender']} s, total {sec['total']} s",
    ]
    return "\n".join(lines)


def add_parser(sub) -> None:
    from .capture.sequences import NAMES

    p = sub.add_parser("demo", help="simulate a Kinect take, track it, bake it, a .blend")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--sequence", choices=NAMES, default="smiling", help="ARKit sequence")
    p.add_argument("--frames", type=int, default=60, help="frames at 30 fps")
    p.add_argument("--resolution", type=int, default=192, help="marching cubes grid")
    p.add_argument("--identity", type=int, default=0, help="identity code of the checkpoint")
    p.add_argument("--quality", default="balanced", choices=["preview", "balanced", "best"])
    p.add_argument("--renders", type=int, default=4, help="frames rendered to PNG")
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for Blender")
    p.add_argument("--seed", type=int, default=0, help="head motion and depth noise seed")
    p.add_argument("--gt-meshes", action="store_true", help="also write ground-truth OBJs")
    add_device_argument(p)
    p.set_defaults(func=run)
