"""The Blender extension: manifest, zip, install/enable/disable in headless Blender, setup check.

Blender scenarios run in fresh subprocesses (tests/blender_scripts/scenario.py) with
BLENDER_USER_RESOURCES and HOME under tmp_path, so nothing touches the user's Blender.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest
from dphm.dphm_blender import engine_check

sys.path.insert(0, str(Path(__file__).resolve().parent / "blender_scripts"))
from dphm_classes import CLASS_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "tools" / "build_extension.py"
SCENARIO = ROOT / "tests" / "blender_scripts" / "scenario.py"
MARK = "DPHM-RESULT "
CLASSES = list(CLASS_NAMES)

# The interpreter that runs the Blender scenarios: this one (bpy==5.0.1), or another with a
# different bpy, e.g. DPHM_BLENDER_PYTHON=/tmp/bpy42/bin/python for Blender 4.2.
BLENDER_PYTHON = os.environ.get("DPHM_BLENDER_PYTHON") or sys.executable
needs_bpy = pytest.mark.skipif(find_spec("bpy") is None, reason="bpy (pip bpy==5.0.1) missing")


def run_tool(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(BUILD), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def build_zip(source: Path, out: Path) -> Path:
    proc = run_tool("build", "--source", str(source), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = sorted(out.glob("*.zip"))
    assert len(zips) == 1, zips
    return zips[0]


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    return build_zip(ROOT, tmp_path_factory.mktemp("dist"))


def blender_env(tmp: Path) -> dict:
    env = dict(os.environ)
    for key in (
        "BLENDER_USER_CONFIG",
        "BLENDER_USER_SCRIPTS",
        "BLENDER_USER_EXTENSIONS",
        "BLENDER_USER_DATAFILES",
        "PYTHONSTARTUP",
    ):
        env.pop(key, None)
    env["BLENDER_USER_RESOURCES"] = str(tmp / "blender_user")
    env["HOME"] = str(tmp / "home")
    env["XDG_CONFIG_HOME"] = str(tmp / "home" / ".config")
    env["XDG_CACHE_HOME"] = str(tmp / "home" / ".cache")
    env["XDG_DATA_HOME"] = str(tmp / "home" / ".local" / "share")
    (tmp / "home").mkdir(exist_ok=True)
    return env


def run_scenario(tmp: Path, *args, python=BLENDER_PYTHON, script=SCENARIO, timeout=180) -> dict:
    """Run a Blender scenario script in a fresh process; its ``DPHM-RESULT`` JSON."""
    proc = subprocess.run(
        [str(python), str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=blender_env(tmp),
        cwd=tmp,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert proc.returncode == 0 and lines, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(lines[-1][len(MARK) :])
    assert "exception" not in result, result["exception"] + proc.stderr[-3000:]
    result["stdout"] = proc.stdout
    return result


def local_repo(tmp: Path) -> Path:
    """A local extension repository whose ``dphm`` entry is the working tree itself."""
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "dphm").symlink_to(ROOT, target_is_directory=True)
    return repo


def labels(log) -> str:
    return "\n".join(text for kind, text in log if kind == "label")


# -- manifest and zip ----------------------------------------------------------------------


@needs_bpy
def test_manifest_passes_blenders_validator():
    proc = run_tool("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
    assert "rror" not in proc.stdout + proc.stderr


@needs_bpy
def test_validator_is_strict(tmp_path):
    """The same validator rejects a permission text over Blender's 64-character limit."""
    shutil.copy(ROOT / "__init__.py", tmp_path)
    text = (ROOT / "blender_manifest.toml").read_text()
    text = re.sub(r'(?m)^files = ".*"$', 'files = "' + "Reads files " * 8 + 'x"', text)
    (tmp_path / "blender_manifest.toml").write_text(text)
    proc = run_tool("validate", "--source", str(tmp_path))
    assert proc.returncode != 0
    assert "64 characters" in proc.stdout + proc.stderr


def test_manifest_declares_what_the_code_needs():
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["id"] == "dphm" and manifest["type"] == "add-on"
    assert manifest["version"] == project["version"]
    assert {"files", "camera"} <= set(manifest["permissions"])
    minimum = tuple(int(x) for x in manifest["blender_version_min"].split("."))
    assert minimum >= (4, 2, 0)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Installing the extension in Blender")[1].split("\n## ")[0]
    assert "5.0.1" in section and manifest["blender_version_min"][:3] in section
    assert "Install from Disk" in section and "download.pytorch.org" in section


