"""Expression transfer: between model heads, onto a character mesh, onto ARKit shape keys.

Ground truth comes from ICT-FaceKit: expressions are shared blendshapes, so identity B
wearing the weights an expression code was trained on is what a transfer onto B should
give. The codes are codebook entries of the shipped model (expressions worn by training
identities); B is a held-out identity.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from dphm.core.cli import main
from dphm.core.data.arkit import ARKIT_NAMES
from dphm.core.errors import DPHMError
from dphm.core.paths import WEIGHTS_DIR, shared_data_dir
from dphm.core.tracking import export
from dphm.core.transfer import landmarks as lm
from dphm.core.transfer.arkit_names import key_tracks, match_arkit_keys
from scipy import sparse
from scipy.spatial import cKDTree

DATA = shared_data_dir()
needs_ict = pytest.mark.skipif(
    DATA is None or not (DATA / "ict_facekit_light").is_dir(),
    reason="ICT-FaceKit (../shared/data/ict_facekit_light) is absent",
)
HEAD = Path(os.environ.get("DPHM_TEST_HEAD", WEIGHTS_DIR / "head_model.pt"))
needs_head = pytest.mark.skipif(
    not HEAD.is_file(), reason=f"no head checkpoint at {HEAD} (set DPHM_TEST_HEAD)"
)
# ICT metres -> a character in Blender's convention (Z up, -Y forward), in centimetres
TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
OFFSET = np.array([10.0, -5.0, 150.0])


def to_character(p):
    return 100.0 * p @ TO_BLENDER.T + OFFSET


def from_character(p):
    return ((p - OFFSET) / 100.0) @ TO_BLENDER


def test_arkit_key_names_with_variants_and_missing_keys():
    keys = [
        "Basis", "EyeBlink_L", "eyeBlinkLeft", "eyeBlink.R", "JAWOPEN", "blendShape1.mouthSmileL",
        "mouthSmile_Right", "ARKit_browInnerUp", "mouthRollLower", "cheekPuff_left", "smirk",
    ]  # fmt: skip
    mapping, missing = match_arkit_keys(keys)
    assert mapping == {
        "eyeBlinkLeft": "eyeBlinkLeft",  # the exact name wins over the variant before it
        "eyeBlinkRight": "eyeBlink.R",
        "jawOpen": "JAWOPEN",
        "mouthSmileLeft": "blendShape1.mouthSmileL",
        "mouthSmileRight": "mouthSmile_Right",
        "mouthRollLower": "mouthRollLower",
        "browInnerUp": "ARKit_browInnerUp",
    }
    assert len(missing) == 52 - 7 and "cheekPuff" in missing and "tongueOut" in missing
    assert missing == [n for n in ARKIT_NAMES if n not in mapping]  # Apple's order
    weights = np.random.default_rng(0).uniform(0, 1, (5, 52)).astype(np.float32)
    tracks = key_tracks(weights, mapping)
    assert set(tracks) == set(mapping.values())
    np.testing.assert_array_equal(tracks["JAWOPEN"], weights[:, ARKIT_NAMES.index("jawOpen")])
    np.testing.assert_array_equal(tracks["eyeBlink.R"], weights[:, 7])


def test_live_link_csv_round_trip(tmp_path):
    n = 45
    rng = np.random.default_rng(1)
    take = {
        "timestamps": 12.0 + np.arange(n) / 30.0,
        "arkit": rng.uniform(0, 1, (n, 52)),
        "R": np.tile(np.diag([1.0, -1.0, -1.0]), (n, 1, 1)),
    }
    path = tmp_path / "take.csv"
    export.write_arkit_csv(path, take)
    stamps, weights = export.read_arkit_csv(path)
    assert weights.shape == (n, 52) and stamps.shape == (n,)
    np.testing.assert_allclose(weights, take["arkit"], atol=1e-6)
    np.testing.assert_allclose(stamps, np.arange(n) / 30.0, atol=1e-4)
    # columns found by name in any order and case
    lines = path.read_text().splitlines()
    cells = [ln.split(",") for ln in lines]
    order = [0, 1, *range(len(cells[0]) - 1, 1, -1)]
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(",".join(c[i] for i in order) for c in cells).lower())
    np.testing.assert_array_equal(export.read_arkit_csv(shuffled)[1], weights)
    broken = tmp_path / "broken.csv"
    broken.write_text(lines[0].replace("JawOpen", "Jaw") + "\n" + lines[1] + "\n")
    with pytest.raises(DPHMError, match="broken.csv.*jawOpen"):
        export.read_arkit_csv(broken)


@pytest.fixture(scope="module")
def ict():
    from dphm.core.data.ict import load_ict

    return load_ict()


@pytest.fixture(scope="module")
def identity_b(ict):
    from dphm.core.data import corpus

    return corpus.identity_weights("heldout", 2, len(ict.identity_deltas))[1]


@needs_ict
def test_landmarks_recover_the_similarity_of_a_moved_head(ict, identity_b):
    from dphm.core.data import corpus

    head = corpus.to_canonical(ict.head(identity_b))
    tris = ict.skin_triangles
    canonical = lm.detect_landmarks(head, tris, up="Y", forward="Z")
    assert canonical["nose_tip"][2] > 0.45 and canonical["head_top"][1] > 0.8
    assert canonical["side_left"][0] > 0.3 > -0.3 > canonical["side_right"][0]
    character = to_character(corpus.from_canonical(head))
    found = lm.detect_landmarks(character, tris)  # Blender axes by default
    m = lm.landmark_alignment(found, canonical)
    np.testing.assert_allclose(lm.apply(m, character), head, atol=1e-4)
    # manual landmarks on the character's own vertices, and ICP from a rough start
    ids = {"nose_tip": 4841, "chin": 968, "eye_outer_left": 6548, "eye_outer_right": 6590,
           "mouth_left": 6684, "mouth_right": 6648}  # fmt: skip
    manual = lm.landmark_alignment({k: character[v] for k, v in ids.items()}, lm.MANUAL_LANDMARKS)
    off = np.linalg.norm(lm.apply(manual, character) - head, axis=1)  # B is not ICT's mean
    assert off[ict.face_vertex_mask].mean() < 0.04 and off.max() < 0.2
    rough = np.eye(4)
    rough[:3] = [[1.04, -0.05, 0.0, 0.02], [0.05, 1.04, 0.0, -0.03], [0.0, 0.0, 1.05, 0.01]]
    src, dst = (lm.surface_points(head, tris, seed=k)[0] for k in (0, 1))
    refined, dist = lm.icp(src, dst, rough)
    assert dist < 0.01 and np.abs(refined - np.eye(4)).max() < 1e-2
    with pytest.raises(DPHMError, match="unknown landmark"):
        lm.landmark_alignment({"nose": (0, 0, 0), "chin": (0, 1, 0)}, lm.MANUAL_LANDMARKS)
    with pytest.raises(DPHMError, match="at least 3"):
        lm.landmark_alignment({"chin": (0, 0, 0)}, lm.MANUAL_LANDMARKS)
    with pytest.raises(DPHMError, match="different axes"):
        lm.upright_axes("Z", "-Z")


@pytest.fixture(scope="module")
def head():
    import torch
    from dphm.core.model.head import load_head

    torch.set_num_threads(1)
    return load_head(HEAD)


@pytest.fixture(scope="module")
def expressions(head):
    """Four strong codebook expressions: (codes (4, D), ICT weights (4, 57))."""
    books = head[1]["codebooks"]
    weights = books["exp_weights"].numpy()
    pick = np.argsort(-weights.sum(1))[:4]
    return books["exp"].numpy()[pick], weights[pick]


def fake_take(z_id, codes):
    n = len(codes)
    return {
        "z_id": z_id,
        "z_exp": codes,
        "R": np.tile(np.diag([1.0, -1.0, -1.0]), (n, 1, 1)),
        "t": np.tile([0.0, 0.0, 0.6], (n, 1)),
        "s": np.full(n, 0.2),
        "timestamps": np.arange(n) / 30.0,
        "arkit": np.zeros((n, 52)),
        "intrinsics": {},
        "source": "test",
    }


@needs_ict
@needs_head
def test_transfer_between_ict_identities(head, ict, identity_b, expressions):
    from dphm.core.data import corpus
    from dphm.core.data.surface import sample_surface, topology
    from dphm.core.geometry.metrics import compare_meshes
    from dphm.core.model.fit import fit_codes
    from dphm.core.transfer.heads import transfer_take
    from dphm.core.transfer.retarget import pose_points

    model, content = head
    codes, weights = expressions
    neutral = ict.head(identity_b)
    s = sample_surface(topology(ict), neutral, 20_000, np.random.default_rng(0))
    z_b, _ = fit_codes(model, content, corpus.to_canonical(s.points), s.normals, 150, 2048)
    skin = ict.skin_vertex_mask
    face = ict.face_vertex_mask[skin]
    # B's own vertices posed by the codes: a vertex error against ICT B + the weights
    posed, residual = pose_points(model, z_b.numpy(), corpus.to_canonical(neutral[skin]), codes)
    assert residual.max() < 0.1  # mm
    bake = transfer_take(model, content, fake_take(content["codebooks"]["id"][0], codes), z_b,
                         resolution=128, arkit_shapes=False)  # fmt: skip
    assert bake["frames"].shape == (4, len(bake["rest"]), 3) and bake["arkit_shapes"].shape[0] == 0
    for i, w in enumerate(weights):
        truth = ict.head(identity_b, w)
        err = np.linalg.norm(corpus.from_canonical(posed[i]) - truth[skin], axis=1)[face] * 1e3
        still = np.linalg.norm(neutral[skin] - truth[skin], axis=1)[face] * 1e3
        surf = compare_meshes(corpus.from_canonical(bake["frames"][i]), bake["faces"], truth,
                              ict.skin_triangles, ict.face_vertex_mask, n=50_000)  # fmt: skip
        print(
            f"heads transfer {i}: face vertex error mean {err.mean():.2f} mm, median "
            f"{np.median(err):.2f}, p95 {np.percentile(err, 95):.2f} (neutral left as is: mean "
            f"{still.mean():.2f}, p95 {np.percentile(still, 95):.2f}); model head face "
            f"Chamfer {surf['cd_l1_mm_face']:.2f} mm"
        )
        assert err.mean() < 2.0 and err.mean() < 0.4 * still.mean()
        assert surf["cd_l1_mm_face"] < 2.0


def decimate(vertices, tris, cell):
    """Vertex clustering on a ``cell``-metre grid: (vertices, faces, A) with vertices = A @ the
    input's vertices, A a sparse averaging matrix; faces that collapse are dropped."""
    used = np.unique(tris)
    _, label = np.unique(np.floor(vertices[used] / cell).astype(np.int64), axis=0,
                         return_inverse=True)  # fmt: skip
    label = label.reshape(-1)
    a = sparse.csr_matrix((np.ones(len(used)), (label, used)), (label.max() + 1, len(vertices)))
    a = sparse.diags(1.0 / np.asarray(a.sum(1)).ravel()) @ a
    remap = np.full(len(vertices), -1)
    remap[used] = label
    f = remap[tris]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    _, first = np.unique(np.sort(f, 1), axis=0, return_index=True)
    return a @ vertices, f[np.sort(first)], a


