"""SMPL body model in JAX: blend shapes, joints, skinning, H36M joints.

The model files are licensed and never shipped: `load_model(path)` reads a
user-given file in the published layout, either a pickle (read with
`encoding='latin1'`) or an `.npz` with the same keys:

  v_template    [V, 3]       rest vertices (metres, SMPL frame: y up, the
                             body faces +z, its left is +x)
  shapedirs     [V, 3, B]    shape blend shapes (B = 10 for the basic models)
  posedirs      [V, 3, P]    pose blend shapes, P = 9 (J - 1) = 207
  J_regressor   [J, V]       joint regressor (scipy sparse or dense), J = 24
  weights       [V, J]       skinning weights
  kintree_table [2, J]       row 0: parent of each joint (root: any value
                             outside 0..J-1, 4294967295 in the official files)
  f             [F, 3]       triangle vertex indices

Only chumpy-free files are read: the official pickles store some arrays as
chumpy objects, which need the (unmaintained) chumpy package; convert them
once to plain numpy (see `ChumpyFileError`). `load_h36m_regressor` reads
`J_regressor_h36m.npy` `[17, V]`.

Forward pass (`forward`), per sample:
  v_shaped = v_template + shapedirs . betas
  J        = J_regressor @ v_shaped                     (rest joints)
  v_posed  = v_shaped + posedirs . vec(R_1..R_{J-1} - I)
  G_j      = G_parent(j) [R_j | J_j - J_parent(j)]      (global transforms)
  v        = sum_j w_vj (G_j [v_posed - J_j])            (linear blend skinning)
  joints   = translations of G_j
with R_j the axis-angle pose of joint j (`pose[..., 3j:3j+3]`, radians).

`to_h36m18` turns vertices into the H36M-18 joints of the X-as-Supervision
prior: regress the 17 H36M joints, swap the two arm blocks (rows 11-13 and
14-16) as the reference pipeline does for this regressor, append the thorax
(mean of the two shoulders), centre on the pelvis, metres -> mm.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Dict, Mapping, Optional, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from xsup.geometry import rotations

Array = jax.Array

NUM_JOINTS = 24
SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot",
    "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand")
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16,
                17, 18, 19, 20, 21)
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor",
                 "weights", "kintree_table", "f")

# Rows of the H36M regressor output exchanged before appending the thorax.
_H36M_ARM_SWAP = (14, 15, 16, 11, 12, 13)

# SMPL frame (y up, facing +z) -> xsup world frame (z up): (x, y, z) ->
# (x, -z, y). Apply to row-vector points with `rotations.rotate`.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
                        np.float32)


class SmplFileError(ValueError):
  """A model or regressor file is missing, unreadable or malformed."""


class ChumpyFileError(SmplFileError):
  """The pickle stores chumpy objects; it must be converted to numpy."""


@flax.struct.dataclass
class SmplModel:
  """SMPL arrays (float32) and the static kinematic tree.

  Attributes:
    v_template: `[V, 3]` rest vertices, metres.
    shapedirs: `[V, 3, B]` shape blend shapes.
    posedirs: `[V, 3, 9 (J - 1)]` pose blend shapes.
    j_regressor: `[J, V]` dense joint regressor.
    weights: `[V, J]` skinning weights.
    faces: `[F, 3]` int32 triangles.
    parents: parent of each joint, -1 for the root (static).
  """
  v_template: Array
  shapedirs: Array
  posedirs: Array
  j_regressor: Array
  weights: Array
  faces: Array
  parents: Tuple[int, ...] = flax.struct.field(pytree_node=False)

  @property
  def num_vertices(self) -> int:
    return self.v_template.shape[0]

  @property
  def num_joints(self) -> int:
    return len(self.parents)

  @property
  def num_betas(self) -> int:
    return self.shapedirs.shape[-1]


class _ChumpyFreeUnpickler(pickle.Unpickler):
  """Unpickler that refuses chumpy classes with a conversion hint."""

  def __init__(self, file, source: str):
    super().__init__(file, encoding="latin1")
    self._source = source

  def find_class(self, module: str, name: str):
    if module.split(".")[0] == "chumpy":
      raise ChumpyFileError(
          f"SMPL model {self._source}: the pickle stores chumpy objects "
          f"({module}.{name}); xsup reads chumpy-free files only. Convert it "
          "once where chumpy is installed, e.g. `d = pickle.load(open(path, "
          "'rb'), encoding='latin1'); np.savez(out, **{k: (v.toarray() if "
          "hasattr(v, 'toarray') else np.asarray(v)) for k, v in d.items() "
          f"if k in {REQUIRED_KEYS}}})`, and load the .npz (or a pickle "
          "of plain numpy arrays with the same keys).")
    return super().find_class(module, name)


def read_model_file(path: str) -> Dict[str, Any]:
  """Raw arrays of a model file (`.pkl`/`.pickle` or `.npz`), unvalidated."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise SmplFileError(f"SMPL model file {path} does not exist")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npz":
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
    except ValueError as e:
      raise SmplFileError(f"SMPL model {path}: cannot read the .npz with "
                          f"plain arrays only ({e})") from e
  if ext in (".pkl", ".pickle"):
    with open(path, "rb") as f:
      try:
        data = _ChumpyFreeUnpickler(f, path).load()
      except ChumpyFileError:
        raise
      except (pickle.UnpicklingError, EOFError, ModuleNotFoundError,
              AttributeError) as e:
        raise SmplFileError(f"SMPL model {path}: cannot unpickle ({e})") from e
    if not isinstance(data, dict):
      raise SmplFileError(f"SMPL model {path}: expected a dict of arrays, got "
                          f"{type(data).__name__}")
    return data
  raise SmplFileError(f"SMPL model {path}: unknown extension {ext!r}; "
                      "expected .pkl, .pickle or .npz")


