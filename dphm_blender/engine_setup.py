"""*Set up engine*: a private Python environment for the engine, created and filled by pip.

No bpy here: the preferences' operator drives ``EngineSetup`` from a timer, and tests run
it outside Blender. The environment lives in the extension's user data folder, is made by
``venv`` from Blender's own Python or a python3.11 / python3.13 found on the system, and
gets torch (from the index the user picks) and the engine's other packages. Blender's own
Python is never changed. Every step's output goes to ``setup.log`` beside the environment.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .engine_check import Job, OneAtATime

TORCH = "torch==2.13.0"
# What the engine imports besides torch (pyproject.toml's dependencies).
PACKAGES = ("numpy<2", "scipy>=1.10", "scikit-image>=0.22", "av>=14", "tqdm>=4.60", "pillow>=9")
# Torch builds: preference value -> (label, pip index arguments, download size for the dialog)
TORCH_BUILDS = {
    "CPU": ("CPU (pytorch.org)", ["--index-url", "https://download.pytorch.org/whl/cpu"], 250),
    "CU128": ("CUDA 12.8 (pytorch.org)", ["--index-url", "https://download.pytorch.org/whl/cu128"],
              2800),
    "CU130": ("CUDA 13.0 (pytorch.org)", ["--index-url", "https://download.pytorch.org/whl/cu130"],
              2800),
    "PIP": ("pip's own configuration (PyPI or your mirror)", [], 900),
}  # fmt: skip
PYTHONS = ("3.11", "3.13", "3.12")  # versions torch and the engine are tested with, in order
OTHER_MB = 120
NO_PYTHON = (
    "no Python 3.11, 3.12 or 3.13 that can create environments was found; "
    "install Python 3.11 from python.org and try again"
)


def env_python(folder: Path) -> Path:
    folder = Path(folder)
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _version(python: str) -> str | None:
    """``3.11`` for a Python that can make venvs with pip, else None."""
    probe = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def base_pythons(own: str = sys.executable) -> list[tuple[str, str]]:
    """(interpreter, version) that can create the environment: Blender's own first, then
    python3.11 / 3.13 / 3.12 from PATH."""
    found, seen = [], set()
    for cand in filter(None, [own] + [shutil.which(f"python{v}") for v in PYTHONS]):
        key = os.path.normcase(os.path.realpath(cand))
        if key not in seen and (version := _version(cand)) in PYTHONS:
            seen.add(key)
            found.append((cand, version))
    return found


def download_mb(build: str) -> int:
    return TORCH_BUILDS[build][2] + OTHER_MB


def steps(base: str, folder: Path, build: str) -> list[tuple[str, list[str]]]:
    """(what, command) in order."""
    py = str(env_python(folder))
    pip = [py, "-m", "pip", "install", "--progress-bar", "off"]
    return [
        ("Creating the environment", [base, "-m", "venv", str(folder)]),
        ("Installing PyTorch", [*pip, TORCH, *TORCH_BUILDS[build][1]]),
        ("Installing scikit-image, av, SciPy", [*pip, *PACKAGES]),
    ]


class EngineSetup(Job):
    """Runs the steps one after another in subprocesses. Start it, call ``poll()`` (never
    blocks) until it returns the result dict; ``cancel()`` stops it and removes what it made."""

    def __init__(self, folder, build: str = "CPU", base: str | None = None):
        self.folder = Path(folder)
        self.log_path = self.folder.with_name(self.folder.name + "-setup.log")
        self.python = str(env_python(self.folder))
        self.build = build
        self.started = time.monotonic()
        self._log = None
        self.step = 0
        bases = [(base, _version(base))] if base else base_pythons()
        bases = [(b, v) for b, v in bases if v in PYTHONS]
        if not bases:
            self._done(False, NO_PYTHON)
            return
        self.base, self.base_version = bases[0]
        if self.folder.exists():  # a failed or older setup: start clean
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        self._log.write(f"DPHM engine setup {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._log.write(f"base Python {self.base_version}: {self.base}\ninto {self.folder}\n")
        self._steps = steps(self.base, self.folder, build)
        self._start_step()

    @property
    def running(self) -> bool:
        return self.result is None

    @property
    def total(self) -> int:
        return len(self._steps)

    def status(self) -> str:
        """What is happening now: the step and pip's latest line."""
        if self.result is not None:
            return self.result["message"]
        what = self._steps[self.step][0]
        return f"{what} ({self.step + 1}/{self.total}): {self.last_line()}"

    def last_line(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("$ ")]
        return lines[-1][:120] if lines else ""

    def _start_step(self) -> None:
        what, cmd = self._steps[self.step]
        self._log.write(f"\n$ {' '.join(cmd)}\n")
        self._log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)  # Blender's own must not leak into the new interpreter
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
            )
        except OSError as e:
            self._fail(f"{what} failed: cannot run {cmd[0]} ({e.strerror or e})")

    def poll(self) -> dict | None:
        if self.result is not None:
            return self.result
        code = self._proc.poll()
        if code is None:
            return None
        if code != 0:
            what = self._steps[self.step][0]
            return self._fail(f"{what} failed (exit status {code}): {self.last_line()}")
        self.step += 1
        if self.step < self.total:
            self._start_step()
            return None
        minutes = (time.monotonic() - self.started) / 60
        return self._done(True, f"engine ready in {minutes:.1f} min: {self.python}")

    def cancel(self) -> None:
        self._kill()
        if self.result is None:
            self._fail("setup cancelled")

    def _fail(self, message: str) -> dict:
        shutil.rmtree(self.folder, ignore_errors=True)  # nothing half-made is left to use
        return self._done(False, message)

    def _done(self, ok: bool, message: str) -> dict:
        if self._log is not None:
            self._log.write(f"\n{'OK' if ok else 'FAILED'}: {message}\n")
            self._log.close()
        self.result = {"ok": ok, "message": message, "python": self.python if ok else None,
                       "log": str(self.log_path), "build": self.build}  # fmt: skip
        return self.result


setups = OneAtATime()
