"""Head model: checkpoints, the symmetric local ensemble, and training that really learns."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dphm.core.data.ict import default_path
from dphm.core.errors import DPHMError
from dphm.core.geometry.meshing import boundary_edge_count, mesh_components, mesh_sdf
from dphm.core.model import checkpoint
from dphm.core.model.head import HeadModel, ModelConfig, load_head

needs_ict = pytest.mark.skipif(
    default_path() is None, reason="ICT-FaceKit (../shared/data/ict_facekit_light) is absent"
)


def small_config():
    anchors = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.0, 0.5, 0.4], [0.0, -0.2, 0.7]]
    return ModelConfig(mirror=[1, 0, -1, -1], mean_anchors=anchors, anchor_vertices=[1, 2, 3, 4])


def test_checkpoint_round_trip_and_damage(tmp_path):
    model = HeadModel(small_config())
    path = tmp_path / "m.pt"
    books = {"id": torch.randn(3, 64), "exp": torch.randn(5, 64)}
    sha = checkpoint.save(
        path,
        "head_model",
        {"config": model.cfg.to_dict(), "state_dict": model.state_dict(), "codebooks": books},
    )
    loaded, content = load_head(path)
    assert content["sha256"] == sha and checkpoint.peek(path)["kind"] == "head_model"
    x = torch.rand(100, 3) * 2 - 1
    z = books["id"][0]
    half = HeadModel(small_config())
    half.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    torch.testing.assert_close(loaded.sdf_fn(z)(x), half.sdf_fn(z)(x))
    with pytest.raises(DPHMError, match="expected 'prior'"):
        checkpoint.load(path, kind="prior")
    raw = bytearray(path.read_bytes())
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DPHMError, match=r"cut\.pt: not a readable checkpoint"):
        load_head(tmp_path / "cut.pt")
    box = torch.load(path, weights_only=True)
    payload = bytearray(box["payload"])
    payload[len(payload) // 2] ^= 0xFF
    box["payload"] = bytes(payload)
    torch.save(box, tmp_path / "flip.pt")
    with pytest.raises(DPHMError, match="checksum mismatch"):
        load_head(tmp_path / "flip.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DPHMError, match="not a DPHM checkpoint"):
        load_head(tmp_path / "other.pt")
    with pytest.raises(DPHMError, match="not found"):
        load_head(tmp_path / "missing.pt")


def test_mirrored_anchor_pairs_share_one_mlp():
    anchors = [[0.3, 0.1, 0.5], [-0.3, 0.1, 0.5], [0.2, 0.5, 0.4], [-0.2, 0.5, 0.4]]
    cfg = ModelConfig(mirror=[1, 0, 3, 2], mean_anchors=anchors, anchor_vertices=[1, 2, 3, 4])
    model = HeadModel(cfg).identity
    assert model.n_mlp == 2 and model.mlp_of[0] == model.mlp_of[1]
    assert model.flip[1, 0] == -1 and model.flip[0, 0] == 1
    with torch.no_grad():
        for p in (model.w1x, model.w2, model.w3):
            p.normal_(0, 0.5)
        model.g_out.weight.zero_()  # leave only the local MLPs
        model.to_local.bias.zero_()  # the same local code on both sides
    cond = model.condition(torch.zeros(1, 64))  # local codes = the zero bias
    x = torch.rand(200, 3) * 2 - 1
    mirrored = x * torch.tensor([-1.0, 1.0, 1.0])
    with torch.no_grad():
        torch.testing.assert_close(model(x, cond), model(mirrored, cond))
        model.to_local.bias.normal_()  # different local codes break the symmetry
        cond = model.condition(torch.zeros(1, 64))
        assert not torch.allclose(model(x, cond), model(mirrored, cond))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    if default_path() is None:
        pytest.skip("ICT-FaceKit (../shared/data/ict_facekit_light) is absent")
    out = tmp_path_factory.mktemp("tiny") / "head.pt"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    subprocess.run(
        [sys.executable, "-m", "dphm", "train", "model", "--preset", "tiny", "--out", str(out)],
        check=True,
        env=env,
    )
    return out


def surface_error_mm(path):
    """Mean |SDF| in mm at held training surface points of every identity and posed head."""
    model, content = load_head(path)
    data = torch.load(
        path.parent
        / "training"
        / next(p.name for p in (path.parent / "training").glob("head_data_tiny_*.pt")),
        weights_only=False,
    )
    books = content["codebooks"]
    errs = []
    for i, z in enumerate(books["id"]):
        errs.append(model.sdf_fn(z)(data["identity"]["surf_pts"][i]).abs().mean())
    posed = []
    for j, (i, e) in enumerate(books["pairs"]):
        x = data["expression"]["posed_pts"][j][data["expression"]["on_surface"][j]]
        posed.append(model.sdf_fn(books["id"][i], books["exp"][e])(x).abs().mean())
    return 200 * float(np.mean(errs)), 200 * float(np.mean(posed))  # canonical unit = 0.2 m


@needs_ict
def test_tiny_training_learns_heads(tiny):
    neutral_mm, posed_mm = surface_error_mm(tiny)
    assert neutral_mm < 0.8, neutral_mm  # an untrained model is off by centimetres
    assert posed_mm < 1.2, posed_mm
    model, content = load_head(tiny)
    v, f = mesh_sdf(model.sdf_fn(content["codebooks"]["id"][0]), resolution=128)
    assert boundary_edge_count(f) == 0
    labels = mesh_components(f, len(v))
    sizes = np.bincount(labels[f[:, 0]])
    assert sizes.max() > 0.5 * len(f)  # the head dominates (a 250-step model leaves debris)
    head = v[np.unique(f[labels[f[:, 0]] == sizes.argmax()])]
    extent = (head.max(0) - head.min(0)) * 0.2
    assert 0.2 < extent[0] < 0.3 and 0.25 < extent[1] < 0.4  # head-sized, in metres


@needs_ict
def test_torchrun_two_processes_train_as_well(tiny, tmp_path):
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "dphm",
            "train",
            "model",
            "--preset",
            "tiny",
            "--out",
            str(out),
        ],
        check=True,
        env=env,
    )
    assert checkpoint.load(out)["training"]["processes"] == 2
    single, ddp = surface_error_mm(tiny), surface_error_mm(out)
    assert ddp[0] < 0.8 and ddp[1] < 1.2
    assert ddp[0] < 1.5 * single[0] and ddp[1] < 1.5 * single[1]
