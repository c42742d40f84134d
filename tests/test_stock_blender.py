"""The built zip in every Blender release we claim, each a venv holding only its ``bpy``.

``make test`` creates the venvs (tools/blender_matrix.py); the engine is this project's
interpreter, set in the preferences as a user without torch in Blender would. One
Blender process per release runs tests/blender_scripts/stock.py, which reports what it saw.
"""

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from dphm.core.engine.files import write_meshes
from dphm.core.tracking.bake import bake_take, frame_meshes, write_bake
from dphm.core.tracking.take import write_take
from test_blender_bake import codebook_take
from test_extension import ROOT, build_zip, needs_bpy, run_scenario

sys.path.insert(0, str(ROOT / "tools"))
from blender_matrix import VERSIONS, venv_python  # noqa: E402

SCRIPT = ROOT / "tests" / "blender_scripts" / "stock.py"
MARK = "DPHM-RESULT "
T = 4
pytestmark = [needs_bpy, pytest.mark.blender]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A built zip and a stored take with its bake (resolution 64, as the scene asks)."""
    from dphm.core.model.head import load_head

    model, content = load_head()
    take = codebook_take(content, T, identity=1)
    data = tmp_path_factory.mktemp("stored")
    write_take(data / "take.npz", model_sha256=content.get("sha256", ""), quality="balanced",
               fit_error_mm=np.full(T, 0.5), **take)  # fmt: skip
    write_bake(data / "bake.npz", bake_take(model, content, take, resolution=64))
    write_meshes(data / "meshes.npz", list(frame_meshes(model, take, resolution=40)))
    return build_zip(ROOT, tmp_path_factory.mktemp("dist")), data


@pytest.fixture(scope="module", params=list(VERSIONS))
def stock(request, stored, tmp_path_factory):
    version = request.param
    python = venv_python(version)
    if not python.is_file():
        pytest.skip(f"no venv for bpy {version}: python tools/blender_matrix.py create")
    zip_path, data = stored
    tmp = tmp_path_factory.mktemp(f"bpy-{version}")
    args = (zip_path, data, sys.executable, tmp)
    return version, run_scenario(tmp, *args, python=python, script=SCRIPT, timeout=600)


def test_venv_holds_only_bpy_and_its_dependencies(stock):
    version, _ = stock
    proc = subprocess.run(
        [str(venv_python(version)), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = {p["name"].lower() for p in json.loads(proc.stdout)}
    assert "bpy" in names
    assert not names & {"torch", "pillow", "scipy", "scikit-image", "av", "tqdm", "dphm"}


def test_enables_and_draws_without_anything_blender_lacks(stock):
    version, r = stock
    assert r["version"].startswith(version.rsplit(".", 1)[0])
    assert r["install"] == ["FINISHED"] and r["enable_errors"] == []
    assert r["foreign_at_start"] == r["foreign_after_enable"] == r["foreign_at_end"] == []
    assert set(r["panels"]) == {"DPHM_PT_capture", "DPHM_PT_track", "DPHM_PT_bake",
                                "DPHM_PT_sample", "DPHM_PT_transfer"}  # fmt: skip
    for panel, log in {**r["panels"], **r["panels_with_take"]}.items():
        assert log, f"{panel} drew nothing"
        bad = [item for item in log if item[0].startswith("missing")]
        assert not bad, (panel, bad)
    assert ["operator", "dphm.bake"] in r["panels"]["DPHM_PT_bake"]
    assert not [i for i in r["preferences"] if i[0].startswith("missing")]
    assert ["prop", "python_path"] in r["preferences"]
    assert ["prop", "head_family"] in r["preferences"]


def test_every_poll_answers_and_follows_the_scene(stock):
    _, r = stock
    for state in ("polls_fresh", "polls_with_take", "polls_reloaded"):
        assert all(isinstance(v, bool) for v in r[state].values()), r[state]
    fresh, ready = r["polls_fresh"], r["polls_with_take"]
    assert fresh["dphm.bake"] is False and ready["dphm.bake"] is True
    assert fresh["dphm.track"] is False and ready["dphm.track"] is True
    assert fresh["dphm.stop_live"] is False and fresh["dphm.record"] is False
    assert fresh["dphm.capture_preview"] is True and fresh["dphm.check_setup"] is True
    assert r["polls_reloaded"]["dphm.bake"] is True


def test_external_engine_checks_and_bakes(stock):
    _, r = stock
    assert r["check"] == ["FINISHED"]
    setup = r["setup"]
    assert setup["error"] is None and setup["ok"] and setup["python"] == sys.executable
    assert setup["modules"]["torch"]["version"]
    assert r["bake_op"] == ["FINISHED"]
    assert r["shape_keys"] == r["frames"] + 1 == T + 1
    # The engine's bake of the take is the stored bake of the same take.
    assert r["measured"]["operator"] < 1e-4


def test_writers_agree_with_the_stored_bake_before_and_after_reload(stock):
    _, r = stock
    assert r["arkit_keys"] == 52
    for measured in (r["measured"], r["reloaded"]):
        for key in ("operator", "keys", "keys_geometry", "cache"):
            assert measured[key] < 1e-5 or key == "operator", (key, measured[key])
        assert measured["alembic"] == 0  # the probed frame's own mesh is shown
    assert r["reloaded_take"].startswith("//")


def test_disables_cleanly(stock):
    _, r = stock
    assert r["registered_after_disable"] == []
    assert r["engine_after_disable"] is False
    assert r["scene_settings_after_disable"] is False


def test_manifest_and_readme_follow_the_matrix():
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    oldest = min(VERSIONS, key=lambda v: tuple(map(int, v.split("."))))
    assert manifest["blender_version_min"] == ".".join(oldest.split(".")[:2]) + ".0"
    readme = (ROOT / "README.md").read_text()
    tested = readme.split("Tested versions:")[1].split("\n\n")[0]
    for version, python in VERSIONS.items():
        assert version in tested and python in tested


def test_first_panel_bench_row_per_release():
    """``dphm bench --suite blender``'s first_panel rows: one per stock venv, torch untouched."""
    from types import SimpleNamespace

    from dphm.core import blender_bench

    rows = blender_bench.first_panel_rows(SimpleNamespace(quick=True))
    present = [v for v in VERSIONS if venv_python(v).is_file()]
    assert [r["blender"].split()[0] for r in rows] == present
    for r in rows:
        assert r["torch_or_engine"] is False and 0 < r["enable_s"] <= r["first_panel_s"]
