"""Lifting method: networks, losses, the sharded step, resume, export, CLI."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import model_fixtures
from xsup import config_defaults
from xsup import export
from xsup import skeleton
from xsup.geometry import rotations
from xsup.losses import lifting as losses
from xsup.models import teacher as teacher_lib
from xsup.train import lifting as lifting_train
from xsup.train import loop

KEY = jax.random.PRNGKey(0)


tiny_config = model_fixtures.tiny_lifting_config


def make_mesh(num_devices: int):
  c = ml_collections.ConfigDict({"num_devices": num_devices})
  return loop.make_mesh(c)


# Losses -----------------------------------------------------------------

def test_projection_and_lift_are_inverse():
  x = jax.random.normal(KEY, (3, 17, 3)) * 0.3
  np.testing.assert_allclose(losses.lift(losses.project(x), x[..., 2:]), x,
                             atol=1e-5)


def test_mpjpe_loss_value_and_finite_gradient_at_zero():
  a = jnp.zeros((1, 2, 3))
  b = jnp.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])
  assert float(losses.mpjpe_loss(a, b)) == pytest.approx(2.5, rel=1e-5)
  grad = jax.grad(losses.mpjpe_loss)(b, b)
  assert np.all(np.isfinite(grad))


def hand_made_pose() -> np.ndarray:
  """`[17, 3]` H36M-17 pose in a body frame (x forward, y left, z up) whose
  nose, knees and elbows each sit 1 unit off their reference point."""
  p = np.zeros((17, 3), np.float32)
  for side, y in (("right", -1.0), ("left", 1.0)):
    idx = lambda n: skeleton.H36M17.index(f"{side}_{n}")  # pylint: disable=cell-var-from-loop
    p[idx("hip")] = (0, y, 0)
    p[idx("knee")] = (1, y, -4)       # knee bent forwards
    p[idx("ankle")] = (0, y, -8)
    p[idx("shoulder")] = (0, 2 * y, 5)
    p[idx("elbow")] = (-1, 2 * y, 3)  # elbow bent backwards
    p[idx("wrist")] = (0, 2 * y, 1)
  p[7] = (0, 0, 2.5)
  p[8] = (0, 0, 5)
  p[9] = (1, 0, 6)                    # nose 1 in front of the thorax
  p[10] = (0, 0, 7)
  return p


def test_chirality_score_analytic_value_and_symmetries():
  pose = hand_made_pose()
  assert float(losses.chirality_score(jnp.asarray(pose))) == pytest.approx(
      5.0, rel=1e-5)
  rot = rotations.random_rotation(KEY, (6,))
  moved = jnp.einsum("jk,bkl->bjl", jnp.asarray(pose), rot) + 3.0
  np.testing.assert_allclose(losses.chirality_score(moved), 5.0, rtol=1e-4)
  # Any reflection (here: depth negated, after the rotations) negates it.
  mirrored = moved * jnp.array([1.0, 1.0, -1.0])
  np.testing.assert_allclose(losses.chirality_score(mirrored), -5.0,
                             rtol=1e-4)


def test_orient_depth_by_chirality_restores_the_anatomical_sign():
  # The hand-made pose turned to face the camera obliquely, in lifting
  # units (camera frame: x right, y down, z away from the camera).
  body_to_camera = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], np.float32)
  pose = hand_made_pose() @ body_to_camera * 0.05
  rot = rotations.random_rotation_about_axis(KEY, (8,), axis="y")
  shapes = jnp.einsum("jk,bkl->bjl", jnp.asarray(pose), rot)
  shapes = shapes - shapes[:, :1]
  keypoints = losses.project(shapes)
  depth = shapes[..., 2:]
  assert np.all(np.asarray(losses.chirality_score(shapes)) > 0)
  np.testing.assert_allclose(
      losses.orient_depth_by_chirality(keypoints, depth), depth, atol=1e-6)
  # Mirrored depth (root at 0) comes back; a mixed batch is made consistent.
  mixed = depth * jnp.where(jnp.arange(8) % 2 == 0, 1.0, -1.0)[:, None, None]
  np.testing.assert_allclose(
      losses.orient_depth_by_chirality(keypoints, mixed), depth, atol=1e-6)


def test_equivariance_cycle_targets_are_rotations_about_vertical():
  shape = jax.random.normal(KEY, (2, 17, 3)) * 0.3
  rotated_2d, rotated_3d = losses.equivariance_cycle(KEY, shape, 4)
  assert rotated_3d.shape == (8, 17, 3)
  np.testing.assert_allclose(rotated_2d, losses.project(rotated_3d),
                             atol=1e-6)
  # Rotation about y keeps the vertical coordinate and the bone lengths.
  tiled = jnp.tile(shape, (4, 1, 1))
  np.testing.assert_allclose(rotated_3d[..., 1], tiled[..., 1], atol=1e-5)
  np.testing.assert_allclose(jnp.linalg.norm(rotated_3d, axis=-1),
                             jnp.linalg.norm(tiled, axis=-1), atol=1e-5)


def test_invariance_cycle_root_alignment_and_rigidity():
  canonical = jax.random.normal(KEY, (2, 17, 3)) * 0.3 + 1.0
  rotated_2d, target = losses.invariance_cycle(KEY, canonical, 4,
                                               align_root=True)
  np.testing.assert_allclose(target[:, 0], 0.0, atol=1e-6)
  assert rotated_2d.shape == (8, 17, 2)
  np.testing.assert_allclose(rotated_2d[:, 0], 0.0, atol=1e-6)


# Teacher ----------------------------------------------------------------

def test_teacher_outputs_a_rotation_of_the_canonical_shape():
  model = teacher_lib.Teacher(width=32, num_layers=1)
  x = jax.random.normal(KEY, (4, 17, 2)) * 0.1
  variables = model.init(KEY, x, train=False)
  out = model.apply(variables, x, train=False)
  rot = out["rotation"]
  np.testing.assert_allclose(rot @ jnp.swapaxes(rot, -1, -2),
                             jnp.broadcast_to(jnp.eye(3), rot.shape),
                             atol=1e-5)
  np.testing.assert_allclose(out["camera"], out["canonical"] @ rot, atol=1e-5)
  # The input is root-centred inside: a global 2D shift changes nothing.
  shifted = model.apply(variables, x + 0.3, train=False)
  np.testing.assert_allclose(shifted["camera"], out["camera"], atol=1e-5)
  with pytest.raises(ValueError, match=r"\[B, 17, 2\]"):
    model.apply(variables, jnp.zeros((2, 16, 2)), train=False)


def test_teacher_bn_scale_init_is_uniform_and_heads_are_small():
  model = teacher_lib.Teacher(width=64, num_layers=1)
  variables = model.init(KEY, jnp.zeros((2, 17, 2)), train=False)
  scales = [v for k, v in jax.tree_util.tree_leaves_with_path(
      variables["params"]) if "BatchNorm" in jax.tree_util.keystr(k)
            and "scale" in jax.tree_util.keystr(k)]
  assert scales and all(0.0 <= float(s.min()) and float(s.max()) <= 1.0
                        for s in scales)
  alpha = variables["params"]["trunk"]["alpha"]["kernel"]
  assert float(jnp.std(alpha)) < 0.02


# Steps: sharding, resume, NaN guard ---------------------------------------

def _run_steps(task, num_steps):
  state = jax.jit(task.init_state)(jax.random.PRNGKey(1))
  step = jax.jit(lambda s, b, k, e: task.train_step(s, b, k, **e))
  from xsup.data import pipeline  # pylint: disable=g-import-not-at-top
  batches = task.train_batches(0)
  for i in range(num_steps):
    batch = pipeline.shard_batch(next(batches), task.mesh)
    state, metrics = step(state, batch, jax.random.fold_in(KEY, i),
                          task.step_extras())
  return state, metrics


def test_teacher_step_on_8_devices_equals_1_device(lifting_arrays):
  assert jax.device_count() == 8
  train, _ = lifting_arrays
  results = []
  for n in (1, 8):
    task = lifting_train.LiftingTask(tiny_config("teacher"), make_mesh(n),
                                     train_data=train)
    state, metrics = _run_steps(task, 2)
    assert np.isfinite(float(metrics["loss"]))
    results.append(jax.device_get(state))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5),
               results[0].params, results[1].params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4,
                                                       atol=2e-5),
               results[0].batch_stats, results[1].batch_stats)


def test_batch_not_divisible_by_devices_is_rejected():
  with pytest.raises(ValueError, match="divisible by the 8 devices"):
    loop.check_batch_size(12, make_mesh(8))


class _CrashBefore:
  """The task's input iterator, killed when it would deliver step `step`
  (it keeps the iterator's checkpointed state)."""

  def __init__(self, inner, step):
    self.inner, self.step = inner, step

  def __iter__(self):
    return self

  def __next__(self):
    if self.inner.next_step >= self.step:
      raise KeyboardInterrupt("simulated crash")
    return next(self.inner)

  def __getattr__(self, name):
    return getattr(self.inner, name)


def _train(config, workdir, train, test, crash_after=None):
  task = lifting_train.LiftingTask(config, train_data=train,
                                   eval_data={"test": test})
  if crash_after is not None:
    original = task.train_batches
    task.train_batches = lambda start: _CrashBefore(original(start),
                                                    crash_after)
  return loop.train_and_evaluate(task, config, workdir)


def test_resume_after_crash_matches_uninterrupted_run(tmp_path,
                                                      lifting_arrays):
  train, test = lifting_arrays
  config = tiny_config("teacher", steps=4)
  full = _train(config, str(tmp_path / "full"), train, test)
  with pytest.raises(KeyboardInterrupt):
    _train(config, str(tmp_path / "crash"), train, test, crash_after=3)
  # A checkpoint at step 2 survived the crash at step 3, with the input
  # pipeline's state.
  assert sorted(os.listdir(tmp_path / "crash" / "checkpoints")) == ["2"]
  assert os.listdir(tmp_path / "crash" / "checkpoints" / "2" / "data")
  resumed = _train(config, str(tmp_path / "crash"), train, test)
  assert int(resumed.step) == 4
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               jax.device_get(full.params), jax.device_get(resumed.params))
  records = [json.loads(l) for l in open(tmp_path / "full" /
                                         "metrics.jsonl")]
  assert any("train/loss" in r for r in records)
  assert any("eval/test/p_mpjpe" in r for r in records)
  evaluation = json.load(open(tmp_path / "full" / "eval" /
                              "test_metrics.json"))
  for key in ("mpjpe", "n_mpjpe", "p_mpjpe", "mpjpe_flip", "n_mpjpe_flip",
              "p_mpjpe_flip", "per_action", "num_samples"):
    assert key in evaluation
  assert evaluation["num_samples"] == len(test["pose_3d"])


