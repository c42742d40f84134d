"""``dphm track`` and ``dphm export``."""

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..capture.commands import SOURCES_HELP
from ..device import add_argument as add_device_argument
from ..errors import DPHMError


def _frames(source, spec):
    """The frames of ``spec`` (A:B or None); the range is checked before any is read."""
    from ..capture.commands import _frame_range

    rng = _frame_range(spec, source.length)

    def frames():
        if rng is None:
            yield from source
            return
        for f in source:
            if f.index >= rng.stop:
                break
            if f.index >= rng.start:
                yield f

    return frames(), (len(range(*rng.indices(source.length))) if rng and source.length else None)


def run_track(args) -> int:
    from ..capture.opener import open_source
    from ..model.head import load_head
    from .arkit_calibration import calibrated_take, neutral_range, parse_gains
    from .presets import get_preset
    from .take import write_take
    from .tracker import Tracker, load_prior_for, track

    preset = get_preset(args.quality)
    if args.refine is not None:
        preset = preset.but(refine_identity=args.refine)
    gains = parse_gains(args.gain) if args.gain else None
    neutral = neutral_range(args.neutral)
    model, content = load_head(args.model)
    prior = None if args.no_prior else load_prior_for(content)
    if prior is None and not args.no_prior:
        print(
            "dphm track: note: no diffusion prior found, using the L2 code prior", file=sys.stderr
        )
    tracker = Tracker(model, content, preset, prior, face=None if args.no_landmarks else "auto")
    with open_source(args.input, color=tracker.face is not None) as source:
        if args.input.startswith("live:"):
            return _track_live(tracker, source, args)
        frames, count = _frames(source, args.frames)
        bar = tqdm(total=count or source.length, desc=f"track ({preset.name})", unit="frame")
        state = {"read": 0}

        def progress(done, _):
            if done:
                bar.update(1)
            else:
                state["read"] += 1
                bar.set_postfix_str(f"preprocessed {state['read']}")

        t0 = time.perf_counter()
        try:
            results, arrays = track(tracker, frames, progress, args.input)
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        intr = source.intrinsics.to_dict() if source.intrinsics else {}
    arrays = calibrated_take(arrays, neutral, gains)
    write_take(args.out, intrinsics=intr, source=str(args.input), **arrays)
    lost = sum(not r.found for r in results)
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in tracker.timings.items())
    print(
        f"wrote {args.out}: {len(results)} frames ({lost} without a head) in {seconds:.1f} s "
        f"({len(results) / seconds:.2f} fps); {stages}"
    )
    return 0


def _track_live(tracker, source, args) -> int:
    """Live: print one line per frame as results stream; the take is written on Ctrl-C."""
    from .arkit_calibration import calibrated_take, neutral_range, parse_gains
    from .take import write_take
    from .tracker import kept, take_arrays

    results, observations = [], []
    try:
        frames, _ = _frames(source, args.frames)
        for r in tracker.results(kept((tracker.observe(f) for f in frames), observations)):
            results.append(r)
            print(
                f"frame {r.index}: "
                + (f"fit {r.fit_error_mm:.2f} mm" if r.found else f"no head ({r.reason})"),
                flush=True,
            )
    except KeyboardInterrupt:
        pass
    if not any(r.found for r in results):
        raise DPHMError("no head in view")
    if tracker.preset.refine_identity:
        tracker.refine_identity(results, observations)
    intr = source.intrinsics.to_dict() if source.intrinsics else {}
    gains = parse_gains(args.gain) if args.gain else None
    arrays = calibrated_take(take_arrays(tracker, results), neutral_range(args.neutral), gains)
    write_take(args.out, intrinsics=intr, source=args.input, **arrays)
    print(f"wrote {args.out}: {len(results)} frames")
    return 0


def run_export(args) -> int:
    from ..model.head import load_head_for
    from . import export
    from .take import read_take

    take = read_take(args.take)
    out = Path(args.out)
    if args.to == "arkit-csv":
        n = export.write_arkit_csv(out, take)
        print(f"wrote {out}: {n} rows")
        return 0
    model, content = load_head_for(take, args.take, args.model)
    if args.to in ("blend", "abc"):
        return _export_blender(model, content, take, out, args)
    faces, frames = export.posed_meshes(model, take, args.resolution, args.space)
    frames = tqdm(frames, total=len(take["z_exp"]), desc=f"export {args.to}", unit="frame")
    if args.to == "obj":
        n = export.write_obj_sequence(out, faces, frames)
    else:
        n = export.write_pc2(out, frames)
    print(f"wrote {out}: {n} frames")
    return 0


