"""Tests of the JAX SMPL forward pass, the file loaders and H36M joints."""

import os
import pickle
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.transform

from xsup.models import smpl

NV = 72  # 3 vertices per joint


def _rot(axis_angle):
  return scipy.spatial.transform.Rotation.from_rotvec(axis_angle).as_matrix()


def _descendants(parents, joint):
  out = {joint}
  for j, p in enumerate(parents):
    if p in out:
      out.add(j)
  return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("smpl")
  paths = {"pkl": str(d / "model.pkl"), "npz": str(d / "model.npz"),
           "reg": str(d / "J_regressor_h36m.npy")}
  smpl.write_random_model(paths["pkl"], num_vertices=NV, seed=1,
                          h36m_regressor_path=paths["reg"])
  smpl.write_random_model(paths["npz"], num_vertices=NV, seed=1)
  return paths


@pytest.fixture(scope="module")
def model(files):
  return smpl.load_model(files["pkl"])


@pytest.fixture(scope="module")
def one_hot_model():
  arrays = smpl.random_model_arrays(NV, seed=2, one_hot_weights=True)
  arrays["posedirs"] = np.zeros_like(arrays["posedirs"])
  return smpl.model_from_arrays(arrays)


def test_file_formats_agree(files, model):
  assert model.num_vertices == NV and model.num_joints == 24
  assert model.num_betas == 10 and model.parents == smpl.SMPL_PARENTS
  # The pickle holds a scipy sparse regressor, like the official files.
  with open(files["pkl"], "rb") as f:
    raw = pickle.load(f, encoding="latin1")
  assert hasattr(raw["J_regressor"], "toarray")
  assert raw["kintree_table"][0, 0] == 4294967295
  other = smpl.load_model(files["npz"])
  for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(other)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rest_pose_reproduces_template(model):
  verts, joints = smpl.forward(model, jnp.zeros(72))
  np.testing.assert_allclose(verts, model.v_template, atol=1e-6)
  np.testing.assert_allclose(joints, model.j_regressor @ model.v_template,
                             atol=1e-6)


def test_single_joint_rotation_moves_only_its_vertices(one_hot_model):
  m = one_hot_model
  joint = 18  # left elbow: moves the elbow, wrist and hand vertices
  aa = np.array([0.3, -0.5, 0.8])
  pose = np.zeros((24, 3))
  pose[joint] = aa
  verts, joints = smpl.forward(m, pose.reshape(72))
  rest = np.asarray(m.v_template, np.float64)
  rest_joints = np.asarray(m.j_regressor, np.float64) @ rest
  owner = np.argmax(np.asarray(m.weights), axis=1)
  moved = np.isin(owner, sorted(_descendants(m.parents, joint)))
  assert 0 < moved.sum() < NV
  pivot = rest_joints[joint]
  expected = rest.copy()
  expected[moved] = (rest[moved] - pivot) @ _rot(aa).T + pivot
  np.testing.assert_allclose(verts, expected, atol=1e-5)
  np.testing.assert_allclose(verts[~moved], rest[~moved], atol=1e-6)
  # The posed joints follow the same rotation.
  np.testing.assert_allclose(joints[20], _rot(aa) @ (rest_joints[20] - pivot)
                             + pivot, atol=1e-5)


def test_kinematic_chain_composes_rotations(one_hot_model):
  m = one_hot_model
  r_root, r_hip, r_knee = (np.array([0.1, 1.0, -0.2]),
                           np.array([-0.7, 0.1, 0.2]), np.array([1.2, 0, 0]))
  pose = np.zeros((24, 3))
  pose[0], pose[1], pose[4] = r_root, r_hip, r_knee
  trans = np.array([0.5, -1.0, 2.0])
  verts, _ = smpl.forward(m, pose, trans=trans)
  rest = np.asarray(m.v_template, np.float64)
  jr = np.asarray(m.j_regressor, np.float64) @ rest
  owner = np.argmax(np.asarray(m.weights), axis=1)
  sel = owner == 7  # left ankle: child of the left knee (4), hip (1), root
  r0, r1, r4 = _rot(r_root), _rot(r_hip), _rot(r_knee)
  rot = r0 @ r1 @ r4
  origin = r0 @ (r1 @ (jr[4] - jr[1]) + jr[1] - jr[0]) + jr[0]
  expected = (rest[sel] - jr[4]) @ rot.T + origin + trans
  np.testing.assert_allclose(verts[sel], expected, atol=1e-5)