def test_resume_on_another_number_of_processes(tmp_path, lifting_arrays):
  """A checkpoint whose input state was written by 2 processes resumes in
  this single process at the same step."""
  train, test = lifting_arrays
  config = tiny_config("teacher", steps=4)
  full = _train(config, str(tmp_path / "full"), train, test)
  workdir = tmp_path / "crash"
  with pytest.raises(KeyboardInterrupt):
    _train(config, str(workdir), train, test, crash_after=3)
  data = workdir / "checkpoints" / "2" / "data"
  state = (data / "process_0-of-1.json").read_bytes()
  (data / "process_0-of-1.json").unlink()
  for name in ("process_0-of-2.json", "process_1-of-2.json"):
    (data / name).write_bytes(state)
  resumed = _train(config, str(workdir), train, test)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               jax.device_get(full.params), jax.device_get(resumed.params))


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 32, r"global_batch_size: checkpoint 16, this run 32"),
    ("dataset.train_split", "other", r"dataset: checkpoint .*'train'"),
])
def test_resume_with_other_data_settings_is_refused(tmp_path, lifting_arrays,
                                                    field, value, message):
  train, test = lifting_arrays
  config = tiny_config("teacher", steps=4)
  workdir = str(tmp_path / "run")
  with pytest.raises(KeyboardInterrupt):
    _train(config, workdir, train, test, crash_after=3)
  changed = tiny_config("teacher", steps=4)
  if "." in field:
    section, name = field.split(".")
    changed[section][name] = value
  else:
    changed[field] = value
  data_dir = os.path.join(workdir, "checkpoints", "2", "data")
  with pytest.raises(ValueError, match=f"{data_dir}.*{message}"):
    _train(changed, workdir, train, test)


