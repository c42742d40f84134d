"""ICT-FaceKit loading, the expression prior, the closed head surface and the splits."""

import shutil

import numpy as np
import pytest
from dphm.core.data import corpus
from dphm.core.data.arkit import ARKIT_NAMES, arkit_to_ict_matrix, ict_to_arkit_matrix
from dphm.core.data.expressions import sample_expressions
from dphm.core.data.ict import default_path, load_ict
from dphm.core.data.samples import expression_samples, identity_samples
from dphm.core.data.surface import (
    REGION_CAP,
    closed_vertices,
    sample_surface,
    signed_distance,
    topology,
)
from dphm.core.errors import DPHMError

pytestmark = pytest.mark.skipif(
    default_path() is None, reason="ICT-FaceKit (../shared/data/ict_facekit_light) is absent"
)


@pytest.fixture(scope="module")
def ict():
    return load_ict()


@pytest.fixture(scope="module")
def topo(ict):
    return topology(ict)


def test_npz_is_in_metres_with_all_bases(ict):
    assert ict.neutral.shape == (26719, 3)
    width = np.ptp(ict.neutral[:11248, 0])
    assert 0.2 < width < 0.3  # a head is about 25 cm wide
    assert ict.identity_deltas.shape == (100, 26719, 3)
    assert len(ict.expression_names) == 57 and "jawOpen" in ict.expression_names


def test_folder_loader_matches_the_pack(ict):
    folder = default_path().parent / "original"
    kit = load_ict(folder)
    assert kit.identity_names == ["identity000"] and kit.expression_names == ["jawOpen"]
    np.testing.assert_allclose(kit.neutral, ict.neutral, atol=1e-6)
    np.testing.assert_allclose(kit.identity_deltas[0], ict.identity_deltas[0], atol=1e-6)
    j = ict.expression_names.index("jawOpen")
    np.testing.assert_allclose(kit.expression_deltas[0], ict.expression_deltas[j], atol=1e-6)
    np.testing.assert_array_equal(kit.faces, ict.faces)


def test_folder_loader_lists_missing_and_inconsistent_files(tmp_path):
    src = default_path().parent / "original"
    with pytest.raises(DPHMError, match=r"identity001\.obj.*browDown_L\.obj"):
        load_ict(src, require_complete=True)
    for name in ("generic_neutral_mesh.obj", "vertex_indices.json", "jawOpen.obj"):
        shutil.copy(src / name, tmp_path / name)
    lines = (src / "identity000.obj").read_text().splitlines()
    kept = [ln for i, ln in enumerate(lines) if not (ln.startswith("v ") and i % 2)]
    (tmp_path / "identity000.obj").write_text("\n".join(kept))
    with pytest.raises(DPHMError, match=r"identity000\.obj: OBJ faces index vertices that do not"):
        load_ict(tmp_path)
    kept = [ln for ln in kept if not ln.startswith("f ")]  # a valid OBJ, but too few vertices
    (tmp_path / "identity000.obj").write_text("\n".join(kept))
    with pytest.raises(DPHMError, match=r"identity000\.obj has \d+ vertices"):
        load_ict(tmp_path)
    (tmp_path / "generic_neutral_mesh.obj").unlink()
    with pytest.raises(DPHMError, match="generic_neutral_mesh.obj is missing"):
        load_ict(tmp_path)
    with pytest.raises(DPHMError, match="no such"):
        load_ict(tmp_path / "nothing.npz")


def test_arkit_mapping_round_trips(ict):
    to_ict = arkit_to_ict_matrix(ict.expression_names)
    to_arkit = ict_to_arkit_matrix(ict.expression_names)
    w = np.random.default_rng(0).random(52).astype(np.float32)
    back = to_arkit @ (to_ict @ w)
    tongue = ARKIT_NAMES.index("tongueOut")
    np.testing.assert_allclose(np.delete(back, tongue), np.delete(w, tongue), atol=1e-6)
    assert back[tongue] == 0


def test_expression_prior_is_sparse_coactivated_and_seeded(ict):
    names = ict.expression_names
    w = sample_expressions(names, 2000, seed=3)
    np.testing.assert_array_equal(w, sample_expressions(names, 2000, seed=3))
    assert w.min() >= 0 and w.max() <= 1
    active = (w > 0.05).sum(1)
    assert active.mean() < 12  # sparse: a few of 57 shapes at a time
    smile = w[:, names.index("mouthSmile_L")] > 0.3
    assert (w[smile, names.index("cheekSquint_L")] > 0.05).mean() > 0.8  # smile brings cheeks
    jaw = w[:, names.index("jawOpen")]
    assert jaw.max() > 0.95 and (jaw == 0).mean() > 0.2  # full range, often closed
    left, right = w[:, names.index("eyeBlink_L")], w[:, names.index("eyeBlink_R")]
    both = (left > 0.05) | (right > 0.05)
    assert (left[both] == right[both]).mean() > 0.5  # mostly symmetric ...
    assert (np.abs(left - right)[both] > 0.2).mean() > 0.05  # ... but not always
    assert (np.maximum(left, right) > 0.99).mean() > 0.05  # full blinks happen


