"""The engine's commands: ``JOBS[name](ctx, **args) -> dict``, run by ``server``.

Every job writes its outputs atomically to the paths it is given and returns a small
JSON-able summary. ``ctx.progress`` both reports and is where a cancel takes effect.
"""

import json
import time
from pathlib import Path

import numpy as np

from ..errors import DPHMError
from .files import write_meshes, write_points


def ping(ctx) -> dict:
    """The engine's interpreter, optional modules and checkpoint folder."""
    import importlib.util
    import sys

    from ..paths import checkpoint_dir

    have = {m: importlib.util.find_spec(m) is not None for m in ("torch", "skimage", "av")}
    device = None
    if "torch" in sys.modules:
        import torch

        device = str(torch.get_default_device())
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "modules": have,
        "weights": str(checkpoint_dir()),
        "device": device,
        "device_error": ctx.server.setup_error,
    }


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False))]


def _frame_range(spec, length):
    from ..capture.commands import _frame_range

    return _frame_range(spec, length)


def probe(ctx, input) -> dict:
    """What a depth source is: frame count, rate, intrinsics."""
    from ..capture.opener import open_source

    with open_source(input) as src:
        return {
            "input": str(input),
            "length": src.length,
            "fps": src.fps,
            "intrinsics": src.intrinsics.to_dict() if src.intrinsics else None,
        }


def point_cache(ctx, input, out, max_points=20_000, frames=None) -> dict:
    """Every frame of a recorded source as back-projected points (a scrubbable preview)."""
    from ..capture.opener import open_source

    if str(input).startswith("live:"):
        raise DPHMError(f"{input}: a live camera has no frames to cache; use the live preview")
    clouds, stamps = [], []
    with open_source(input) as src:
        rng = _frame_range(frames, src.length) or range(src.length or 0)
        for f in src:
            if f.index >= rng.stop:
                break
            if f.index < rng.start:
                continue
            clouds.append(_subsample(f.points(), max_points, f.index))
            stamps.append(f.timestamp)
            ctx.progress(len(clouds), len(rng), "read depth")
        intr = src.intrinsics.to_dict()
    if not clouds:
        raise DPHMError(f"{input}: no depth frames in {frames or 'the recording'}")
    write_points(out, clouds, stamps, intr)
    return {"path": str(out), "frames": len(clouds), "intrinsics": intr, "fps": src.fps}


def live(ctx, input, folder, record=None, max_points=20_000, seconds=None) -> dict:
    """Stream a camera (``live:k4a``, ``live:orbbec``, ``live:realsense``, ``live:record3d``)
    or replay a recording at its rate: each frame's points go to ``folder`` (a ring of three
    files) with a ``preview`` event; with ``record`` the frames are also written to that
    capture folder. Ends on ``stop`` (keeping the recording), ``cancel``, or after
    ``seconds``."""
    from ..capture.folder import FolderWriter
    from ..capture.opener import open_source

    folder = Path(folder)
    replay = not str(input).startswith("live:")
    n, t0, writer = 0, time.monotonic(), None
    with open_source(input) as src:
        intr = src.intrinsics.to_dict()
        if record:
            writer = FolderWriter(record, src.intrinsics, src.fps)
        try:
            for f in src:
                if ctx.stopping or (seconds and time.monotonic() - t0 >= seconds):
                    break
                if replay:  # pace a recording like a camera
                    time.sleep(max(0.0, t0 + n / src.fps - time.monotonic()))
                if writer:
                    writer.write(f)
                path = folder / f"live_{n % 3}.npz"
                write_points(path, [_subsample(f.points(), max_points, n)], [f.timestamp], intr)
                n += 1
                ctx.progress(n, None, "live", f"{n} frames" + (" recorded" if writer else ""))
                ctx.preview(path, frame=f.index)
        finally:
            if writer:
                writer.close()
    return {"frames": n, "record": str(record) if record else None, "intrinsics": intr}


def simulate(
    ctx,
    out,
    identity_seed=0,
    sequence="talking",
    frames=90,
    noise="kinect",
    motion="normal",
    seed=0,
    camera=None,
    roll=0.0,
    distance=None,
    color=False,
) -> dict:
    """A simulated take of an ICT-FaceKit performer (capture folder or .mkv) seen by a
    ``capture.profiles`` camera (default the Azure Kinect), rolled and at a distance, with
    the camera's colour stream when ``color``."""
    from ..capture.simulate import expression_track
    from ..capture.simulate import simulate as run
    from ..data.ict import load_ict

    try:
        ict = load_ict()
    except DPHMError as e:
        raise DPHMError(f"the simulated performer is an ICT-FaceKit head, not found: {e}") from e
    arkit = expression_track(sequence, None, frames, 30.0)
    done = []

    def step(_):
        done.append(1)
        ctx.progress(len(done), len(arkit), "simulate")

    gt = run(out, ict, arkit, identity_seed, seed, 30.0, motion, False, step, camera=camera,
             roll=roll, distance=distance, noise=noise, color=color)  # fmt: skip
    return {"path": str(out), "ground_truth": str(gt), "frames": len(arkit)}