def test_non_finite_loss_stops_before_saving(tmp_path, lifting_arrays):
  train, test = lifting_arrays
  bad = dict(train)
  bad["keypoints_2d"] = train["keypoints_2d"].copy()
  bad["keypoints_2d"][:, 3] = np.nan
  config = tiny_config("teacher", steps=4)
  with pytest.raises(FloatingPointError, match="Non-finite"):
    _train(config, str(tmp_path / "nan"), bad, test)
  assert not os.listdir(tmp_path / "nan" / "checkpoints")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, lifting_arrays):
  """Workdir of a tiny teacher trained for 2 steps (shared, read-only)."""
  workdir = str(tmp_path_factory.mktemp("teacher"))
  _train(tiny_config("teacher", steps=2), workdir, *lifting_arrays)
  return workdir


def test_student_trains_against_frozen_teacher_and_exports(
    tmp_path, lifting_arrays, teacher_dir):
  train, test = lifting_arrays
  config = tiny_config("student", steps=2)
  config.teacher_checkpoint = teacher_dir
  task = lifting_train.LiftingTask(config, train_data=train,
                                   eval_data={"test": test})
  teacher_before = jax.device_get(task.teacher[1])
  state = loop.train_and_evaluate(task, config, str(tmp_path / "student"))
  # The teacher is frozen: its variables are unchanged by student training.
  jax.tree.map(np.testing.assert_array_equal, teacher_before,
               jax.device_get(task.teacher[1]))
  # Export round trip: the rebuilt model predicts what the trained one does.
  name, kwargs, variables = task.export_spec(state)
  directory = export.save(str(tmp_path / "export"), name, kwargs, variables)
  model, loaded = export.load_model(directory)
  x = jnp.asarray(test["keypoints_2d"][:8])
  np.testing.assert_allclose(
      model.apply(loaded, x, train=False),
      task.model.apply(jax.device_get(variables), x, train=False), atol=1e-6)