@needs_bpy
def test_zip_holds_the_extension(built_zip):
    names = set(zipfile.ZipFile(built_zip).namelist())
    for needed in (
        "__init__.py",
        "blender_manifest.toml",
        "dphm_blender/__init__.py",
        "dphm_blender/preferences.py",
        "dphm_blender/engine_check.py",
        "operators/setup.py",
        "core/cli.py",
        "core/doctor.py",
    ):
        assert needed in names
    for name in names:
        excluded = ("tests/", "tools/", ".venv/", ".git/", "dist/", "weights/training/")
        assert not name.startswith(excluded)
        assert "__pycache__" not in name and not name.endswith((".pyc", ".partial"))
        assert "torch/" not in name and not name.endswith(".whl")  # torch is never bundled


@needs_bpy
def test_build_leaves_out_tests_caches_and_training_weights(tmp_path):
    src = tmp_path / "dphm"
    shutil.copytree(
        ROOT,
        src,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".venvs",
            ".git",
            "dist",
            "build",
            "__pycache__",
            ".*_cache",
            "*.egg-info",
            "weights",
            "runs",
            "demo_out",
            "out",
        ),
    )
    decoys = {
        "core/__pycache__/cli.cpython-311.pyc": False,
        "core/stray.pyc": False,
        ".venv/lib/site.py": False,
        ".git/HEAD": False,
        ".pytest_cache/README.md": False,
        "dphm.egg-info/PKG-INFO": False,
        "weights/training/step_000100.pt": False,
        "weights/head_model.pt.partial": False,
        "weights/head_model_triplane.pt.train": False,  # a resumable training state
        "weights/head_model.pt": True,  # the shipped checkpoint is part of the extension
        "weights/README.md": True,
    }
    for rel in decoys:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"decoy")
    names = set(zipfile.ZipFile(build_zip(src, tmp_path / "out")).namelist())
    assert "tests/test_extension.py" not in names and "__init__.py" in names
    for rel, kept in decoys.items():
        assert (rel in names) == kept, rel


# -- the setup check outside Blender -------------------------------------------------------


def _fake_python(tmp: Path, body: str) -> str:
    path = tmp / "python-wrapper"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as interpreter")
def test_setup_check_never_blocks(tmp_path):
    slow = _fake_python(tmp_path, f'sleep 2\nexec "{sys.executable}" "$@"')
    t0 = time.monotonic()
    job = engine_check.SetupCheck(slow)
    assert job.poll() is None and job.running
    assert time.monotonic() - t0 < 1.0  # started, not waited for
    result = job.wait()
    assert time.monotonic() - t0 >= 2.0
    assert result["error"] is None and result["python"] == slow
    assert result["modules"]["torch"]["version"]  # this venv has torch
    assert result["ok"] is (not result["missing"])


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as interpreter")
def test_setup_check_reports_a_broken_interpreter(tmp_path):
    broken = _fake_python(tmp_path, "echo 'cannot start' >&2; exit 3")
    result = engine_check.SetupCheck(broken).wait()
    assert "not a working Python" in result["error"] and "cannot start" in result["error"]
    result = engine_check.SetupCheck(str(tmp_path / "nope")).wait()
    assert "No Python interpreter" in result["error"]
    hung = _fake_python(tmp_path, "sleep 30")
    t0 = time.monotonic()
    result = engine_check.SetupCheck(hung, timeout=0.5).wait()
    assert "did not answer" in result["error"] and time.monotonic() - t0 < 5


def test_install_steps_name_the_interpreter_and_packages():
    steps = "\n".join(
        engine_check.install_steps(["torch", "av"], "/opt/py/bin/python3", own_python=False)
    )
    assert "/opt/py/bin/python3 -m pip install torch==" in steps
    assert "--index-url https://download.pytorch.org/whl/cpu" in steps
    assert "/opt/py/bin/python3 -m pip install av" in steps
    own = engine_check.install_steps(
        ["torch"], "C:/Program Files/Blender/python.exe", own_python=True
    )
    assert any('"C:/Program Files/Blender/python.exe" -m ensurepip' in s for s in own)
    assert any("Start Blender again" in s for s in own)