def _dense(value: Any) -> np.ndarray:
  if hasattr(value, "toarray"):  # scipy sparse
    value = value.toarray()
  return np.asarray(value)


def model_from_arrays(arrays: Mapping[str, Any], source: str = "<arrays>"
                      ) -> SmplModel:
  """Validates the published keys (see the module doc) and builds the model.

  Args:
    arrays: key -> array (numpy, or scipy sparse for `J_regressor`).
    source: name used in error messages (the file path).
  Raises:
    SmplFileError: naming `source` and the offending key.
  """
  missing = [k for k in REQUIRED_KEYS if k not in arrays]
  if missing:
    raise SmplFileError(f"SMPL model {source}: missing key(s) {missing}; "
                        f"found {sorted(arrays)}")
  out = {}
  for key in REQUIRED_KEYS:
    try:
      out[key] = _dense(arrays[key])
    except Exception as e:  # pylint: disable=broad-except
      raise SmplFileError(f"SMPL model {source}: key {key!r} is not an array "
                          f"({type(arrays[key]).__name__}: {e})") from e
    if out[key].dtype == object:
      raise SmplFileError(f"SMPL model {source}: key {key!r} holds Python "
                          "objects, expected a numeric array")

  def check(key, what, cond):
    shape = out[key].shape
    if not cond(shape):
      raise SmplFileError(f"SMPL model {source}: key {key!r} has shape "
                          f"{shape}, expected {what}")

  check("v_template", "[V, 3]", lambda s: len(s) == 2 and s[1] == 3)
  nv = out["v_template"].shape[0]
  check("kintree_table", "[2, J]", lambda s: len(s) == 2 and s[0] == 2)
  table = out["kintree_table"]
  nj = table.shape[1]
  check("shapedirs", f"[{nv}, 3, B]",
        lambda s: len(s) == 3 and s[:2] == (nv, 3))
  check("posedirs", f"[{nv}, 3, {9 * (nj - 1)}]",
        lambda s: s == (nv, 3, 9 * (nj - 1)))
  check("J_regressor", f"[{nj}, {nv}]", lambda s: s == (nj, nv))
  check("weights", f"[{nv}, {nj}]", lambda s: s == (nv, nj))
  check("f", "[F, 3]", lambda s: len(s) == 2 and s[1] == 3)
  raw = table[0].astype(np.int64)
  parents = tuple(int(p) if 0 <= p < nj else -1 for p in raw)
  if parents[0] != -1 or any(not 0 <= p < j for j, p in
                             enumerate(parents) if j):
    raise SmplFileError(f"SMPL model {source}: key 'kintree_table' row 0 "
                        f"{raw.tolist()} is not a tree rooted at joint 0 "
                        "with parents before children")
  faces = out["f"].astype(np.int64)
  if faces.size and (faces.min() < 0 or faces.max() >= nv):
    raise SmplFileError(f"SMPL model {source}: key 'f' indexes vertices "
                        f"outside 0..{nv - 1}")
  return SmplModel(
      v_template=jnp.asarray(out["v_template"], jnp.float32),
      shapedirs=jnp.asarray(out["shapedirs"], jnp.float32),
      posedirs=jnp.asarray(out["posedirs"], jnp.float32),
      j_regressor=jnp.asarray(out["J_regressor"], jnp.float32),
      weights=jnp.asarray(out["weights"], jnp.float32),
      faces=jnp.asarray(faces, jnp.int32),
      parents=parents)