def test_splits_are_disjoint(ict):
    train = corpus.identity_weights("train", 200)
    held = corpus.identity_weights("heldout", corpus.N_HELDOUT_ID)
    d = np.linalg.norm(held[:, None] - train[None], axis=-1)
    assert d.min() > 5.0
    e_train = corpus.expression_weights("train", ict.expression_names, 1000)
    e_held = corpus.expression_weights("heldout", ict.expression_names, 50)
    assert np.abs(e_held[:, None] - e_train[None]).sum(-1).min() > 1e-3
    p = np.random.default_rng(0).random((10, 3)).astype(np.float32)
    np.testing.assert_allclose(corpus.from_canonical(corpus.to_canonical(p)), p, atol=1e-6)


def test_closed_surface_is_watertight_with_inward_cavities(ict, topo):
    assert sorted(topo.cap_kinds) == ["eye", "eye", "mouth", "neck"]
    v = closed_vertices(topo, ict.head())
    t = topo.triangles[topo.region != 3]  # skin and caps; eyeballs are closed on their own
    e = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert (counts == 2).all()
    for loop, kind, tip in zip(topo.cap_loops, topo.cap_kinds, v[ict.n_vertices :], strict=True):
        if kind != "neck":
            assert tip[2] < v[loop, 2].mean() - 0.01  # the cap dents into the head


def winding_number(query, v, t):
    """Generalised winding number (van Oosterom-Strackee solid angles), exact and slow."""
    out = np.zeros(len(query))
    for i, q in enumerate(query):
        a, b, c = (v[t[:, k]] - q for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        num = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc
        den += np.einsum("ij,ij->i", b, c) * la + np.einsum("ij,ij->i", c, a) * lb
        out[i] = np.arctan2(num, den).sum() / (2 * np.pi)
    return out


def test_signs_agree_with_winding_numbers(ict, topo):
    rng = np.random.default_rng(1)
    verts = ict.head(corpus.identity_weights("train", 1)[0])
    dense = sample_surface(topo, verts, 100_000, rng, region_weights=(1, 1, 1, 0))
    v = closed_vertices(topo, verts)
    t = topo.triangles[topo.region != 3]
    near = dense.points[:150] + rng.normal(0, 0.004, (150, 1)) * dense.normals[:150]
    space = rng.uniform(-1, 1, (150, 3)) * corpus.CANONICAL_SCALE + corpus.CANONICAL_CENTER
    q = np.concatenate([near, space]).astype(np.float32)
    sdf = signed_distance(q, dense)
    wn = winding_number(q.astype(np.float64), v.astype(np.float64), t)
    clear = np.abs(sdf) > 0.0015
    assert ((sdf[clear] < 0) == (wn[clear] > 0.5)).mean() > 0.99


def test_training_samples(ict, topo):
    rng = np.random.default_rng(0)
    id_w = corpus.identity_weights("train", 1)[0]
    anchors = np.array([0, 100, 2000])
    s = identity_samples(ict, topo, id_w, anchors, rng, 2000, 2000, 500, 30_000)
    assert s["surf_pts"].shape == (2000, 3) and np.abs(s["sdf_pts"]).max() <= 1.0 + 1e-5
    assert np.allclose(np.linalg.norm(s["surf_nrm"], axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(
        s["anchors"], corpus.to_canonical(ict.head(id_w)[anchors]), atol=1e-6
    )
    near = s["sdf"][:2000] * corpus.CANONICAL_SCALE
    assert np.median(np.abs(near)) < 0.01 and (near < 0).mean() > 0.3  # both sides
    exp_w = sample_expressions(ict.expression_names, 1, seed=5)[0]
    e = expression_samples(ict, topo, id_w, exp_w, rng, 1000, 1000)
    # correspondences: the posed point and its canonical partner share a triangle
    moved = np.linalg.norm(e["posed_pts"] - e["canon_pts"], axis=1) * corpus.CANONICAL_SCALE
    assert moved.max() < 0.05 and moved.max() > 0.001
    assert e["on_surface"].sum() == 1000


def test_surface_samples_drop_hidden_eyeball_parts(ict, topo):
    s = sample_surface(topo, ict.head(), 50_000, np.random.default_rng(0))
    assert (s.region == REGION_CAP).any()
    eye = s.points[s.region == 3]
    # what is kept of the eyeballs is their visible front
    assert len(eye) > 0 and np.median(eye[:, 2]) > 0.07
