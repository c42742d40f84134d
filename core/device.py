"""The torch device a process runs the models and the fitting on (``--device``, the
engine's ``DPHM_DEVICE``): chosen once, before any model is built.

On a GPU every model and every tensor created afterwards lands there
(``torch.set_default_device``); numpy data comes in through ``torch.as_tensor`` and leaves
through ``.cpu()``. The CPU is left without a default-device mode, which costs time on
every small tensor op.
"""

import os

from .errors import DPHMError

NAMES = ("cpu", "cuda", "mps")


def resolve(name: str | None):
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a ``torch.device``; one clear error when this
    torch cannot use it."""
    import torch

    name = (name or "cpu").strip().lower()
    kind, _, index = name.partition(":")
    if kind not in NAMES or (index and not index.isdigit()):
        raise DPHMError(f"device {name!r}: choose cpu, cuda (or cuda:N) or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DPHMError(
                f"device {name}: torch {torch.__version__} ({build}) sees no CUDA GPU; "
                "install the CUDA build of torch for your driver (pytorch.org) or use cpu"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DPHMError(f"device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DPHMError(f"device {name}: no Apple GPU (MPS) here; use cpu")
    return torch.device(name)


def use(name: str | None = None):
    """Make ``name`` (default: ``$DPHM_DEVICE``, else cpu) this process's device."""
    import torch

    device = resolve(name if name is not None else os.environ.get("DPHM_DEVICE"))
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = resolve(f"cuda:{os.environ['LOCAL_RANK']}")  # one GPU per torchrun process
    if device.type != "cpu":
        torch.set_default_device(device)
    return device


def add_argument(parser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="torch device: cpu (default), cuda, cuda:N or mps ($DPHM_DEVICE)",
    )
