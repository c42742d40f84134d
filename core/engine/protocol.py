"""The engine protocol: how Blender (or any client) drives an engine process.

The engine is a child process running ``server.main`` (start it with ``boot_command``).
Both directions carry one JSON object per line, UTF-8. Bulk data never travels in a
message: jobs write files (atomically) and messages carry their paths.

Client -> engine, on stdin::

    {"op": "run", "id": 7, "cmd": "track", "args": {...}}   start a job (see ``jobs.JOBS``)
    {"op": "cancel", "id": 7}                               stop job 7 at its next step
    {"op": "stop", "id": 7}                                 end a streaming job (live
                                                            preview, recording), keeping
                                                            what it has: it ends in a result
    {"op": "quit"}                                          exit after the running job

Engine -> client, on stdout (logs and progress bars go to stderr)::

    {"event": "ready", "pid": 123, "protocol": 1, "python": "3.11.9"}
    {"event": "started", "id": 7, "cmd": "track"}
    {"event": "progress", "id": 7, "done": 3, "total": 60, "stage": "track", "text": "..."}
    {"event": "preview", "id": 7, "path": "/tmp/.../preview.npz", "frame": 12}
    {"event": "result", "id": 7, "value": {...}}
    {"event": "error", "id": 7, "message": "one line naming the file and the problem"}
    {"event": "cancelled", "id": 7}

Jobs run one at a time, in the order they arrive; a job ends with exactly one of
``result``, ``error`` or ``cancelled``. A cancelled job leaves no partial output: every
file is written under a temporary name and renamed when complete. If the process dies,
the client sees its stdout close and reports the exit code and the end of stderr.
"""

import json

PROTOCOL = 1
TERMINAL = ("result", "error", "cancelled")

# Runs the server from a package root given as argv[1], importing it as ``dphm`` whatever
# the folder is called (Blender installs extensions as bl_ext.<repo>.dphm).
_BOOT = """
import importlib.util, sys
root = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "dphm", root + "/__init__.py", submodule_search_locations=[root])
pkg = importlib.util.module_from_spec(spec)
sys.modules["dphm"] = pkg
spec.loader.exec_module(pkg)
from dphm.core.engine.server import main
sys.exit(main())
"""


def boot_command(python: str, package_root: str) -> list[str]:
    """The command line that starts an engine in ``python`` from the package at a folder."""
    return [python, "-c", _BOOT, str(package_root)]


def encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def decode(line: bytes | str) -> dict | None:
    """A message, or None for a line that is not one (stray output is ignored)."""
    line = line.decode(errors="replace") if isinstance(line, bytes) else line
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