def cube(centre, size):
    corners = np.array([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [(q[0], q[1], q[2]) for q in quads] + [(q[0], q[2], q[3]) for q in quads]
    return centre + (corners - 0.5) * size, np.array(tris)


@needs_ict
@needs_head
def test_retarget_onto_a_decimated_head_through_the_cli(
    head, ict, identity_b, expressions, tmp_path
):
    from dphm.core.data.obj import write_obj
    from dphm.core.geometry.sampling import sample_surface
    from dphm.core.tracking.bake import read_bake
    from dphm.core.tracking.take import write_take

    model, content = head
    codes, weights = expressions
    neutral = ict.head(identity_b)
    verts, faces, avg = decimate(neutral, ict.skin_triangles, 0.003)
    # an earring 6 cm out from the left ear: beyond the falloff, it must not move
    ear = verts[np.argmax(verts[:, 0])]
    ring_v, ring_f = cube(ear + [0.06, -0.03, 0.0], 0.01)
    character = to_character(np.vstack([verts, ring_v]))
    mesh = tmp_path / "character.obj"
    write_obj(mesh, character, np.vstack([faces, ring_f + len(verts)]))
    take = fake_take(content["codebooks"]["id"][0], codes)
    write_take(tmp_path / "take.npz", model_sha256=content["sha256"], quality="test",
               fit_error_mm=np.zeros(len(codes)), **take)  # fmt: skip
    out, take_path = tmp_path / "retarget.npz", str(tmp_path / "take.npz")
    assert main(["transfer", take_path, "--onto", str(mesh), "--out", str(out)]) == 0
    bake = read_bake(out)
    n = len(verts)
    assert bake["frames"].shape == (4, n + 8, 3) and bake["arkit_shapes"].shape == (52, n + 8, 3)
    np.testing.assert_allclose(bake["rest"], character, atol=1e-4)  # own vertices, same order
    assert bake["weights"][n:].max() == 0.0 and np.median(bake["weights"][:n]) == 1.0
    np.testing.assert_array_equal(bake["frames"][:, n:], np.repeat(bake["rest"][None, n:], 4, 0))
    # jawOpen at weight 1 lowers the chin (Blender Z is up), in centimetres
    chin = np.argmin(np.linalg.norm(from_character(character[:n]) - neutral[968], axis=1))
    drop = character[chin, 2] - bake["arkit_shapes"][ARKIT_NAMES.index("jawOpen"), chin, 2]
    assert drop > 0.5
    face = np.asarray((avg @ sparse.diags((~ict.face_vertex_mask).astype(float))).sum(1)).ravel()
    face = face == 0
    for i, w in enumerate(weights):
        truth = ict.head(identity_b, w)
        got = from_character(bake["frames"][i, :n])
        err = np.linalg.norm(got - avg @ truth, axis=1)[face] * 1e3
        still = np.linalg.norm(verts - avg @ truth, axis=1)[face] * 1e3
        dense = sample_surface(truth, ict.skin_triangles, 200_000, np.random.default_rng(i))[0]
        surf = cKDTree(dense).query(got[face])[0] * 1e3
        print(
            f"retarget {i} ({n} vertices, 3 mm clusters): face vertex error mean "
            f"{err.mean():.2f} mm, p95 {np.percentile(err, 95):.2f} (neutral: mean "
            f"{still.mean():.2f}, p95 {np.percentile(still, 95):.2f}); to the true surface "
            f"mean {surf.mean():.2f} mm"
        )
        assert err.mean() < 2.0 and err.mean() < 0.4 * still.mean()
    # a second format and a bad input
    pc2 = tmp_path / "id.pc2"
    args = ["transfer", take_path, "--out", str(pc2), "--no-arkit-shapes"]
    assert main([*args, "--onto", "identity:3", "--resolution", "64", "--pose"]) == 0
    frames = export.read_pc2(pc2)
    assert frames.shape[0] == 4 and np.abs(frames[..., 2].mean() - 0.6) < 0.05  # camera space
    assert main([*args, "--onto", str(tmp_path / "nowhere.obj")]) == 2
    assert main([*args, "--onto", "codebook:9999"]) == 2
    (tmp_path / "marks.json").write_text(json.dumps({"nose": [0, 0, 0]}))
    assert main([*args, "--onto", str(mesh), "--landmarks", str(tmp_path / "marks.json")]) == 2


def test_character_motion_turns_about_the_characters_own_up_axis():
    from dphm.core.transfer.retarget import character_motion
    from scipy.spatial.transform import Rotation

    # the take turns the head 0, 10, 20 degrees about camera y (the head's up axis)
    turns = Rotation.from_euler("y", [[0.0], [10.0], [20.0]], degrees=True).as_matrix()
    R = turns @ np.diag([1.0, -1.0, -1.0])
    t = np.array([[0.0, 0.0, 0.6], [0.01, 0.0, 0.62], [0.02, 0.0, 0.64]])
    align = np.eye(4)  # Blender character in centimetres -> canonical (ICT axes / 0.2 m)
    align[:3, :3] = TO_BLENDER.T / 20.0
    align[:3, 3] = -TO_BLENDER.T @ OFFSET / 20.0
    Rc, tc, sc = character_motion(align, R, t, np.full(3, 0.2))
    np.testing.assert_allclose(sc, 1.0, atol=1e-9)
    np.testing.assert_allclose(Rc[1], np.eye(3), atol=1e-9)  # the middle frame is the mean
    np.testing.assert_allclose(tc[1], 0.0, atol=1e-9)
    turn = Rotation.from_matrix(Rc[2] @ Rc[0].T).as_rotvec(degrees=True)
    np.testing.assert_allclose(np.abs(turn), [0.0, 0.0, 20.0], atol=1e-6)  # about Blender Z
