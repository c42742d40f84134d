"""``dphm convert``, ``dphm simulate`` and ``dphm record``."""

from pathlib import Path

from tqdm import tqdm

from ..errors import DPHMError
from .opener import CAMERAS

SOURCES_HELP = ".mkv, .bag, .db3, .r3d, a capture folder, or live:" + ", live:".join(CAMERAS)


def _frame_range(text: str | None, length: int | None) -> range | None:
    if not text:
        return None
    try:
        a, _, b = text.partition(":")
        start = int(a) if a else 0
        stop = int(b) if b else length
    except ValueError as e:
        raise DPHMError(f"--frames {text!r}: expected A:B (e.g. 0:100)") from e
    if stop is None:
        raise DPHMError("--frames A: needs an end for a live source (A:B)")
    if start < 0 or stop <= start:
        raise DPHMError(f"--frames {text}: the range is empty (A:B needs 0 <= A < B)")
    if length is not None and start >= length:
        raise DPHMError(f"--frames {text}: the source has only {length} frames")
    return range(start, stop)


def convert(args) -> int:
    from .folder import FolderWriter
    from .opener import open_source

    with open_source(args.input, color=args.color, calibration=args.calibration) as src:
        length = src.length
        frames = _frame_range(args.frames, length)
        total = len(frames) if frames is not None else length
        n = 0
        with (
            FolderWriter(args.out, src.intrinsics, src.fps) as out,
            tqdm(total=total, unit="frame", desc="convert") as bar,
        ):
            for i, frame in enumerate(src):
                if frames is not None and i >= frames.stop:
                    break
                if frames is None or i in frames:
                    out.write(frame)
                    n += 1
                    bar.update(1)
    print(f"wrote {n} frames to {args.out}")
    return 0


def simulate(args) -> int:
    from ..data.ict import load_ict
    from .simulate import expression_track, simulate

    if args.frames is not None and args.frames < 1:
        raise DPHMError(f"--frames {args.frames}: a take needs at least one frame")
    if args.distance is not None and not 0.1 <= args.distance <= 5.0:
        raise DPHMError(f"--distance {args.distance}: give metres, 0.1 to 5")
    arkit = expression_track(args.sequence, args.arkit, args.frames, args.fps)
    try:
        ict = load_ict(args.ict)
    except DPHMError as e:
        raise DPHMError(f"the simulator renders ICT-FaceKit heads and cannot find them: {e}") from e
    with tqdm(total=len(arkit), unit="frame", desc="simulate") as bar:
        gt = simulate(
            args.out,
            ict,
            arkit,
            args.identity_seed,
            args.seed,
            args.fps,
            args.motion,
            not args.no_meshes,
            bar.update,
            noise=args.noise,
            noise_scale=args.noise_scale,
            dropout=args.dropout,
            camera=args.camera,
            roll=args.roll,
            yaw=args.yaw,
            distance=args.distance,
            body=args.body,
            hair=args.hair,
            occluder=args.occluder,
            color=args.color,
            head_mesh=args.head_mesh,
        )
    print(f"wrote {len(arkit)} frames to {args.out} (ground truth in {gt})")
    return 0


def record(args) -> int:
    from .live import record

    bar = None

    def progress(n):  # the bar starts with the first frame, once the camera is open
        nonlocal bar
        if bar is None:
            bar = tqdm(unit="frame", desc="record")
        bar.update(1)

    try:
        n = record(args.out, args.seconds, args.camera, args.color, progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"recorded {n} frames to {args.out}")
    return 0


def add_parser(sub) -> None:
    from .profiles import PROFILES
    from .sequences import NAMES
    from .simulate import OCCLUDERS

    p = sub.add_parser("convert", help="any depth source (file or live) to a capture folder")
    p.add_argument("input", help=SOURCES_HELP)
    p.add_argument("--out", required=True, type=Path, help="capture folder to write")
    p.add_argument("--frames", metavar="A:B", help="frame range (live sources: required)")
    p.add_argument("--color", action="store_true", help="also write colour images")
    p.add_argument(
        "--calibration",
        metavar="JSON",
        help="calibration.json for an .mkv that lacks the attachment",
    )
    p.set_defaults(func=convert)

    p = sub.add_parser("simulate", help="a simulated Azure Kinect take with its ground truth")
    p.add_argument("--out", required=True, type=Path, help="capture folder, or a .mkv file")
    p.add_argument("--identity-seed", type=int, default=0)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sequence", choices=NAMES, default="talking")
    src.add_argument("--arkit", metavar="CSV", help="ARKit weights (Live Link Face style CSV)")
    p.add_argument("--frames", type=int, help="number of frames (default: the whole sequence)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--noise", choices=("kinect", "none"), default="kinect")
    p.add_argument("--noise-scale", type=float, default=1.0, help="multiplies the axial noise")
    p.add_argument("--dropout", type=float, default=0.0, help="fraction of pixels dropped")
    p.add_argument("--motion", choices=("normal", "fast", "none"), default="normal")
    p.add_argument("--seed", type=int, default=0, help="noise and head motion seed")
    p.add_argument("--ict", metavar="PATH", help="ICT-FaceKit .npz or FaceXModel folder")
    p.add_argument("--no-meshes", action="store_true", help="skip the per-frame OBJ files")
    p.add_argument("--camera", choices=list(PROFILES), help="camera profile (default azure_nfov)")
    p.add_argument("--roll", type=float, default=0.0, help="head roll, degrees (sideways: 90)")
    p.add_argument("--yaw", type=float, default=0.0, help="head turn in degrees (profile: 90)")
    p.add_argument("--distance", type=float, help="metres to the face (default 0.5 to 0.8)")
    p.add_argument("--body", action="store_true", help="a torso and shoulders under the head")
    p.add_argument("--hair", action="store_true", help="a hair volume over the crown and back")
    p.add_argument("--occluder", choices=list(OCCLUDERS),
                   help="a hand against the cheek or a microphone before the chin")  # fmt: skip
    p.add_argument("--head-mesh", metavar="OBJ",
                   help="render this head (a scan, a hand-made head; y up, face toward +z, "
                   "metres, cm or mm) instead of an ICT identity, held in its own "
                   "expression")  # fmt: skip
    p.add_argument("--color", action="store_true",
                   help="a colour stream too (shaded skin, brows, lips, eyes), calibrated to "
                   "the depth: color/*.jpg in a folder, a COLOR track in an .mkv")  # fmt: skip
    p.set_defaults(func=simulate)

    p = sub.add_parser("record", help="live capture to disk")
    p.add_argument("--out", required=True, type=Path, help="take.mkv (k4a) or a capture folder")
    p.add_argument("--camera", choices=CAMERAS, default="k4a")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--color", action="store_true", help="also record colour (720p on k4a)")
    p.set_defaults(func=record)