def _export_blender(model, content, take, out: Path, args) -> int:
    """.blend or .abc through a headless Blender (bpy) child process."""
    import importlib.util
    import json
    import subprocess
    import tempfile

    from ..engine.files import write_meshes
    from .bake import bake_take, frame_meshes, write_bake

    if importlib.util.find_spec("bpy") is None:
        raise DPHMError(
            f"--to {args.to} writes through Blender's bpy, which is not installed "
            "here (pip install bpy==5.0.1)"
        )
    if out.suffix != f".{args.to}":
        raise DPHMError(f"--out {out}: expected a .{args.to} file")
    n = len(take["z_exp"])
    with (
        tempfile.TemporaryDirectory(prefix="dphm-export-") as tmp,
        tqdm(
            total=n * (2 if args.to == "abc" else 1) + (52 if args.to == "blend" else 0),
            desc=f"export {args.to}",
            unit="pose",
        ) as bar,
    ):
        tmp = Path(tmp)
        bake = bake_take(
            model,
            content,
            take,
            args.resolution,
            args.to == "blend",
            lambda d, _: bar.update(d - bar.n),
        )
        write_bake(tmp / "bake.npz", bake)
        manifest = {"bake": str(tmp / "bake.npz"), "out": str(out.resolve()), "space": args.space}
        if args.to == "abc":
            meshes = []
            for m in frame_meshes(model, take, args.resolution):
                meshes.append(m)
                bar.update(1)
            write_meshes(tmp / "meshes.npz", meshes)
            manifest["meshes"] = str(tmp / "meshes.npz")
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        root = __package__.rsplit(".core", 1)[0]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                f"{root}.dphm_blender.scripts.export_scene",
                str(tmp / "manifest.json"),
            ],
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0 or "DPHM-RESULT " not in proc.stdout:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-12:])
        raise DPHMError(f"{out}: Blender could not write it:\n{tail}")
    print(f"wrote {out}: {n} frames")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("track", help="track a head in a depth take or a live camera")
    p.add_argument("input", help=SOURCES_HELP)
    p.add_argument("--out", required=True, help="take .npz")
    p.add_argument("--quality", default="balanced", choices=["preview", "balanced", "best"])
    p.add_argument("--frames", help="A:B, a frame range")
    p.add_argument("--model", help="head checkpoint (default: weights/head_model.pt)")
    p.add_argument("--no-prior", action="store_true", help="L2 code prior instead of diffusion")
    p.add_argument(
        "--no-landmarks",
        action="store_true",
        help="depth only: no colour face landmarks even where the source has colour",
    )
    p.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refine the performer's head beyond the model's codes from all tracked frames "
        "(default: on for balanced and best)",
    )
    p.add_argument(
        "--neutral",
        metavar="N|A:B",
        help="a take frame, or clip, of the performer's resting face: its ARKit weights are "
        "removed from every frame (counted within the tracked frames)",
    )
    p.add_argument(
        "--gain",
        action="append",
        metavar="NAME=G",
        help="scale one ARKit shape after calibration, e.g. eyeBlink=1.3 (both sides); repeat",
    )
    add_device_argument(p)
    p.set_defaults(func=run_track)
    e = sub.add_parser("export", help="a take to OBJ sequence, PC2, .blend, Alembic or ARKit CSV")
    e.add_argument("take")
    e.add_argument("--to", required=True, choices=["obj", "pc2", "abc", "blend", "arkit-csv"])
    e.add_argument("--out", required=True, help="folder (obj) or file")
    e.add_argument("--space", default="camera", choices=["camera", "canonical"])
    e.add_argument("--resolution", type=int, default=128, help="meshing grid of the identity")
    e.add_argument("--model", help="head checkpoint (default: weights/head_model.pt)")
    add_device_argument(e)
    e.set_defaults(func=run_export)
