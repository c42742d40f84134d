"""The torch device: ``--device`` of the commands, the engine's DPHM_DEVICE, clear errors.

This machine has no GPU: the tests cover the plumbing (which device is chosen, that an
absent one is one clear line) and that the CPU path places the models on the CPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dphm.core import cli, device
from dphm.core.errors import DPHMError


@pytest.mark.parametrize("name", ["cpu", None, " CPU "])
def test_cpu_resolves_and_installs_no_default_device_mode(name, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_default_device", calls.append)
    assert device.use(name) == torch.device("cpu")
    assert calls == []  # the CPU path pays nothing per tensor op


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees a GPU")
def test_absent_devices_are_one_clear_error():
    with pytest.raises(DPHMError, match="device cuda: torch .* sees no CUDA GPU"):
        device.resolve("cuda")
    with pytest.raises(DPHMError, match="choose cpu, cuda"):
        device.resolve("tpu")
    with pytest.raises(DPHMError, match="choose cpu, cuda"):
        device.resolve("cuda:x")
    if not torch.backends.mps.is_available():
        with pytest.raises(DPHMError, match="no Apple GPU"):
            device.resolve("mps")


def test_gpu_choice_sets_the_default_device(monkeypatch):
    """With a (pretended) two-GPU torch: cuda:N is checked, torchrun's LOCAL_RANK picks one."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch, "set_default_device", chosen.append)
    assert device.use("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DPHMError, match="only 2 CUDA GPU"):
        device.use("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert device.use("cuda") == torch.device("cuda:1")
    monkeypatch.setenv("DPHM_DEVICE", "cuda:0")
    monkeypatch.delenv("LOCAL_RANK")
    assert device.use() == torch.device("cuda:0")
    assert chosen == [torch.device("cuda:1")] * 2 + [torch.device("cuda:0")]


def test_models_land_on_the_chosen_device():
    from dphm.core.model.head import load_head

    model, content = load_head()
    assert model.device == torch.device("cpu")
    cond = model.condition(content["codebooks"]["id"][:1], content["codebooks"]["exp"][:1])
    assert cond["id"]["anchors"].device == model.device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees a GPU")
@pytest.mark.parametrize(
    "argv",
    [
        ["track", "nothing.mkv", "--out", "t.npz"],
        ["sample", "--identities", "1", "--expressions", "1", "--out", "s"],
        ["transfer", "t.npz", "--onto", "identity:0", "--out", "x.npz"],
        ["train", "prior", "--preset", "tiny", "--out", "p.pt"],
        ["export", "t.npz", "--to", "pc2", "--out", "x.pc2"],
    ],
)
def test_every_model_command_takes_device_and_rejects_an_absent_one(argv, tmp_path, capsys):
    os.chdir(tmp_path)
    assert cli.main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dphm {argv[0]}: error: device cuda:")
    assert not any(tmp_path.iterdir())  # refused before anything was read or written


def _engine(env_device: str) -> list[dict]:
    """Start the engine with DPHM_DEVICE, ping it and run one job; its replies."""
    from dphm.core.engine.protocol import boot_command, decode, encode

    requests = encode({"op": "run", "id": 1, "cmd": "ping"}) + encode(
        {"op": "run", "id": 2, "cmd": "probe", "args": {"input": "/nowhere.mkv"}}
    ) + encode({"op": "quit"})
    proc = subprocess.run(
        boot_command(sys.executable, str(Path(__file__).resolve().parent.parent)),
        input=requests,
        capture_output=True,
        timeout=120,
        env=dict(os.environ, DPHM_DEVICE=env_device),
    )
    return [m for m in map(decode, proc.stdout.splitlines(keepends=True)) if m]


def test_engine_runs_on_the_preferences_device():
    replies = _engine("cpu")
    ping = next(m for m in replies if m.get("id") == 1 and m["event"] == "result")["value"]
    assert ping["device"] == "cpu" and ping["device_error"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees a GPU")
def test_engine_with_an_absent_device_answers_every_job_with_why():
    replies = _engine("cuda")
    ping = next(m for m in replies if m.get("id") == 1 and m["event"] == "result")["value"]
    assert "sees no CUDA GPU" in ping["device_error"]
    error = next(m for m in replies if m.get("id") == 2 and m["event"] != "started")
    assert error["event"] == "error", json.dumps(replies)
    assert "device cuda" in error["message"] and "Torch device" in error["message"]
