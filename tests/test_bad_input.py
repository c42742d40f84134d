"""Every command, given a missing, empty, truncated or garbage input: one line naming the
file and the problem, exit status 2, no traceback (and nothing written as a result)."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dphm.core import cli
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.paths import WEIGHTS_DIR
from dphm.core.tracking.take import write_take

SHARED = Path(os.environ.get("DPHM_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
RECORDING = SHARED / "azure_kinect" / "recording.mkv"
KINDS = ("missing", "empty", "truncated", "garbage")


@functools.cache
def shipped_codes():
    from dphm.core.model.head import load_head

    _, content = load_head()
    books = content["codebooks"]
    return content["sha256"], books["id"][0].numpy(), books["exp"][:3].numpy()


def valid_take(path: Path) -> Path:
    from dphm.core.capture.simulate import KINECT_NFOV

    sha, z_id, z_exp = shipped_codes()
    t = len(z_exp)
    return write_take(
        path, model_sha256=sha, z_id=z_id, z_exp=z_exp,
        R=np.tile(np.eye(3), (t, 1, 1)), t=np.zeros((t, 3)), s=np.ones(t),
        timestamps=np.arange(t) / 30, arkit=np.zeros((t, 52)),
        intrinsics=KINECT_NFOV.to_dict(), source="test", quality="balanced",
        fit_error_mm=np.zeros(t),
    )  # fmt: skip


def valid_csv(path: Path) -> Path:
    rows = ["Timecode,BlendShapeCount," + ",".join(ARKIT_NAMES)]
    rows += [f"00:00:00:{i:02d},52," + ",".join(["0.25"] * 52) for i in range(5)]
    path.write_text("\n".join(rows) + "\n")
    return path


def valid_obj(path: Path) -> Path:
    from dphm.core.data.obj import write_obj

    write_obj(path, np.eye(4)[:, :3], np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]))
    return path


VALID = {
    ".mkv": lambda p: p.write_bytes(RECORDING.read_bytes()) and p,
    ".npz": valid_take,
    ".pt": lambda p: p.write_bytes((WEIGHTS_DIR / "head_model.pt").read_bytes()) and p,
    ".csv": valid_csv,
    ".obj": valid_obj,
}


def bad_file(folder: Path, suffix: str, kind: str) -> Path:
    path = folder / f"{kind}{suffix}"
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        data = VALID[suffix](folder / f"valid{suffix}").read_bytes()
        # text files are cut inside a row (a CSV row, an OBJ vertex), binary ones at a third
        cut = {".csv": lambda: len(data) - 40, ".obj": lambda: data.rindex(b"\nv ") + 4}
        cut = cut.get(suffix, lambda: len(data) // 3)()
        path.write_bytes(data[:cut])
    return path


# (command line with {bad} where the bad file goes, its suffix)
COMMANDS = [
    ("convert {bad} --out {out}/cap", ".mkv"),
    ("track {bad} --out {out}/take.npz --quality preview", ".mkv"),
    ("track {folder} --out {out}/take.npz", "capture folder"),
    ("export {bad} --to obj --out {out}/objs", ".npz"),
    ("export {bad} --to arkit-csv --out {out}/weights.csv", ".npz"),
    ("transfer {bad} --onto identity:0 --out {out}/t.npz", ".npz"),
    ("transfer {take} --onto {bad} --out {out}/t.npz", ".obj"),
    ("simulate --out {out}/sim --arkit {bad} --frames 2", ".csv"),
    ("sample --identities 1 --expressions 1 --out {out}/s --head {bad}", ".pt"),
    ("sample --identities 1 --expressions 1 --out {out}/s --prior {bad}", ".pt"),
    ("track {recording} --out {out}/take.npz --model {bad}", ".pt"),
    ("train prior --preset tiny --head {bad} --out {out}/p.pt", ".pt"),
    ("train encoder --preset tiny --head {bad} --out {out}/e.pt", ".pt"),
    ("train model --preset tiny --data {bad} --out {out}/m.pt", ".npz"),
]


def bad_folder(folder: Path, kind: str) -> Path:
    """A capture folder that is missing, empty, cut short or holds garbage."""
    path = folder / f"{kind}_capture"
    if kind == "missing":
        return path
    (path / "depth").mkdir(parents=True)
    if kind == "empty":
        return path
    meta = {"fx": 504.0, "fy": 504.0, "cx": 320.0, "cy": 288.0, "width": 640, "height": 576}
    text = json.dumps(meta)
    (path / "intrinsics.json").write_text(text[: len(text) // 2] if kind == "truncated" else text)
    if kind == "garbage":
        (path / "depth" / "000000.png").write_bytes(np.random.default_rng(1).bytes(2000))
    return path


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    return code, lines


@pytest.mark.skipif(not RECORDING.is_file(), reason="needs the shared Azure Kinect recording")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command,suffix", COMMANDS, ids=[c.split()[0] + s for c, s in COMMANDS])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, command, suffix, kind):
    if suffix == "capture folder":
        bad = bad_folder(tmp_path, kind)
    else:
        bad = bad_file(tmp_path, suffix, kind)
    out = tmp_path / "out"
    argv = command.format(
        bad=bad, out=out, folder=bad, take=valid_take(tmp_path / "ok_take.npz"),
        recording=RECORDING,
    ).split()  # fmt: skip
    code, lines = run(argv, capsys)
    errors = [ln for ln in lines if ": error: " in ln]
    assert code == 2, lines
    assert len(errors) == 1 and errors[0].startswith(f"dphm {argv[0]}: error: "), lines
    assert bad.name in errors[0], errors[0]
    assert not any("Traceback" in ln for ln in lines)


def test_the_reported_cases(tmp_path, capsys):
    """The cases found by running bad input through the CLI, each with its own message."""
    if RECORDING.is_file():
        code, lines = run(["convert", str(RECORDING), "--out", "/dev/null/x"], capsys)
        assert code == 2 and "/dev/null/x" in lines[-1] and "Not a directory" in lines[-1]
        code, lines = run(["track", str(RECORDING), "--out", str(tmp_path / "t.npz"),
                           "--frames", "5:2"], capsys)  # fmt: skip
        assert code == 2 and lines == ["dphm track: error: --frames 5:2: the range is empty "
                                       "(A:B needs 0 <= A < B)"]  # fmt: skip
    take = valid_take(tmp_path / "take.npz")
    (tmp_path / "cut.npz").write_bytes(take.read_bytes()[:500])
    code, lines = run(["export", str(tmp_path / "cut.npz"), "--to", "obj", "--out",
                       str(tmp_path / "o")], capsys)  # fmt: skip
    assert code == 2 and "cut.npz: not a readable take" in lines[-1]
    folder = bad_folder(tmp_path, "nan")
    meta = json.loads((folder / "intrinsics.json").read_text())
    (folder / "intrinsics.json").write_text(json.dumps({**meta, "fx": float("nan")}))
    code, lines = run(["track", str(folder), "--out", str(tmp_path / "t.npz")], capsys)
    assert code == 2 and "intrinsics.json: bad intrinsics" in lines[-1] and "nan" in lines[-1]
    assert "no head" not in lines[-1]
    code, lines = run(["simulate", "--out", str(tmp_path / "sim"), "--frames", "0"], capsys)
    assert code == 2 and "--frames 0" in lines[-1] and not (tmp_path / "sim").exists()


def test_cli_in_a_subprocess_prints_no_traceback(tmp_path):
    """The installed entry point, as users run it: the same one line, status 2."""
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"\x00not a zip")
    proc = subprocess.run(
        [sys.executable, "-m", "dphm", "export", str(bad), "--to", "pc2", "--out",
         str(tmp_path / "x.pc2")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(f"dphm export: error: {bad}: not a readable take")