class _Preview:
    """The fitted head, posed and placed, written for Blender about twice a second."""

    def __init__(self, ctx, model, folder, resolution, every=0.5):
        self.ctx, self.model, self.folder = ctx, model, Path(folder)
        self.resolution, self.every = resolution, every
        self.rest = self.prev = None
        self.last, self.count = 0.0, 0

    def __call__(self, tracker, result) -> None:
        import torch

        from ..geometry.inverse import invert_deformation
        from ..tracking.bake import rest_mesh
        from ..tracking.rigid import SCALE

        if result.state is None or tracker.z_id is None:
            return
        if time.monotonic() - self.last < self.every:
            return
        if self.rest is None:
            self.rest = rest_mesh(self.model, tracker.z_id, self.resolution)
        z_id = torch.as_tensor(tracker.z_id, dtype=torch.float32).view(1, -1)
        z = torch.as_tensor(result.state.z_exp, dtype=torch.float32).view(1, -1)
        with torch.no_grad():
            cond = self.model.condition(z_id, z)
        self.prev, _ = invert_deformation(
            self.model, cond, self.rest[0], init=self.prev, strict=False
        )
        v = SCALE * self.prev @ result.state.R.T + result.state.t
        path = self.folder / f"head_{self.count % 3}.npz"
        write_meshes(path, [(v, self.rest[1])])
        self.count += 1
        self.last = time.monotonic()
        self.ctx.preview(path, frame=result.index, fit_error_mm=result.fit_error_mm)


def track(
    ctx,
    input,
    out,
    quality="balanced",
    frames=None,
    prior_strength=1.0,
    model=None,
    preview_folder=None,
    preview_resolution=48,
    live=False,
    record=None,
    neutral=None,
    gains=(),
    landmarks=True,
    refine=None,
) -> dict:
    """Track a recording into a take (``out``); previews the fitted head while it runs.
    ``neutral`` (take frames "N" or "A:B") and ``gains`` ("NAME=G") calibrate the ARKit
    weights to the performer (``tracking.arkit_calibration``); ``landmarks`` False tracks
    on depth only even where the source has colour; ``refine`` True / False refines the
    performer's head beyond the codes or not (None: as the quality does).
    A camera (``live:k4a``, ``live:orbbec``, ``live:realsense``, ``live:record3d``), or any
    source with ``live``, is tracked frame by frame as it streams until ``stop``; ``record``
    also keeps its frames."""
    from ..capture.opener import open_source
    from ..model.head import load_head
    from ..tracking.arkit_calibration import calibrated_take, neutral_range, parse_gains
    from ..tracking.presets import get_preset
    from ..tracking.take import write_take
    from ..tracking.tracker import Tracker, load_prior_for
    from ..tracking.tracker import track as run

    if not 0.0 <= float(prior_strength) <= 10.0:
        raise DPHMError(f"prior strength {prior_strength}: must be within 0 to 10")
    calibration = (neutral_range(neutral), parse_gains(gains) if gains else None)
    preset = get_preset(quality)
    preset = preset.but(
        w_prior_id=preset.w_prior_id * prior_strength,
        w_prior_exp=preset.w_prior_exp * prior_strength,
    )
    if refine is not None:
        preset = preset.but(refine_identity=bool(refine))
    net, content = load_head(model)
    prior = load_prior_for(content) if prior_strength > 0 else None
    tracker = Tracker(net, content, preset, prior, face="auto" if landmarks else None)
    preview = _Preview(ctx, net, preview_folder, preview_resolution) if preview_folder else None
    if live or str(input).startswith("live:"):
        return _track_live(ctx, tracker, input, out, preview, record, calibration)
    t0 = time.monotonic()
    with open_source(input, color=tracker.face is not None) as src:
        rng = _frame_range(frames, src.length) or range(src.length or 0)
        count = {0: 0, 1: 0}

        def progress(done, item):
            count[done] += 1
            if done:
                err = item.fit_error_mm
                ctx.progress(
                    count[1],
                    len(rng),
                    "track",
                    f"frame {item.index}: " + (f"{err:.2f} mm" if item.found else "no head"),
                )
                if preview:
                    preview(tracker, item)
            else:
                ctx.progress(count[0], len(rng), "read")

        def chosen():
            for f in src:
                if f.index >= rng.stop:
                    break
                if f.index >= rng.start:
                    yield f

        results, arrays = run(tracker, chosen(), progress, input)
        intr = src.intrinsics.to_dict()
    ctx.check()
    write_take(out, intrinsics=intr, source=str(input), **calibrated_take(arrays, *calibration))
    seconds = time.monotonic() - t0
    err = arrays["fit_error_mm"]
    return {
        "take": str(out),
        "frames": len(results),
        "lost": int(sum(not r.found for r in results)),
        "seconds": seconds,
        "fps": len(results) / seconds,
        "fit_error_mm": float(np.nanmedian(err)) if np.isfinite(err).any() else None,
        "first_frame": rng.start,
        "face_frames": tracker.face_frames,
    }


