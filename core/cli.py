"""The ``dphm`` command. Each subcommand lives in the module that owns its work."""

import argparse
import importlib
import sys
import warnings
from contextlib import contextmanager

from .errors import DPHMError

# Modules (relative to core) that define ``add_parser(subparsers)``, in --help order.
COMMANDS = (
    ".doctor",
    ".demo",
    ".train.commands",
    ".prior.commands",
    ".bench",
    ".capture.commands",
    ".tracking.commands",
    ".transfer.commands",
    ".appearance.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dphm",
        description="Depth camera to animated neural parametric head (DPHM), for Blender.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name, __package__).add_parser(sub)
    return parser


@contextmanager
def _warnings_as_lines(command: str):
    """Show the product's warnings (a truncated recording, gaps in a capture ...) as one line
    each: ``dphm CMD: warning: ...``."""
    from .capture.warn import CaptureWarning

    def show(message, category, *args, **kwargs):
        print(f"dphm {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", CaptureWarning)
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with _warnings_as_lines(args.command):
            if "device" in args:  # before any model is built
                from . import device

                device.use(args.device)
            return int(args.func(args) or 0)
    except DPHMError as e:
        print(f"dphm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path given on the command line cannot be read or written
        where = e.filename or "a file"
        print(f"dphm {args.command}: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dphm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
