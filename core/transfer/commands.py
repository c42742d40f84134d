"""``dphm transfer TAKE.npz --onto MESH|identity:SEED|... --out PATH``."""

import json
from pathlib import Path

from ..device import add_argument as add_device_argument
from ..errors import DPHMError

ONTO_HELP = (
    "what wears the take: MESH (.obj or .ply: a character, retargeted on its own vertices), "
    "identity:SEED (a head sampled from the identity prior), codebook:N (training identity "
    "N of the model), take:PATH (the identity of another take), fit:MESH (a model head "
    "fitted to the mesh)"
)
OUT_HELP = (
    ".npz (a dphm-bake/1 file), .pc2 (point cache of the vertices) or a folder (OBJ sequence)"
)
POSE_HELP = (
    "add the take's head motion: model heads go to camera space (metres), a character "
    "moves relative to the take's mean pose in its own coordinates; default: no motion "
    "(model heads in canonical units, a character in its own). A .npz always stores it in "
    "R, t, s"
)


def read_mesh(path):
    """(vertices (V, 3), faces (F, 3) or (F, 4) -1 padded) of an .obj or .ply file."""
    from ..data.obj import read_obj
    from ..geometry.io import read_ply

    path = Path(path)
    if not path.is_file():
        raise DPHMError(f"{path}: mesh not found")
    if path.suffix.lower() == ".obj":
        return read_obj(path)
    if path.suffix.lower() == ".ply":
        return read_ply(path)[:2]
    raise DPHMError(f"{path}: mesh must be .obj or .ply")


def read_landmarks(path) -> dict:
    """Manual landmarks from a JSON file {name: [x, y, z]} in the mesh's coordinates."""
    try:
        data = json.loads(Path(path).read_text())
        return {str(k): [float(x) for x in v] for k, v in data.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise DPHMError(f"{path}: landmarks must be JSON {{name: [x, y, z]}} ({e})") from e


def _identity(spec, model, content, args):
    from . import heads

    kind, _, value = spec.partition(":")
    try:
        if kind == "identity":
            return heads.prior_identity(content, int(value), args.prior), None
        if kind == "codebook":
            return heads.codebook_identity(content, int(value)), None
    except ValueError as e:
        raise DPHMError(f"--onto {spec}: expected a whole number after '{kind}:'") from e
    if kind == "take":
        return heads.take_identity(value, content)
    return _fit(model, content, value, args)["z_id"], None


def _fit(model, content, mesh_path, args):
    from .retarget import fit_character

    vertices, faces = read_mesh(mesh_path)
    marks = read_landmarks(args.landmarks) if args.landmarks else None
    fit = fit_character(model, content, vertices, faces, marks, args.up, args.forward)
    print(
        f"fitted {mesh_path}: {fit['fit_error_mm']:.2f} mm median distance on "
        f"{100 * fit['fit_points']:.0f}% of the head ({'manual' if marks else 'automatic'} "
        "landmarks)"
    )
    return {**fit, "vertices": vertices, "faces": faces}


def _character_bake(model, content, take, fit, args, progress):
    import numpy as np

    from ..data.obj import triangulate
    from ..tracking.bake import _fps
    from .retarget import character_motion, retarget_mesh

    vertices, faces = fit["vertices"], fit["faces"]
    res = retarget_mesh(
        model, content, vertices, faces, take["z_exp"],
        arkit_shapes=not args.no_arkit_shapes, fit=fit, progress=progress,
    )  # fmt: skip
    R, t, s = character_motion(res["alignment"], take["R"], take["t"], take["s"])
    return {
        "faces": triangulate(faces).astype(np.int32),
        "rest": np.asarray(vertices, np.float32),
        "frames": res["frames"],
        "residual_mm": res["residual_mm"],
        "R": R.astype(np.float32),
        "t": t.astype(np.float32),
        "s": s.astype(np.float32),
        "timestamps": np.asarray(take["timestamps"], np.float64),
        "fps": np.float64(_fps(take["timestamps"])),
        "arkit": np.asarray(take["arkit"], np.float32),
        "arkit_shapes": res["arkit_shapes"],
        "intrinsics": json.dumps(take["intrinsics"]),
        "source": f"{take.get('source', '')} retargeted onto {args.onto}",
        "alignment": res["alignment"].astype(np.float32),
        "weights": res["weights"],
    }


def run_transfer(args) -> int:
    from tqdm import tqdm

    from ..model.head import load_head_for
    from ..tracking import export
    from ..tracking.bake import to_camera, write_bake
    from ..tracking.take import read_take
    from .heads import transfer_take

    take = read_take(args.take)
    out = Path(args.out)
    if out.suffix and out.suffix not in (".npz", ".pc2"):
        raise DPHMError(f"--out {out}: expected .npz, .pc2 or a folder")
    model, content = load_head_for(take, args.take, args.model)
    model_head = args.onto.partition(":")[0] in ("identity", "codebook", "take", "fit")
    if model_head:
        z_id, refinement = _identity(args.onto, model, content, args)
    else:
        fit = _fit(model, content, args.onto, args)
    bar = tqdm(total=len(take["z_exp"]) + (0 if args.no_arkit_shapes else 52), unit="pose")

    def progress(done, _):
        bar.update(done - bar.n)

    with bar:
        if model_head:
            bake = transfer_take(
                model, content, take, z_id, args.resolution, not args.no_arkit_shapes, progress,
                refinement,
            )  # fmt: skip
            faces = bake["faces"]
        else:
            bake, faces = _character_bake(model, content, take, fit, args, progress), fit["faces"]
    frames = [to_camera(bake, i) if args.pose else bake["frames"][i] for i in range(len(bake["s"]))]
    if out.suffix == ".npz":
        write_bake(out, bake)
    elif out.suffix == ".pc2":
        export.write_pc2(out, frames, fps=float(bake["fps"]))
    else:
        export.write_obj_sequence(out, faces, frames)
    print(
        f"wrote {out}: {len(frames)} frames of {len(bake['rest'])} vertices, "
        f"{len(bake['arkit_shapes'])} ARKit shapes; largest inverse-deformation residual "
        f"{float(bake['residual_mm'].max(initial=0.0)):.3f} mm"
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("transfer", help="a take's expressions on another head or a character")
    p.add_argument("take", help="take .npz")
    p.add_argument("--onto", required=True, metavar="MESH|identity:SEED|...", help=ONTO_HELP)
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--pose", action="store_true", help=POSE_HELP)
    p.add_argument("--up", default="Z", help="the mesh's up axis (default Z, as in Blender)")
    p.add_argument("--forward", default="-Y", help="the way the mesh's face looks (default -Y)")
    p.add_argument(
        "--landmarks",
        help="JSON {name: [x, y, z]}: manual landmarks in the mesh's coordinates, 3 or more "
        "of nose_tip, chin, eye_outer_left, eye_inner_left, eye_inner_right, "
        "eye_outer_right, mouth_left, mouth_right (the character's own left)",
    )
    p.add_argument("--no-arkit-shapes", action="store_true", help="skip the ARKit-52 shape set")
    p.add_argument("--resolution", type=int, default=128, help="meshing grid of model heads")
    p.add_argument("--model", help="head checkpoint (default: weights/head_model.pt)")
    p.add_argument("--prior", help="prior checkpoint (default: weights/prior.pt)")
    add_device_argument(p)
    p.set_defaults(func=run_transfer)
