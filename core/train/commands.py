"""``dphm train model|prior|encoder|landmarks --preset tiny|default|long [--data PATH]
[--head CKPT] [--out CKPT] [--family nphm|triplane] [--losses full|3d|3d_reg|2d_reg]``."""

from pathlib import Path

from ..device import add_argument as add_device_argument
from ..model import FAMILIES
from ..paths import WEIGHTS_DIR, companion
from .presets import LOSS_SETS

DEFAULT_OUT = {
    "model": WEIGHTS_DIR / "head_model.pt",
    "prior": WEIGHTS_DIR / "prior.pt",
    "encoder": WEIGHTS_DIR / "encoder.pt",
    "landmarks": WEIGHTS_DIR / "face_landmarks.pt",
}


def default_out(what: str, family: str = "nphm", losses: str = "full") -> Path:
    """weights/head_model.pt, head_model_triplane.pt, head_model_triplane_3d.pt, ..."""
    path = DEFAULT_OUT[what]
    if what != "model" or (family, losses) == ("nphm", "full"):
        return path
    tail = "".join(f"_{p}" for p in (family, losses) if p not in ("nphm", "full"))
    return path.with_name(f"{path.stem}{tail}{path.suffix}")


def run(args) -> int:
    out = Path(args.out) if args.out else default_out(args.what, args.family, args.losses)
    if not args.out and args.what in ("prior", "encoder") and args.head:
        out = companion(args.head, out.name)  # head_model_triplane.pt -> prior_triplane.pt
    if args.preset == "long" and args.what != "model":
        from ..errors import DPHMError

        raise DPHMError("--preset long: only the head model has it (dphm train model)")
    if args.what == "model":
        from .head import train_head

        result = train_head(
            args.preset, out, ict_path=args.data, resume=not args.restart,
            family=args.family, losses=args.losses,
        )  # fmt: skip
    elif args.what == "prior":
        from ..prior.train import train_prior

        result = train_prior(args.preset, args.head, out)
    elif args.what == "landmarks":
        from .face_landmarks import train_face_landmarks

        result = train_face_landmarks(args.preset, out)
    else:
        from .encoder import train_encoder

        result = train_encoder(args.preset, args.head, out)
    if result:
        print(
            f"wrote {result['path']} (sha256 {result['sha256'][:12]}, "
            f"{result['seconds'] / 60:.1f} min)"
        )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train the head model, its priors or the encoder (runs under torchrun too)"
    )
    p.add_argument("what", choices=["model", "prior", "encoder", "landmarks"])
    p.add_argument("--preset", choices=["tiny", "default", "long"], default="default",
                   help="long: the head model trained four times as long (resumes)")  # fmt: skip
    p.add_argument("--data", help="ICT-FaceKit .npz or FaceXModel folder (default: shared data)")
    p.add_argument(
        "--head", help="prior, encoder: the head checkpoint to train for (default: weights/)"
    )
    p.add_argument(
        "--out",
        help="checkpoint path (default: weights/head_model.pt, prior.pt, encoder.pt or "
        "face_landmarks.pt; a prior or encoder for --head head_model_X.pt: prior_X.pt ...)",
    )
    p.add_argument(
        "--restart", action="store_true", help="model: ignore a resumable state beside --out"
    )
    p.add_argument("--family", choices=FAMILIES, default="nphm",
                   help="model: local MLPs on anchors (nphm) or generated tri-planes trained "
                   "with a 2D adversarial loss on normal maps (triplane)")  # fmt: skip
    p.add_argument("--losses", choices=list(LOSS_SETS), default="full",
                   help="model: identity losses (ablation: 3d, 3d_reg, 2d_reg)")  # fmt: skip
    add_device_argument(p)
    p.set_defaults(func=run)