# -- headless Blender ------------------------------------------------------------------------


@pytest.mark.blender
@needs_bpy
def test_zip_installs_enables_and_disables(built_zip, tmp_path):
    r = run_scenario(tmp_path, "install_zip", built_zip)
    if BLENDER_PYTHON == sys.executable:
        assert r["version"] == "5.0.1"
    assert r["install"] == ["FINISHED"]
    installed = Path(r["installed_dir"])
    assert installed.is_relative_to(tmp_path)  # Blender used our throw-away user folder
    assert (installed / "blender_manifest.toml").is_file() and not (installed / "tests").exists()
    assert r["classes"] == sorted(CLASSES)
    after = r["after_install"]
    assert after["enabled"] and after["prefs_type"] == "DPHM_AddonPreferences"
    assert after["prefs_bl_idname"] == "bl_ext.user_default.dphm"
    assert after["registered"] == sorted(CLASSES)
    assert not after["torch_imported"]  # enabling never imports torch
    # Check setup with Blender's own Python (this venv, which has torch) says ready.
    assert r["own_check"]["error"] is None and r["own_check"]["python"] == BLENDER_PYTHON
    if BLENDER_PYTHON == sys.executable:
        assert r["own_check"]["ok"] and "DPHM setup: ready" in r["stdout"]
    gone = r["after_disable"]
    assert not gone["enabled"] and not gone["in_prefs_addons"] and gone["registered"] == []


@pytest.mark.blender
@needs_bpy
def test_working_tree_loads_as_local_repository(tmp_path):
    r = run_scenario(tmp_path, "local_repo", local_repo(tmp_path))
    assert r["enable_errors"] == []
    assert Path(r["module_file"]).resolve() == ROOT / "__init__.py"
    assert r["classes"] == sorted(CLASSES)
    assert r["after_enable"]["enabled"] and r["after_enable"]["registered"] == sorted(CLASSES)
    assert r["after_enable"]["prefs_bl_idname"] == "bl_ext.dphm_dev.dphm"
    assert r["register_twice"] == "ok"
    assert r["after_register_twice"]["registered"] == sorted(CLASSES)
    assert r["after_disable"]["registered"] == [] and not r["after_disable"]["in_prefs_addons"]
    assert r["unregister_twice"] == "ok"
    assert r["reenable_errors"] == [] and r["after_reenable"]["enabled"]
    assert r["after_reenable"]["registered"] == sorted(CLASSES)
    assert r["after_second_disable"]["registered"] == []


@pytest.mark.blender
@needs_bpy
def test_enabling_without_torch_explains_how_to_install(tmp_path):
    no_torch = tmp_path / "venv-without-torch"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(no_torch)], check=True, timeout=120
    )
    python = no_torch / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    r = run_scenario(tmp_path, "no_torch", local_repo(tmp_path), python)
    assert r["torch_blocked"]
    assert r["enable_errors"] == [] and r["after_enable"]["enabled"]
    assert r["after_enable"]["registered"] == sorted(CLASSES)
    assert not r["after_enable"]["torch_imported"]
    # The panel says so at once for Blender's own Python, before any check has run.
    own = labels(r["draw_own_python"])
    assert "PyTorch (torch) is not installed" in own
    assert f"{BLENDER_PYTHON} -m pip install torch==" in own
    assert ["operator", "dphm.copy_install_commands"] in r["draw_own_python"]
    # Check setup against an interpreter without torch names it, with the command to fix it.
    result = r["setup_result"]
    assert r["check_op"] == ["FINISHED"] and result["error"] is None
    assert result["python"] == str(python)
    assert "torch" in result["missing"] and result["modules"]["torch"]["version"] is None
    assert not result["ok"]
    after = labels(r["draw_after_check"])
    assert "torch: MISSING" in after
    assert f"{python} -m pip install torch==" in after
    assert "missing torch" in r["stdout"]  # the operator's report
    # A path that is not there is reported as such, not as a crash.
    assert "No Python interpreter" in r["setup_result_bad_path"]["error"]
    assert "No Python interpreter" in labels(r["draw_bad_path"])
    assert r["after_disable"]["registered"] == []
