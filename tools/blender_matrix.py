"""The stock-Blender test matrix: one venv per Blender release holding only its ``bpy``.

Each venv is what that Blender bundles (``bpy`` and its own dependencies: numpy, requests,
cython, zstandard, certifi) on the Python that release runs, so the extension is tested
as users meet it. ``make test`` creates them before the suite runs:

    python tools/blender_matrix.py create [--root .venvs]
    python tools/blender_matrix.py list
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs"
# bpy release -> the Python it is built for (Blender 4.2 LTS, 4.5 LTS, 5.0, 5.2 LTS, 5.3).
VERSIONS = {"4.2.23": "3.11", "4.5.15": "3.11", "5.0.1": "3.11", "5.2.3": "3.13", "5.3.0": "3.13"}


def venv_python(version: str, root: Path = VENVS) -> Path:
    return root / f"bpy-{version}" / "bin" / "python"


def _runs(python: str, minor: str) -> bool:
    """True when ``python`` starts and is Python ``minor`` (a pyenv shim of an inactive
    version is on PATH but does not run)."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == minor


def find_interpreter(minor: str) -> str:
    """python3.11 / python3.13 from pyenv's install, else from PATH; one that runs."""
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", minor], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        prefix = ""
    candidates = [str(Path(prefix) / "bin" / f"python{minor}")] if prefix else []
    candidates.append(shutil.which(f"python{minor}") or "")
    for python in filter(None, candidates):
        if _runs(python, minor):
            return python
    sys.exit(f"blender_matrix: no python{minor} on PATH or in pyenv (pyenv install {minor})")


def create(root: Path) -> None:
    for version, minor in VERSIONS.items():
        folder = root / f"bpy-{version}"
        stamp = folder / ".installed"
        if stamp.is_file():
            continue
        python = venv_python(version, root)
        if not python.is_file():
            subprocess.run([find_interpreter(minor), "-m", "venv", str(folder)], check=True)
        print(f"blender_matrix: bpy=={version} on Python {minor} -> {folder}", flush=True)
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"bpy=={version}"], check=True, env=env
        )
        stamp.touch()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("create", "list"))
    parser.add_argument("--root", type=Path, default=VENVS)
    args = parser.parse_args(argv)
    if args.action == "create":
        create(args.root)
    else:
        for version in VERSIONS:
            print(version, venv_python(version, args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