def _track_live(ctx, tracker, input, out, preview, record, calibration) -> dict:
    """Streaming: identity from the first keyframes, then every frame as it arrives (frames
    that come while one is being fitted are skipped, as a camera does not wait; counted
    in ``skipped``, with the gaps in a camera's own frame numbers)."""
    from ..capture.folder import FolderWriter
    from ..capture.opener import open_source
    from ..tracking.arkit_calibration import calibrated_take
    from ..tracking.take import write_take
    from ..tracking.tracker import kept, take_arrays

    results, kept_obs, t0 = [], [], time.monotonic()
    skipped, last = 0, None
    with open_source(input, color=tracker.face is not None) as src:
        replay = not str(input).startswith("live:")
        writer = FolderWriter(record, src.intrinsics, src.fps) if record else None

        def frames():
            nonlocal skipped, last
            for f in src:
                if ctx.stopping:
                    return
                if writer:
                    writer.write(f)
                skipped += 0 if last is None else max(0, f.index - last - 1)
                last = f.index
                if replay:  # a recording plays at its own rate, skipping what we missed
                    due = t0 + f.index / src.fps
                    if time.monotonic() > due + 1.0 / src.fps:
                        skipped += 1
                        continue
                    time.sleep(max(0.0, due - time.monotonic()))
                yield tracker.observe(f)

        try:
            for r in tracker.results(kept(frames(), kept_obs)):
                results.append(r)
                err = f"{r.fit_error_mm:.2f} mm" if r.found else "no head"
                ctx.progress(len(results), None, "live track", f"frame {r.index}: {err}")
                if preview:
                    preview(tracker, r)
        finally:
            if writer:
                writer.close()
        intr = src.intrinsics.to_dict()
    if not any(r.found for r in results):
        raise DPHMError(f"{input}: no head in view in {len(results)} frames")
    if tracker.preset.refine_identity:
        ctx.progress(len(results), None, "refine the head")
        tracker.refine_identity(results, kept_obs)
    arrays = calibrated_take(take_arrays(tracker, results), *calibration)
    write_take(out, intrinsics=intr, source=str(input), **arrays)
    seconds = time.monotonic() - t0
    return {
        "take": str(out),
        "frames": len(results),
        "lost": int(sum(not r.found for r in results)),
        "skipped": skipped,
        "skipped_pct": 100.0 * skipped / max(1, skipped + len(results)),
        "seconds": seconds,
        "fps": len(results) / seconds,
        "fit_error_mm": float(np.nanmedian([r.fit_error_mm for r in results])),
        "first_frame": results[0].index if results else 0,
        "record": str(record) if record else None,
        "face_frames": tracker.face_frames,
    }


