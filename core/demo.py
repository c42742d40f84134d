"""``dphm demo``: the shipped head model, animated, seen by a simulated Kinect, in Blender.

What it does, in order: mesh one identity's canonical (neutral) head once; follow a named
ARKit sequence by blending the checkpoint's expression codes (per frame, the convex mix of
codebook entries whose training weights best match the sequence's); pose every frame by
inverting the backward deformation (same topology in every frame); place the head before
a simulated Azure Kinect and write a capture folder with ground truth; build ``demo.blend``
and a few Cycles renders in a headless Blender (bpy) child process. Nothing is tracked yet:
the animation comes from the model's own codes, not from the depth.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import DPHMError

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
        cond = model.condition(z_id.view(1, -1), torch.from_numpy(z).view(1, -1))
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
    """Run ``dphm_blender.demo_scene`` in a child Python that has bpy; returns its report."""
    path = out / "blender_manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    root = __package__.rpartition(".")[0]
    cmd = [sys.executable, "-m", f"{root}.dphm_blender.demo_scene", str(path)]
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


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def run(args) -> int:
    from .capture import sequences
    from .capture.folder import CaptureFolder
    from .model.head import load_head

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
    print(f"meshing identity {args.identity} of {content['path']} at {args.resolution}^3 ...")
    anim = animate(model, content, args.identity, arkit, args.resolution)
    clock["model"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    capture(anim, arkit, out / "capture", args.seed, args.gt_meshes)
    frame0 = CaptureFolder(out / "capture")[0]  # read back, as a user of the folder would
    clock["capture"] = time.perf_counter() - t1
    _save_npz(out / "animation.npz", {**anim, "arkit": arkit, "fps": FPS})
    t2 = time.perf_counter()
    n = len(arkit)
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(args.renders, n))})
    report = blender_scene(
        {
            "animation": str(out / "animation.npz"),
            "capture": str(out / "capture"),
            "blend": str(out / "demo.blend"),
            "renders": str(out / "renders"),
            "render_frames": picks,
            "samples": args.samples,
            "threads": args.threads,
        },
        out,
    )
    clock["blender"] = time.perf_counter() - t2
    clock["total"] = time.perf_counter() - t0
    res = anim["residual"]
    summary = {
        "checkpoint": str(content["path"]),
        "checkpoint_sha256": content["sha256"],
        "identity": args.identity,
        "sequence": args.sequence,
        "frames": n,
        "fps": FPS,
        "mesh": {"vertices": len(anim["neutral"]), "faces": len(anim["faces"])},
        "inversion_residual_mm": {
            "max": float(res.max() * 200),
            "median": float(np.median(res) * 200),
            "unconverged_vertices": int((res > 1e-5).sum()),
        },
        "expression_fit_error": float(np.abs(anim["arkit_fitted"] - arkit).max()),
        "point_cloud_points": int(frame0.valid.sum()),
        "files": {
            "blend": str(out / "demo.blend"),
            "renders": report["renders"],
            "capture": str(out / "capture"),
            "animation": str(out / "animation.npz"),
            "summary": str(out / "summary.json"),
        },
        "seconds": {k: round(v, 1) for k, v in clock.items()},
        "tracked": False,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(_describe(summary))
    return 0


def _describe(s: dict) -> str:
    r, sec = s["inversion_residual_mm"], s["seconds"]
    lines = [
        f"head: identity {s['identity']} of {s['checkpoint']}, {s['mesh']['vertices']} vertices,"
        f" {s['frames']} frames of '{s['sequence']}' at {s['fps']:g} fps",
        f"inverse deformation: max residual {r['max']:.4f} mm, median {r['median']:.5f} mm,"
        f" {r['unconverged_vertices']} vertices above tolerance",
        f"expression: max ARKit weight error of the code blend {s['expression_fit_error']:.2f}",
        f"blend file:  {s['files']['blend']}",
        f"renders:     {', '.join(s['files']['renders'])}",
        f"capture:     {s['files']['capture']} (simulated Azure Kinect, ground truth inside)",
        f"animation:   {s['files']['animation']}",
        f"summary:     {s['files']['summary']}",
        f"time: model {sec['model']} s, capture {sec['capture']} s, blender {sec['blender']} s,"
        f" total {sec['total']} s",
        "not tracked: the head follows the model's own expression codes (tracking comes later)",
    ]
    return "\n".join(lines)


def add_parser(sub) -> None:
    from .capture.sequences import NAMES

    p = sub.add_parser("demo", help="the model animated, a simulated Kinect take, a .blend")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--sequence", choices=NAMES, default="smiling", help="ARKit sequence")
    p.add_argument("--frames", type=int, default=60, help="frames at 30 fps")
    p.add_argument("--resolution", type=int, default=192, help="marching cubes grid")
    p.add_argument("--identity", type=int, default=0, help="identity code of the checkpoint")
    p.add_argument("--renders", type=int, default=4, help="frames rendered to PNG")
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for Blender")
    p.add_argument("--seed", type=int, default=0, help="head motion and depth noise seed")
    p.add_argument("--gt-meshes", action="store_true", help="also write ground-truth OBJs")
    p.set_defaults(func=run)
