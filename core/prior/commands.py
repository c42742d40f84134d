"""``dphm sample --identities N --expressions M --seed S --out DIR [--format obj|ply|npz]``."""

from pathlib import Path

from ..device import add_argument as add_device_argument
from ..errors import DPHMError
from ..npz import save_npz

FORMATS = ("obj", "ply", "npz")


def sample(args) -> int:

    from ..model.head import load_head
    from ..paths import companion
    from .latent import load_prior
    from .sample import sample_codes, write_grid

    if args.identities < 1 or args.expressions < 0:
        raise DPHMError("--identities must be >= 1 and --expressions >= 0")
    if args.steps < 1:
        raise DPHMError("--steps must be >= 1")
    model, head = load_head(args.head)
    priors, prior = load_prior(args.prior or companion(head["path"], "prior.pt"), head["sha256"])
    z_id, z_exp = sample_codes(
        priors, args.identities, args.expressions, args.seed, args.sampler, args.steps
    )
    out = Path(args.out)
    paths = write_grid(model, z_id, z_exp, out, args.format, args.resolution)
    save_npz(
        out / "codes.npz",
        {
            "z_id": z_id.cpu().numpy(),
            "z_exp": z_exp.cpu().numpy(),
            "seed": args.seed,
            "sampler": args.sampler,
            "steps": args.steps,
            "model_sha256": head["sha256"],
            "prior_sha256": prior["sha256"],
        },
    )
    print(f"wrote {len(paths)} heads and codes.npz to {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="heads drawn from the diffusion priors")
    p.add_argument("--identities", type=int, default=4, help="sampled identities (N)")
    p.add_argument("--expressions", type=int, default=4, help="sampled expressions (M)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=FORMATS, default="obj")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM always uses all)")
    p.add_argument("--resolution", type=int, default=128, help="marching cubes grid")
    p.add_argument("--head", help="head checkpoint (default: weights/head_model.pt)")
    p.add_argument("--prior", help="prior checkpoint (default: weights/prior.pt)")
    add_device_argument(p)
    p.set_defaults(func=sample)
