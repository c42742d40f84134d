"""Validate and build the extension zip with Blender's own tool, under plain Python.

Blender's extension command line (``blender --command extension validate|build``) is the
script ``blender_ext.py`` of the bundled ``bl_pkg`` add-on. The bpy wheel ships the same
script, so this runs it from there (or from ``--blender-ext PATH``) with Blender's list of
valid tags, exactly as Blender would:

    python tools/build_extension.py validate
    python tools/build_extension.py build [--out dist]
"""

import argparse
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bpy_scripts_dir() -> Path:
    spec = find_spec("bpy")  # locates the wheel without importing (and starting) Blender
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build_extension: no bpy; pip install bpy==5.0.1 or pass --blender-ext PATH")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        sys.exit(f"build_extension: no blender_ext.py inside {package}")
    return found[-1].parents[3]


def tool_paths(blender_ext: str | None) -> tuple[Path, Path | None]:
    """blender_ext.py and Blender's tags file (None when not found next to it)."""
    if blender_ext:
        script = Path(blender_ext)
        scripts = script.parents[3]
    else:
        scripts = bpy_scripts_dir()
        script = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    tags = scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return script, tags if tags.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("validate", "build"))
    parser.add_argument("--source", default=str(ROOT), help="extension folder (default: repo)")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip")
    parser.add_argument("--blender-ext", help="path to blender_ext.py (default: the bpy wheel's)")
    args = parser.parse_args(argv)

    script, tags = tool_paths(args.blender_ext)
    tag_args = [f"--valid-tags={tags}"] if tags else []
    validate = [sys.executable, str(script), "validate", *tag_args, args.source]
    code = subprocess.call(validate)
    if code or args.action == "validate":
        return code
    Path(args.out).mkdir(parents=True, exist_ok=True)
    build = [sys.executable, str(script), "build", *tag_args,
             "--source-dir", args.source, "--output-dir", args.out]
    return subprocess.call(build)


if __name__ == "__main__":
    raise SystemExit(main())