def bake(ctx, take, out, resolution=128, arkit_shapes=True, meshes=None, meshes_resolution=96,
         model=None, appearance=None) -> dict:  # fmt: skip
    """A take to a bake file (fixed topology frames, ARKit shapes) and, with ``meshes``, a
    mesh list of per-frame marching-cubes surfaces (varying topology); with ``appearance``
    (a ``dphm appearance`` result of the take) the bake's vertices carry its colours."""
    from ..model.head import load_head_for
    from ..tracking.bake import bake_take, frame_meshes, write_bake
    from ..tracking.take import read_take

    out, meshes = Path(out), meshes and Path(meshes)
    colour = appearance and [str(appearance), Path(appearance).stat().st_mtime]
    stamp = {"resolution": resolution, "meshes_resolution": meshes_resolution, "colour": colour}
    if _reusable(out, take, stamp, arkit_shapes) and (not meshes or _reusable(meshes, take)):
        return {"bake": str(out), "meshes": str(meshes) if meshes else None, "reused": True}
    data = read_take(take)
    net, content = load_head_for(data, take, model)
    result = bake_take(
        net, content, data, resolution, arkit_shapes, lambda d, n: ctx.progress(d, n, "pose frames")
    )
    if appearance:
        from ..appearance.texture import colours_for

        ctx.progress(0, 1, "colours")
        result["colours"] = colours_for(appearance, result["rest"], data["z_id"])
    write_bake(out, {**result, "settings": np.array(json.dumps(stamp))})
    summary = {
        "bake": str(out),
        "frames": len(result["frames"]),
        "vertices": len(result["rest"]),
        "residual_mm_max": float(result["residual_mm"].max()),
    }
    if meshes:
        series, n = [], len(data["z_exp"])
        for i, m in enumerate(frame_meshes(net, data, meshes_resolution)):
            series.append(m)
            ctx.progress(i + 1, n, "mesh frames")
        write_meshes(meshes, series)
        summary["meshes"] = str(meshes)
    return summary


def appearance(ctx, take, capture, out, gaussians=None, iterations=None, resolution=128):
    """A take's Gaussian appearance head fitted to its capture's colour (``dphm appearance``),
    written to the folder ``out``; stops cleanly between iterations."""
    from ..appearance import GAUSSIANS, ITERATIONS
    from ..appearance.commands import write_outputs
    from ..appearance.fit import fit, prepare
    from ..capture.opener import open_source
    from ..model.head import load_head_for
    from ..tracking.take import read_take

    data = read_take(take)
    net, _ = load_head_for(data, take)
    ctx.progress(0, 1, "pose the head")
    with open_source(capture, color=True) as source:
        v, f, views = prepare(net, data, source, capture, resolution)

    def step(done, total, eta):
        ctx.check()
        ctx.progress(done, total, "fit Gaussians")

    t0 = time.perf_counter()
    head = fit(v, f, views, gaussians or GAUSSIANS, iterations or ITERATIONS, progress=step)
    scores = write_outputs(Path(out), head, v, f, views, data, fit_s=time.perf_counter() - t0)
    return {"appearance": str(Path(out) / "appearance.npz"), "scores": scores}


def _reusable(path: Path, take, stamp=None, arkit_shapes=False) -> bool:
    """An earlier bake output, newer than the take and made with the same settings."""
    if not path.is_file() or path.stat().st_mtime < Path(take).stat().st_mtime:
        return False
    if stamp is None:
        return True
    with np.load(path, allow_pickle=False) as z:
        same = "settings" in z.files and json.loads(str(z["settings"])) == stamp
        return same and (not arkit_shapes or len(z["arkit_shapes"]) == 52)


def _ict_metres(v):
    from ..data.corpus import from_canonical

    return from_canonical(v)


def sample(ctx, out, identities=4, expressions=0, seed=0, steps=50, resolution=128) -> dict:
    """Heads from the priors: each identity neutral then with each expression, as a mesh
    list in metres (ICT frame) with their codes."""
    from ..model.head import load_head
    from ..paths import companion
    from ..prior.latent import load_prior
    from ..prior.sample import sample_codes

    net, content = load_head()
    priors, _ = load_prior(companion(content["path"], "prior.pt"), content["sha256"])
    z_id, z_exp = (
        z.cpu().numpy() for z in sample_codes(priors, identities, expressions, seed, "ddim", steps)
    )
    heads = [(i, e) for i in z_id for e in [None, *z_exp]]
    return _decode(ctx, net, heads, out, resolution, grid=(identities, 1 + expressions))


def decode(ctx, out, heads, resolution=128) -> dict:
    """Meshes for given codes: ``heads`` is a list of {"z_id": [...], "z_exp": [...]|None}."""
    from ..model.head import load_head

    net, _ = load_head()
    pairs = [
        (
            np.asarray(h["z_id"], np.float32),
            None if h.get("z_exp") is None else np.asarray(h["z_exp"], np.float32),
        )
        for h in heads
    ]
    return _decode(ctx, net, pairs, out, resolution, grid=(len(pairs), 1))


