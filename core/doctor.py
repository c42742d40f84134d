"""``dphm doctor``: what is installed, which checkpoints and cameras are found."""

import importlib
import json
import platform
import sys

from .paths import checkpoint_dir

MODULES = {
    "torch": "torch",
    "numpy": "numpy",
    "scipy": "scipy",
    "scikit-image": "skimage",
    "av": "av",
    "tqdm": "tqdm",
    "bpy": "bpy",
    "pyk4a": "pyk4a",
    "pyrealsense2": "pyrealsense2",
    "pyorbbecsdk": "pyorbbecsdk",
    "record3d": "record3d",
    "lzfse": "lzfse",
    "mediapipe": "mediapipe",
}

INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0  (CPU build; see the README for CUDA)",
    "numpy": "pip install 'numpy<2'",
    "scipy": "pip install scipy",
    "scikit-image": "pip install scikit-image",
    "av": "pip install av",
    "tqdm": "pip install tqdm",
    "bpy": "pip install bpy==5.0.1  (only needed outside Blender, for tests and the demo)",
    "pyk4a": "pip install pyk4a-bundle  (Azure Kinect; ships the SDK libraries)",
    "pyrealsense2": "pip install pyrealsense2  (Intel RealSense; needs libusb-1.0-0)",
    "pyorbbecsdk": "pip install pyorbbecsdk2  (Orbbec Femto Bolt / Mega, Gemini, Astra; SDK v2)",
    "record3d": "pip install record3d  (iPhone / iPad via the Record3D app's USB streaming)",
    "lzfse": "pip install lzfse  (Record3D .r3d files)",
    "mediapipe": "pip install 'dphm[landmarks]'  (colour face landmarks; mediapipe==0.10.14)",
}

OPTIONAL = {"bpy", "pyk4a", "pyrealsense2", "pyorbbecsdk", "record3d", "lzfse", "mediapipe"}


def module_versions() -> dict[str, str | None]:
    """Version string of each module, or None when it cannot be imported."""
    out: dict[str, str | None] = {}
    for name, mod in MODULES.items():
        if name == "bpy" and "bpy" not in sys.modules:
            out[name] = _probe_bpy()
            continue
        try:
            m = importlib.import_module(mod)
        except Exception:
            out[name] = None
            continue
        version = getattr(m, "__version__", None)
        if name == "bpy":
            version = ".".join(map(str, m.app.version))
        out[name] = str(version or "installed")
    return out


def _probe_bpy() -> str | None:
    """bpy is heavy to import; only report whether it is installed and its distribution version."""
    from importlib import metadata
    from importlib.util import find_spec

    try:
        if find_spec("bpy") is None:
            return None
    except (ImportError, ValueError):  # a broken install, or an import hook that refuses bpy
        return None
    try:
        return metadata.version("bpy")
    except metadata.PackageNotFoundError:
        return "installed"


def found_checkpoints() -> list[dict]:
    """Every ``*.pt`` in the checkpoint folder with its kind and sha256, or the load error."""
    folder = checkpoint_dir()
    rows = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        row = {"path": str(path)}
        try:
            from .model.checkpoint import peek

            row.update(peek(path))
        except Exception as e:  # a damaged file is reported, not fatal
            row["error"] = str(e)
        rows.append(row)
    return rows


def connected_cameras() -> list[str]:
    """Names of depth cameras that answer right now (empty without drivers or devices)."""
    try:
        from .capture.live import list_devices
    except ImportError:
        return []
    return list_devices()


def report() -> dict:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "modules": module_versions(),
        "checkpoint_dir": str(checkpoint_dir()),
        "checkpoints": found_checkpoints(),
        "cameras": connected_cameras(),
    }


def run(args) -> int:
    info = report()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"python        {info['python']}  ({info['platform']})")
    for name, version in info["modules"].items():
        if version is None:
            tag = "optional, " if name in OPTIONAL else ""
            print(f"{name:13s} missing ({tag}install: {INSTALL_HINTS[name]})")
        else:
            print(f"{name:13s} {version}")
    print(f"checkpoints   {info['checkpoint_dir']}")
    if not info["checkpoints"]:
        print("              none found")
    for c in info["checkpoints"]:
        detail = c.get("error") or f"{c.get('kind', '?')} sha256 {c.get('sha256', '?')[:12]}"
        print(f"              {c['path']}: {detail}")
    print(f"cameras       {', '.join(info['cameras']) or 'none connected'}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="versions, checkpoints found, cameras connected")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)