def test_pose_blend_shapes_add_linearly():
  arrays = smpl.random_model_arrays(NV, seed=3, one_hot_weights=True)
  m = smpl.model_from_arrays(arrays)
  aa = np.array([0.0, 0.0, 0.9])
  pose = np.zeros((24, 3))
  pose[18] = aa
  verts, _ = smpl.forward(m, pose)
  feature = np.zeros((23, 3, 3))
  feature[17] = _rot(aa) - np.eye(3)   # joint 18 is slot 17 (root excluded)
  offset = np.einsum("vcp,p->vc", arrays["posedirs"], feature.reshape(-1))
  owner = np.argmax(arrays["weights"], axis=1)
  still = ~np.isin(owner, [18, 20, 22])
  np.testing.assert_allclose(verts[still],
                             arrays["v_template"][still] + offset[still],
                             atol=1e-5)


def test_shape_blend_shapes_are_linear(model):
  rng = np.random.default_rng(0)
  b1, b2 = rng.normal(size=10), rng.normal(size=10)
  zero = jnp.zeros(72)
  base, _ = smpl.forward(model, zero)
  v1, j1 = smpl.forward(model, zero, b1)
  v2, _ = smpl.forward(model, zero, b2)
  v12, _ = smpl.forward(model, zero, b1 + b2)
  np.testing.assert_allclose(v12 - base, (v1 - base) + (v2 - base),
                             atol=1e-5)
  expected = model.v_template + np.einsum("vcb,b->vc", model.shapedirs, b1)
  np.testing.assert_allclose(v1, expected, atol=1e-5)
  np.testing.assert_allclose(j1, model.j_regressor @ expected, atol=1e-5)
  # Fewer betas than the model has: the missing ones are zero.
  v_short, _ = smpl.forward(model, zero, b1[:4])
  b_pad = np.concatenate([b1[:4], np.zeros(6)])
  np.testing.assert_allclose(v_short, smpl.forward(model, zero, b_pad)[0],
                             atol=1e-6)
  with pytest.raises(ValueError, match="11 betas"):
    smpl.forward(model, zero, np.zeros(11))