@pytest.mark.parametrize("orient,mirror", [(False, False), (True, False),
                                           (True, True)])
def test_student_distils_the_refined_teacher_depth(lifting_arrays,
                                                   teacher_dir, orient,
                                                   mirror):
  train, _ = lifting_arrays
  config = tiny_config("student")
  config.teacher_checkpoint = teacher_dir
  config.loss.orient_teacher_depth = orient
  config.loss.mirror_average_teacher = mirror
  task = lifting_train.LiftingTask(config, train_data=train)
  teacher_model, teacher_vars = task.teacher
  teacher_vars = jax.device_get(teacher_vars)
  state = jax.device_get(task.init_state(KEY))
  x = jnp.asarray(train["keypoints_2d"][:16])
  _, step_metrics = task.train_step(state, {"keypoints_2d": x}, KEY,
                                    teacher_variables=teacher_vars)

  def depth(inputs):
    return teacher_model.apply(teacher_vars, inputs, train=False)["camera"][
        ..., 2:3]

  raw = depth(x)
  # The barely trained teacher mixes both orientations, so orienting its
  # depth changes the target.
  scores = np.asarray(losses.chirality_score(losses.lift(x, raw)))
  assert np.any(scores < 0) and np.any(scores > 0)
  target = losses.orient_depth_by_chirality(x, raw) if orient else raw
  if mirror:
    # Mirror by hand: negate x and swap left/right joints, then swap back.
    swap = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    mirrored_depth = depth(x[:, swap] * jnp.array([-1.0, 1.0]))[:, swap]
    target = 0.5 * (target + (losses.orient_depth_by_chirality(
        x, mirrored_depth) if orient else mirrored_depth))
  student_depth, _ = task.model.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, x,
      train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(step_metrics["distillation"],
                             losses.distillation_loss(student_depth, target),
                             rtol=1e-5)


def test_student_with_mismatched_teacher_checkpoint_fails_clearly(
    lifting_arrays, teacher_dir):
  train, _ = lifting_arrays
  config = tiny_config("student")
  config.teacher_checkpoint = teacher_dir
  config.teacher_model.width = 64
  task = lifting_train.LiftingTask(config, train_data=train)
  with pytest.raises(ValueError, match="does not match"):
    _ = task.teacher


def test_export_rejects_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="model.json"):
    export.load_model(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="No exported parameters"):
    export.load_variables(str(tmp_path / "params.npz"))


def _learning_rates(opt_config, steps_per_epoch, total, at):
  """Learning rates the optimiser applies at the given steps (unit grads)."""
  opt = lifting_train.make_optimizer(opt_config, steps_per_epoch, total)
  params = {"w": jnp.zeros(())}
  state = opt.init(params)
  rates = {}
  for step in range(max(at) + 1):
    updates, state = opt.update({"w": jnp.ones(())}, state, params)
    if step in at:
      rates[step] = float(updates["w"])
  return rates


def test_learning_rate_schedules():
  c = config_defaults.lifting("teacher").optimizer
  c.momentum = 0.0
  c.weight_decay = 0.0
  c.learning_rate = 0.1
  c.decay_every_epochs = 2
  # Paper schedule: halved every 2 epochs of 5 steps.
  rates = _learning_rates(c, 5, 40, at=(0, 9, 10, 20))
  np.testing.assert_allclose([rates[s] for s in (0, 9, 10, 20)],
                             [-0.1, -0.1, -0.05, -0.025], rtol=1e-6)
  c.schedule = "cosine"
  rates = _learning_rates(c, 5, 40, at=(0, 20, 39))
  np.testing.assert_allclose(rates[0], -0.1, rtol=1e-6)
  np.testing.assert_allclose(rates[20], -0.05, rtol=1e-6)  # cos(pi/2) half
  assert abs(rates[39]) < 0.1 * (1 - np.cos(np.pi / 40)) / 2 + 1e-9
  with pytest.raises(ValueError, match="total number of steps"):
    lifting_train.make_optimizer(c, 5, 0)
  c.schedule = "linear"
  with pytest.raises(ValueError, match="Unknown optimizer.schedule"):
    lifting_train.make_optimizer(c, 5, 40)