def _decode(ctx, net, heads, out, resolution, grid) -> dict:
    from ..geometry.meshing import largest_component, mesh_sdf

    meshes = []
    for k, (zi, ze) in enumerate(heads):
        v, f = largest_component(*mesh_sdf(net.sdf_fn(zi, ze), resolution=resolution))
        meshes.append((_ict_metres(v), f))
        ctx.progress(k + 1, len(heads), "mesh heads")
    d_exp = next((len(e) for _, e in heads if e is not None), 0)
    z_exp = np.stack([np.zeros(d_exp, np.float32) if e is None else e for _, e in heads])
    write_meshes(
        out,
        meshes,
        z_id=np.stack([i for i, _ in heads]),
        z_exp=z_exp,
        has_exp=np.array([e is not None for _, e in heads]),
        grid=np.array(grid),
    )
    return {"path": str(out), "heads": len(meshes)}


def transfer(
    ctx,
    take,
    out,
    onto,
    mesh=None,
    landmarks=None,
    up="Z",
    forward="-Y",
    arkit_shapes=True,
    resolution=128,
) -> dict:
    """A take on another head: ``onto`` is ``identity:SEED``, ``codebook:N``, ``take:PATH``
    (a model head, baked like a take) or ``mesh`` (the character in ``mesh``, a mesh list of
    one in its own coordinates, retargeted on its own vertices). Writes a bake to ``out``."""
    from types import SimpleNamespace

    from ..model.head import load_head_for
    from ..tracking.bake import write_bake
    from ..tracking.take import read_take
    from ..transfer import commands, heads, retarget

    data = read_take(take)
    net, content = load_head_for(data, take)
    n = len(data["z_exp"]) + (52 if arkit_shapes else 0)
    step = lambda done, _: ctx.progress(done, n, "pose frames")  # noqa: E731
    summary = {"bake": str(out), "onto": onto}
    if onto == "mesh":
        from .files import read_meshes

        [(vertices, faces)], _ = read_meshes(mesh)
        ctx.progress(0, n, "fit the character")
        fit = retarget.fit_character(net, content, vertices, faces, landmarks, up, forward)
        fit = {**fit, "vertices": vertices, "faces": faces}
        args = SimpleNamespace(no_arkit_shapes=not arkit_shapes, onto=f"the mesh in {mesh}")
        result = commands._character_bake(net, content, data, fit, args, step)
        summary.update(
            fit_error_mm=float(fit["fit_error_mm"]),
            fit_points=float(fit["fit_points"]),
            moving=float((result["weights"] > 0.5).mean()),
        )
    else:
        kind, _, value = onto.partition(":")
        refinement = None
        if kind == "identity":
            z_id = heads.prior_identity(content, int(value))
        elif kind == "codebook":
            z_id = heads.codebook_identity(content, int(value))
        elif kind == "take":
            z_id, refinement = heads.take_identity(value, content)
        else:
            raise DPHMError(f"transfer onto {onto!r}: identity:SEED, codebook:N, take:PATH or mesh")
        result = heads.transfer_take(
            net, content, data, z_id, resolution, arkit_shapes, step, refinement
        )
    write_bake(out, result)
    summary["residual_mm_max"] = float(result["residual_mm"].max(initial=0.0))
    return summary


def landmarks(ctx, mesh, up="Z", forward="-Y") -> dict:
    """Where the manual landmarks sit on a character (a mesh list of one), from the
    automatic alignment: a starting point for the user to correct."""
    from ..model.head import load_head
    from ..transfer.landmarks import MANUAL_LANDMARKS, apply
    from ..transfer.retarget import fit_character
    from .files import read_meshes

    [(vertices, faces)], _ = read_meshes(mesh)
    net, content = load_head()
    ctx.progress(0, 1, "fit the character")
    fit = fit_character(net, content, vertices, faces, None, up, forward)
    canonical = np.array(list(MANUAL_LANDMARKS.values()))
    found = apply(np.linalg.inv(fit["alignment"]), canonical)
    return {
        "landmarks": {k: p.tolist() for k, p in zip(MANUAL_LANDMARKS, found, strict=True)},
        "fit_error_mm": float(fit["fit_error_mm"]),
    }


def arkit_csv(ctx, take, out) -> dict:
    """A take's ARKit weights and head rotation as a Live Link Face CSV."""
    from ..tracking.export import write_arkit_csv
    from ..tracking.take import read_take

    return {"path": str(out), "rows": write_arkit_csv(out, read_take(take))}


JOBS = {
    "ping": ping,
    "probe": probe,
    "point_cache": point_cache,
    "live": live,
    "simulate": simulate,
    "track": track,
    "bake": bake,
    "appearance": appearance,
    "sample": sample,
    "decode": decode,
    "transfer": transfer,
    "arkit_csv": arkit_csv,
    "landmarks": landmarks,
}