def load_model(path: str) -> SmplModel:
  """Reads an SMPL model file (`.pkl` without chumpy, or `.npz`)."""
  return model_from_arrays(read_model_file(path), source=os.fspath(path))


def load_h36m_regressor(path: str, num_vertices: Optional[int] = None
                        ) -> np.ndarray:
  """Reads `J_regressor_h36m.npy` -> `[17, V]` float32.

  Args:
    path: `.npy` file (dense array, or a pickled scipy sparse matrix).
    num_vertices: the model's V, checked when given.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise SmplFileError(f"H36M regressor file {path} does not exist")
  try:
    reg = np.load(path, allow_pickle=False)
  except ValueError:
    # Some distributions pickle a scipy sparse matrix into the .npy.
    reg = np.load(path, allow_pickle=True, encoding="latin1")
    if reg.dtype == object and reg.shape == ():
      reg = reg.item()
  reg = _dense(reg)
  if reg.ndim != 2 or reg.shape[0] != 17 or (
      num_vertices is not None and reg.shape[1] != num_vertices):
    expected = f"[17, {num_vertices if num_vertices else 'V'}]"
    raise SmplFileError(f"H36M regressor {path}: array has shape {reg.shape}, "
                        f"expected {expected}")
  return reg.astype(np.float32)


@jax.jit
def forward(model: SmplModel, pose: Array, betas: Optional[Array] = None,
            trans: Optional[Array] = None) -> Tuple[Array, Array]:
  """Posed vertices and joints (jitted; compiles once per input shape).

  Args:
    model: the SMPL arrays.
    pose: `[..., 3 J]` (or `[..., J, 3]`) axis-angle per joint, radians;
      joint 0 is the global orientation.
    betas: `[..., B']` shape coefficients, B' <= model.num_betas (zeros when
      None); batch axes broadcast against `pose`'s.
    trans: `[..., 3]` translation added to everything (model units).
  Returns:
    `(vertices [..., V, 3], joints [..., J, 3])` in model units (metres),
    in the SMPL frame.
  """
  nj = model.num_joints
  pose = jnp.asarray(pose, jnp.float32)
  if pose.shape[-1] == 3 and pose.ndim >= 2 and pose.shape[-2] == nj:
    pose = pose.reshape(pose.shape[:-2] + (3 * nj,))
  if pose.shape[-1] != 3 * nj:
    raise ValueError(f"smpl.forward: pose must be [..., {3 * nj}] or "
                     f"[..., {nj}, 3], got {pose.shape}")
  batch = pose.shape[:-1]
  if betas is None:
    betas = jnp.zeros(batch + (model.num_betas,), jnp.float32)
  betas = jnp.asarray(betas, jnp.float32)
  nb = betas.shape[-1]
  if nb > model.num_betas:
    raise ValueError(f"smpl.forward: {nb} betas given, the model has "
                     f"{model.num_betas}")
  batch = jnp.broadcast_shapes(batch, betas.shape[:-1])
  rot = rotations.axis_angle_to_matrix(pose.reshape(pose.shape[:-1] + (nj, 3)))
  rot = jnp.broadcast_to(rot, batch + (nj, 3, 3))

  v_shaped = model.v_template + jnp.einsum(
      "vcb,...b->...vc", model.shapedirs[..., :nb], betas)
  v_shaped = jnp.broadcast_to(v_shaped, batch + v_shaped.shape[-2:])
  joints = jnp.einsum("jv,...vc->...jc", model.j_regressor, v_shaped)
  pose_feature = (rot[..., 1:, :, :] - jnp.eye(3)).reshape(
      batch + (9 * (nj - 1),))
  v_posed = v_shaped + jnp.einsum("vcp,...p->...vc", model.posedirs,
                                  pose_feature)

  # Global transforms [R | t], one batched product per tree level.
  parents = np.array([max(p, 0) for p in model.parents])
  not_root = (np.arange(nj) > 0).astype(np.float32)[:, None]
  offsets = joints - joints[..., parents, :] * not_root
  local = jnp.concatenate([rot, offsets[..., None]], axis=-1)  # [..., J, 3, 4]
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], jnp.float32),
                            local.shape[:-2] + (1, 4))
  glob = jnp.concatenate([local, bottom], axis=-2)             # [..., J, 4, 4]
  glob = jnp.moveaxis(glob, -3, 0)  # joint-major: leading-axis gathers
  for level in _tree_levels(model.parents)[1:]:
    idx = np.array(level)
    glob = glob.at[idx].set(glob[parents[idx]] @ glob[idx])
  glob = jnp.moveaxis(glob, 0, -3)
  glob_rot = glob[..., :3, :3]                  # [..., J, 3, 3]
  posed_joints = glob[..., :3, 3]               # [..., J, 3]
  # Skinning transform of joint j: x -> G_rot (x - J_j) + G_pos.
  skin_trans = posed_joints - jnp.einsum("...jab,...jb->...ja", glob_rot,
                                         joints)
  vert_rot = jnp.einsum("vj,...jab->...vab", model.weights, glob_rot)
  vert_trans = jnp.einsum("vj,...ja->...va", model.weights, skin_trans)
  verts = jnp.einsum("...vab,...vb->...va", vert_rot, v_posed) + vert_trans
  if trans is not None:
    trans = jnp.asarray(trans, jnp.float32)[..., None, :]
    verts = verts + trans
    posed_joints = posed_joints + trans
  return verts, posed_joints


def _tree_levels(parents: Tuple[int, ...]) -> Tuple[Tuple[int, ...], ...]:
  """Joints grouped by depth in the tree (root level first)."""
  depth = []
  for p in parents:
    depth.append(0 if p < 0 else depth[p] + 1)
  return tuple(tuple(j for j, d in enumerate(depth) if d == level)
               for level in range(max(depth) + 1))


@jax.jit
def regress_h36m17(vertices: Array, h36m_regressor: Array) -> Array:
  """`[..., V, 3]` vertices -> `[..., 17, 3]` joints, regressor row order."""
  return jnp.einsum("jv,...vc->...jc", jnp.asarray(h36m_regressor),
                    vertices)


@jax.jit
def to_h36m18(vertices: Array, h36m_regressor: Array) -> Array:
  """SMPL vertices (metres) -> root-centred H36M-18 joints in mm.

  Regresses the 17 H36M joints, swaps the arm blocks (rows 11-13 <->
  14-16), appends the thorax (mean of joints 11 and 14), subtracts the
  pelvis (joint 0) and converts metres to millimetres.

  Args:
    vertices: `[..., V, 3]` metres (any frame; the result keeps it).
    h36m_regressor: `[17, V]`.
  Returns:
    `[..., 18, 3]` mm, joint 0 at the origin.
  """
  joints = regress_h36m17(vertices, h36m_regressor)
  order = np.arange(17)
  order[11:17] = _H36M_ARM_SWAP
  joints = joints[..., order, :]
  thorax = 0.5 * (joints[..., 11, :] + joints[..., 14, :])
  joints = jnp.concatenate([joints, thorax[..., None, :]], axis=-2)
  return (joints - joints[..., :1, :]) * 1000.0


def h36m18_from_params(model: SmplModel, h36m_regressor: Array, pose: Array,
                       betas: Optional[Array] = None,
                       z_up: bool = True) -> Array:
  """SMPL parameters -> root-centred H36M-18 joints `[..., 18, 3]` in mm.

  With `z_up`, the result is turned from the SMPL frame (y up) into the
  xsup world convention (z up) by `Y_UP_TO_Z_UP`.
  """
  verts, _ = forward(model, pose, betas)
  joints = to_h36m18(verts, h36m_regressor)
  if z_up:
    joints = rotations.rotate(joints, jnp.asarray(Y_UP_TO_Z_UP))
  return joints


# A rough SMPL rest skeleton (T-pose, metres, y up, left = +x) for the
# random test models.
_REST_JOINTS = np.array([
    (0.0, 0.0, 0.0), (0.06, -0.09, 0.0), (-0.06, -0.09, 0.0),
    (0.0, 0.11, -0.02), (0.1, -0.47, 0.0), (-0.1, -0.47, 0.0),
    (0.0, 0.24, 0.0), (0.09, -0.87, -0.04), (-0.09, -0.87, -0.04),
    (0.0, 0.29, 0.02), (0.11, -0.93, 0.08), (-0.11, -0.93, 0.08),
    (0.0, 0.51, 0.0), (0.08, 0.42, 0.0), (-0.08, 0.42, 0.0),
    (0.0, 0.6, 0.05), (0.19, 0.45, 0.0), (-0.19, 0.45, 0.0),
    (0.45, 0.43, -0.02), (-0.45, 0.43, -0.02), (0.71, 0.44, 0.0),
    (-0.71, 0.44, 0.0), (0.79, 0.43, -0.01), (-0.79, 0.43, -0.01)])
# SMPL joints whose vertices the random H36M regressor averages, per row, in
# the file order that `to_h36m18` expects (arms listed right arm first).
_RANDOM_H36M_SOURCES = (
    (0,), (2,), (5,), (8,), (1,), (4,), (7,), (3, 6), (12,), (15,), (15,),
    (17,), (19,), (21,), (16,), (18,), (20,))


def random_model_arrays(num_vertices: int = 240, seed: int = 0,
                        num_betas: int = 10, one_hot_weights: bool = False
                        ) -> Dict[str, Any]:
  """A small random model in the published layout (for tests).

  Vertices are scattered around a rough SMPL rest skeleton, vertex v
  belonging to joint `v % 24`; `J_regressor` averages each joint's vertices
  (scipy sparse, as in the official files), so the regressed rest joints lie
  at those centres; skinning weights mix each vertex's joint with its parent
  (or are one-hot with `one_hot_weights`).

  Returns:
    dict with the keys of `REQUIRED_KEYS` plus `bs_type`, `bs_style`.
  """
  import scipy.sparse  # pylint: disable=g-import-not-at-top
  if num_vertices < NUM_JOINTS:
    raise ValueError(f"random_model_arrays: need >= {NUM_JOINTS} vertices, "
                     f"got {num_vertices}")
  rng = np.random.default_rng(seed)
  owner = np.arange(num_vertices) % NUM_JOINTS
  v_template = _REST_JOINTS[owner] + rng.normal(0.0, 0.03, (num_vertices, 3))
  reg = np.zeros((NUM_JOINTS, num_vertices))
  reg[owner, np.arange(num_vertices)] = 1.0
  reg /= reg.sum(axis=1, keepdims=True)
  weights = np.zeros((num_vertices, NUM_JOINTS))
  if one_hot_weights:
    weights[np.arange(num_vertices), owner] = 1.0
  else:
    mix = rng.uniform(0.0, 0.4, num_vertices)
    parent = np.array([max(SMPL_PARENTS[j], 0) for j in owner])
    weights[np.arange(num_vertices), owner] = 1.0 - mix
    weights[np.arange(num_vertices), parent] += mix
  table = np.array([[4294967295] + list(SMPL_PARENTS[1:]),
                    list(range(NUM_JOINTS))], np.int64)
  faces = rng.integers(0, num_vertices, (2 * num_vertices, 3)).astype(
      np.uint32)
  return {
      "v_template": v_template,
      "shapedirs": rng.normal(0.0, 0.01, (num_vertices, 3, num_betas)),
      "posedirs": rng.normal(0.0, 0.005,
                             (num_vertices, 3, 9 * (NUM_JOINTS - 1))),
      "J_regressor": scipy.sparse.csc_matrix(reg),
      "weights": weights,
      "kintree_table": table,
      "f": faces,
      "bs_type": "lrotmin",
      "bs_style": "lbs",
  }


def random_h36m_regressor(num_vertices: int = 240) -> np.ndarray:
  """`[17, V]` regressor for `random_model_arrays` models (file row order)."""
  owner = np.arange(num_vertices) % NUM_JOINTS
  reg = np.zeros((17, num_vertices), np.float32)
  for row, sources in enumerate(_RANDOM_H36M_SOURCES):
    mask = np.isin(owner, sources)
    reg[row, mask] = 1.0 / mask.sum()
  return reg


def write_random_model(path: str, num_vertices: int = 240, seed: int = 0,
                       num_betas: int = 10, one_hot_weights: bool = False,
                       h36m_regressor_path: Optional[str] = None) -> None:
  """Writes a random model file like the official ones (for tests).

  Args:
    path: `.pkl` (pickle of numpy arrays and a scipy sparse `J_regressor`)
      or `.npz` (dense arrays).
    num_vertices, seed, num_betas, one_hot_weights: see
      `random_model_arrays`.
    h36m_regressor_path: if given, also writes a matching
      `J_regressor_h36m.npy` there.
  """
  arrays = random_model_arrays(num_vertices, seed, num_betas, one_hot_weights)
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npz":
    dense = {k: _dense(v) for k, v in arrays.items()}
    np.savez(path, **dense)
  elif ext in (".pkl", ".pickle"):
    with open(path, "wb") as f:
      pickle.dump(arrays, f, protocol=2)
  else:
    raise ValueError(f"write_random_model: unknown extension {ext!r} of "
                     f"{path}; use .pkl or .npz")
  if h36m_regressor_path is not None:
    np.save(h36m_regressor_path, random_h36m_regressor(num_vertices))
