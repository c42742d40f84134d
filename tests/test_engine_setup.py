"""*Set up engine*: a private Python for the engine, made and filled by pip, for real.

One real run, in the stock Blender 5.0.1 venv (Python 3.11, no torch): the operator makes
the environment in the extension's user data folder from Blender's own Python, installs
torch and the rest from pip's own configuration (the index CI uses), points the engine
preference at it, and Check setup then reports it ready.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from dphm.dphm_blender import engine_setup
from test_extension import ROOT, build_zip, needs_bpy, run_scenario

sys.path.insert(0, str(ROOT / "tools"))
from blender_matrix import venv_python  # noqa: E402

SCRIPT = ROOT / "tests" / "blender_scripts" / "setup_engine.py"


def test_steps_name_the_index_and_never_blenders_python(tmp_path):
    cpu = engine_setup.steps("/usr/bin/python3.11", tmp_path / "env", "CPU")
    assert [what for what, _ in cpu][0] == "Creating the environment"
    assert cpu[0][1] == ["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "env")]
    torch = cpu[1][1]
    assert torch[0] == str(tmp_path / "env" / "bin" / "python") and engine_setup.TORCH in torch
    assert torch[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert "cu128" in " ".join(engine_setup.steps("p", tmp_path, "CU128")[1][1])
    assert "--index-url" not in engine_setup.steps("p", tmp_path, "PIP")[1][1]
    for _, cmd in cpu[1:]:
        assert cmd[0] != "/usr/bin/python3.11"  # pip only ever runs the new environment's


def test_packages_are_the_engines_dependencies():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(d.replace(",<2", "").lower() for d in deps) == sorted(
        p.replace("<2", ">=1.24").lower() if p.startswith("numpy") else p.lower()
        for p in engine_setup.PACKAGES
    )


def test_base_python_is_found_and_bad_ones_are_refused(tmp_path):
    found = engine_setup.base_pythons()
    assert found and found[0][0] == sys.executable and found[0][1] == "3.11"
    job = engine_setup.EngineSetup(tmp_path / "env", base=str(tmp_path / "no-python"))
    assert job.result["ok"] is False and "install Python 3.11" in job.result["message"]


def test_a_failing_step_names_it_and_removes_the_half_made_environment(tmp_path):
    job = engine_setup.EngineSetup(tmp_path / "env", build="CPU", base=sys.executable)
    job._steps[1] = ("Installing PyTorch", [job.python, "-m", "pip", "install", "--no-index",
                                            "torch-that-does-not-exist==0"])  # fmt: skip
    result = job.wait()
    assert result["ok"] is False and result["message"].startswith("Installing PyTorch failed")
    assert not (tmp_path / "env").exists()
    log = Path(result["log"]).read_text()
    assert "$ " in log and "FAILED" in log


def test_cancel_stops_and_cleans_up(tmp_path):
    job = engine_setup.EngineSetup(tmp_path / "env", build="PIP", base=sys.executable)
    assert job.poll() is None and job.running
    job.cancel()
    assert job.result == {**job.result, "ok": False, "message": "setup cancelled"}
    assert not (tmp_path / "env").exists()


@pytest.mark.slow
@pytest.mark.blender
@needs_bpy
def test_set_up_engine_in_a_stock_blender_for_real(tmp_path):
    python = venv_python("5.0.1")
    if not python.is_file():
        pytest.skip("no stock bpy 5.0.1 venv: python tools/blender_matrix.py create")
    zip_path = build_zip(ROOT, tmp_path / "dist")
    r = run_scenario(tmp_path, zip_path, "PIP", python=python, script=SCRIPT, timeout=1500)
    assert r["python_before"] == "" and r["poll_before"] is True
    assert ["operator", "dphm.setup_engine"] in r["draw_before"]
    assert r["op"] == ["FINISHED"], r["stdout"][-3000:]
    folder = Path(r["folder"])
    assert folder.is_relative_to(tmp_path)  # Blender's user extension data folder
    assert r["python_after"] == str(folder / "bin" / "python")
    setup = r["setup"]
    assert setup["ok"] and setup["python"] == r["python_after"]
    assert setup["modules"]["torch"]["version"].startswith("2.13.0")
    assert setup["modules"]["scikit-image"]["version"] and setup["modules"]["av"]["version"]
    assert not r["torch_in_blender"]  # Blender's own Python is untouched
    own = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True)
    assert "torch" not in own.stdout
    assert any("engine ready" in text for kind, text in r["draw_after"] if kind == "label")
