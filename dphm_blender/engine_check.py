"""Which engine modules the chosen Python interpreter can import, checked without blocking.

Plain functions and a small job class, no bpy: the preferences panel and the "Check setup"
operator call them, and tests run them outside Blender. The check runs
``<python> -c <probe>`` in a subprocess whose output goes to temporary files, so the
caller only polls (``SetupCheck.poll``) and never waits on a pipe.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from ..core.doctor import INSTALL_HINTS, MODULES

# What the engine needs (required) and what only live capture needs (optional), in the
# order the panel lists them.
REQUIRED = ("torch", "scikit-image", "av")
OPTIONAL = ("pyk4a", "pyorbbecsdk", "pyrealsense2", "record3d")
CHECKED = REQUIRED + OPTIONAL

WHAT_FOR = {
    "torch": "PyTorch, runs the head model",
    "scikit-image": "turns the model into meshes",
    "av": "reads .mkv depth recordings",
    "pyk4a": "live Azure Kinect capture",
    "pyorbbecsdk": "live Orbbec capture (Femto Bolt / Mega, Gemini, Astra)",
    "pyrealsense2": "live Intel RealSense capture",
    "record3d": "live iPhone / iPad capture (Record3D app, USB)",
}

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DEFAULT_TIMEOUT = 180.0
_MARKER = "DPHM-SETUP-CHECK "

# Runs inside the engine interpreter. Only the standard library; prints one marked JSON line.
_PROBE = r"""
import importlib, json, sys
out = {"python_version": sys.version.split()[0], "executable": sys.executable, "modules": {}}
for name, mod in json.loads(sys.argv[1]).items():
    try:
        m = importlib.import_module(mod)
        out["modules"][name] = {"version": str(getattr(m, "__version__", "") or "installed")}
    except BaseException as e:
        out["modules"][name] = {"version": None, "error": (type(e).__name__ + ": " + str(e))[:300]}
devices = {"cpu": True, "cuda": False, "mps": False}
if out["modules"].get("torch", {}).get("version"):
    import torch
    try:
        devices["cuda"] = bool(torch.cuda.is_available())
    except Exception:
        pass
    try:
        devices["mps"] = bool(torch.backends.mps.is_available())
    except Exception:
        pass
out["devices"] = devices
print(MARKER + json.dumps(out), flush=True)
""".replace("MARKER", repr(_MARKER))


def engine_python(setting: str = "") -> str:
    """The interpreter the engine runs in: the preference when set, else this process's own."""
    setting = (setting or "").strip()
    if not setting:
        return sys.executable
    return os.path.abspath(os.path.expanduser(setting))


def is_own_python(python: str) -> bool:
    """True for this process's interpreter. Paths are compared, not resolved: a venv's python
    links to its base interpreter but has other packages."""

    def norm(p):
        return os.path.normcase(os.path.abspath(p))

    return norm(python) == norm(sys.executable)