def test_batching_jit_and_gradients(model):
  rng = np.random.default_rng(1)
  pose = rng.normal(0, 0.3, (2, 3, 72)).astype(np.float32)
  betas = rng.normal(size=(10,)).astype(np.float32)
  verts, joints = smpl.forward(model, pose, betas)
  assert verts.shape == (2, 3, NV, 3) and joints.shape == (2, 3, 24, 3)
  single, _ = smpl.forward(model, pose[1, 2], betas)
  np.testing.assert_allclose(verts[1, 2], single, atol=1e-5)
  # Gradient of a vertex function matches central differences.
  loss = lambda p: jnp.sum(smpl.forward(model, p, betas)[0] ** 2)
  grad = jax.jit(jax.grad(loss))(jnp.asarray(pose[0, 0], jnp.float32))
  direction = rng.normal(size=72).astype(np.float32)
  eps = 1e-2
  numeric = (loss(pose[0, 0] + eps * direction) -
             loss(pose[0, 0] - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(np.dot(grad, direction), numeric, rtol=2e-2)


def test_h36m18_conversion(files, model):
  reg = smpl.load_h36m_regressor(files["reg"], model.num_vertices)
  assert reg.shape == (17, NV)
  pose = np.random.default_rng(4).normal(0, 0.2, (5, 72))
  verts, _ = smpl.forward(model, pose)
  h18 = np.asarray(smpl.to_h36m18(verts, reg))
  assert h18.shape == (5, 18, 3)
  np.testing.assert_allclose(h18[:, 0], 0.0, atol=1e-6)
  raw = np.asarray(smpl.regress_h36m17(verts, reg)) * 1000.0
  raw = raw - raw[:, :1]
  # Arms swapped, legs and trunk kept, thorax = mid-shoulders.
  np.testing.assert_allclose(h18[:, 11:14], raw[:, 14:17], atol=1e-3)
  np.testing.assert_allclose(h18[:, 14:17], raw[:, 11:14], atol=1e-3)
  np.testing.assert_allclose(h18[:, :11], raw[:, :11], atol=1e-3)
  np.testing.assert_allclose(h18[:, 17], 0.5 * (h18[:, 11] + h18[:, 14]),
                             atol=1e-3)
  # Millimetres: a thigh of the random body is ~0.4 m.
  thigh = np.linalg.norm(h18[:, 2] - h18[:, 1], axis=-1)
  assert np.all((300 < thigh) & (thigh < 500))
  # Rest pose, z up: head above pelvis, the left shoulder on the body's left
  # (+x, as SMPL's left), facing -y.
  rest = np.asarray(smpl.h36m18_from_params(model, reg, np.zeros((5, 72))))
  assert rest[0, 10, 2] > 400 and rest[0, 3, 2] < -700
  assert rest[0, 11, 0] > 100 and rest[0, 14, 0] < -100
  assert rest[0, 4, 0] > 0 and rest[0, 1, 0] < 0


def _write_pickle(path, obj):
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=2)


def test_loader_errors_name_file_and_key(tmp_path):
  arrays = smpl.random_model_arrays(NV, seed=0)
  missing = dict(arrays)
  del missing["posedirs"]
  path = str(tmp_path / "missing.pkl")
  _write_pickle(path, missing)
  with pytest.raises(smpl.SmplFileError, match=r"missing\.pkl.*'posedirs'"):
    smpl.load_model(path)
  bad = dict(arrays)
  bad["weights"] = arrays["weights"][:, :20]
  path = str(tmp_path / "bad_shape.npz")
  np.savez(path, **{k: np.asarray(v.toarray() if hasattr(v, "toarray")
                                  else v) for k, v in bad.items()})
  with pytest.raises(smpl.SmplFileError,
                     match=r"bad_shape\.npz.*'weights'.*\[72, 24\]"):
    smpl.load_model(path)
  bad = dict(arrays)
  bad["kintree_table"] = np.array([[4294967295] + [5] * 23, range(24)])
  path = str(tmp_path / "tree.pkl")
  _write_pickle(path, bad)
  with pytest.raises(smpl.SmplFileError, match=r"tree\.pkl.*'kintree_table'"):
    smpl.load_model(path)
  with pytest.raises(smpl.SmplFileError, match=r"nowhere\.pkl.*not exist"):
    smpl.load_model(str(tmp_path / "nowhere.pkl"))
  with pytest.raises(smpl.SmplFileError, match=r"model\.obj.*extension"):
    (tmp_path / "model.obj").write_text("v 0 0 0")
    smpl.load_model(str(tmp_path / "model.obj"))
  reg_path = str(tmp_path / "J_regressor_h36m.npy")
  np.save(reg_path, np.zeros((16, NV)))
  with pytest.raises(smpl.SmplFileError,
                     match=r"J_regressor_h36m\.npy.*\(16, 72\)"):
    smpl.load_h36m_regressor(reg_path, NV)


def test_chumpy_pickle_asks_for_conversion(tmp_path):
  # {'v_template': chumpy.ch.Ch()} in pickle protocol 2, written by hand so
  # that chumpy is not needed to make the file.
  key = b"v_template"
  data = (b"\x80\x02}q\x00X" + struct.pack("<I", len(key)) + key +
          b"q\x01cchumpy.ch\nCh\nq\x02)\x81q\x03s.")
  path = str(tmp_path / "basicModel_neutral.pkl")
  with open(path, "wb") as f:
    f.write(data)
  with pytest.raises(smpl.ChumpyFileError,
                     match=r"basicModel_neutral\.pkl.*chumpy.*[Cc]onvert"):
    smpl.load_model(path)
  assert os.path.exists(path)