def _failed(python: str, error: str) -> dict:
    return {
        "python": python,
        "python_version": None,
        "modules": {},
        "devices": {},
        "error": error,
        "ok": False,
        "missing": list(REQUIRED),
        "missing_optional": list(OPTIONAL),
        "checked_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _finish(python: str, probe: dict) -> dict:
    modules = probe.get("modules", {})
    missing = [n for n in REQUIRED if not modules.get(n, {}).get("version")]
    missing_optional = [n for n in OPTIONAL if not modules.get(n, {}).get("version")]
    return {
        "python": python,
        "python_version": probe.get("python_version"),
        "modules": modules,
        "devices": probe.get("devices", {}),
        "error": None,
        "ok": not missing,
        "missing": missing,
        "missing_optional": missing_optional,
        "checked_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


class Job:
    """Work in a subprocess, driven from a timer: ``poll()`` returns the result dict once
    done and never blocks; ``wait()`` blocks (scripts and background mode, never the UI)."""

    result: dict | None = None
    _proc: subprocess.Popen | None = None

    def poll(self) -> dict | None:
        raise NotImplementedError

    def wait(self, interval: float = 0.05) -> dict:
        while (result := self.poll()) is None:
            time.sleep(interval)
        return result

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


class SetupCheck(Job):
    """One run of the probe in a subprocess. Start it, then call ``poll()`` until not None."""

    def __init__(self, python: str, timeout: float = DEFAULT_TIMEOUT):
        self.python = python
        self.timeout = timeout
        self.started = time.monotonic()
        self._out = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._err = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        if not os.path.isfile(python):
            self._done(_failed(python, f"No Python interpreter at {python}"))
            return
        names = {n: MODULES[n] for n in CHECKED}
        try:
            self._proc = subprocess.Popen(
                [python, "-c", _PROBE, json.dumps(names)],
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
            )
        except OSError as e:
            self._done(_failed(python, f"Could not run {python}: {e.strerror or e}"))

    @property
    def running(self) -> bool:
        return self.result is None

    def poll(self) -> dict | None:
        """The result once the subprocess has ended (or timed out), else None. Never blocks."""
        if self.result is not None:
            return self.result
        assert self._proc is not None
        code = self._proc.poll()
        if code is None:
            if time.monotonic() - self.started > self.timeout:
                self.cancel()
                return self._done(
                    _failed(self.python, f"{self.python} did not answer in {self.timeout:.0f} s")
                )
            return None
        self._out.seek(0)
        self._err.seek(0)
        stdout, stderr = self._out.read(), self._err.read()
        for line in reversed(stdout.splitlines()):
            if line.startswith(_MARKER):
                try:
                    return self._done(_finish(self.python, json.loads(line[len(_MARKER) :])))
                except ValueError:
                    break
        tail = (stderr.strip().splitlines() or [f"exit status {code}"])[-1]
        return self._done(_failed(self.python, f"{self.python} is not a working Python: {tail}"))

    def cancel(self) -> None:
        self._kill()
        if self.result is None:
            self._done(_failed(self.python, "check cancelled"))

    def _done(self, result: dict) -> dict:
        self.result = result
        self._out.close()
        self._err.close()
        return result


def pip_args(name: str, device: str = "cpu") -> str:
    """What goes after ``pip install`` for one checked module."""
    hint = INSTALL_HINTS[name]
    args = hint.partition("  (")[0].removeprefix("pip install ").strip()
    if name == "torch" and device != "cuda":
        args += f" --index-url {TORCH_CPU_INDEX}"
    return args


def install_note(name: str) -> str:
    """The remark that comes with a module's install hint (drivers, variants), or ''."""
    return INSTALL_HINTS[name].partition("  (")[2].rstrip(")")


def quote(path: str) -> str:
    return f'"{path}"' if (" " in path or not path) else path


def install_commands(
    missing: list[str], python: str, *, own_python: bool, device: str = "cpu"
) -> list[str]:
    """The terminal commands that install ``missing`` into ``python``."""
    if not missing:
        return []
    py = quote(python)
    commands = [f"{py} -m ensurepip --upgrade"] if own_python else []
    if "torch" in missing:
        commands.append(f"{py} -m pip install {pip_args('torch', device)}")
    packages = " ".join(pip_args(n) for n in missing if n != "torch")
    if packages:
        commands.append(f"{py} -m pip install {packages}")
    return commands


def install_steps(
    missing: list[str], python: str, *, own_python: bool, device: str = "cpu"
) -> list[str]:
    """Step-by-step lines telling a non-programmer how to install ``missing`` into ``python``."""
    commands = install_commands(missing, python, own_python=own_python, device=device)
    if not commands:
        return []
    lines = []
    if own_python:
        lines.append("1. Close Blender.")
        lines.append("2. Open a terminal (Windows: Command Prompt) and run, one after the other:")
        step = 3
    else:
        lines.append("1. Open a terminal (Windows: Command Prompt) and run:")
        step = 2
    lines.extend(f"   {c}" for c in commands)
    if "torch" in missing and device == "cuda":
        lines.append("   (NVIDIA GPU: take the torch command for your CUDA from pytorch.org)")
    if own_python:
        lines.append(
            f"{step}. On a permission error, run the terminal as administrator, "
            "or choose another Python interpreter above."
        )
        step += 1
        lines.append(f"{step}. Start Blender again and press Check setup.")
    else:
        lines.append(f"{step}. Press Check setup again.")
    return lines


def summary(result: dict) -> str:
    """One line for the status bar (operator report)."""
    if result.get("error"):
        return f"DPHM setup: {result['error']}"
    where = f"Python {result.get('python_version')} at {result['python']}"
    if result["missing"]:
        return (
            f"DPHM setup: missing {', '.join(result['missing'])} in {where}. "
            "See Preferences > Add-ons > DPHM for how to install."
        )
    text = f"DPHM setup: ready ({where}, torch {result['modules']['torch']['version']})"
    if result["missing_optional"]:
        text += f"; for live cameras also install {' or '.join(result['missing_optional'])}"
    return text


def report_lines(result: dict, *, device: str = "cpu") -> list[str]:
    """The full result as lines for the preferences panel."""
    lines = [f"Checked {result['checked_at']}: {result['python']}"]
    if result.get("error"):
        lines.append(f"Problem: {result['error']}")
        lines.append("Choose an existing Python 3.11 interpreter, or leave the field empty.")
        return lines
    lines.append(f"Python {result.get('python_version')}")
    for name in CHECKED:
        info = result["modules"].get(name, {})
        tag = "needed" if name in REQUIRED else "optional"
        state = info.get("version") or "MISSING"
        error = info.get("error") or ""
        if error and not error.startswith("ModuleNotFoundError"):
            state = f"installed but fails to load: {error[:120]}"
        lines.append(f"{name}: {state}  ({tag}: {WHAT_FOR[name]})")
    devices = result.get("devices") or {}
    if not result["missing"] and device != "cpu" and not devices.get(device):
        lines.append(f"torch cannot use device '{device}' here; choose cpu or a {device} build")
    return lines


def torch_findable_here() -> bool:
    """Cheap guess, without importing it, whether this process's Python has torch."""
    from importlib.util import find_spec

    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


class OneAtATime:
    """The one background job of a kind (a check, a setup) this Blender session runs."""

    def __init__(self):
        self.job = None

    def start(self, job):
        self.cancel()
        self.job = job
        return job

    def running(self) -> bool:
        return self.job is not None and self.job.poll() is None

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
        self.job = None


checks = OneAtATime()
