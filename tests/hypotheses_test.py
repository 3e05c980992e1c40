"""Multi-hypothesis lifting: WTA losses, K = 1, choices, evaluation, predict."""

import json
import os

import jax
import jax.numpy as jnp
from jax import test_util as jax_test_util
import numpy as np
import optax
import pytest

from lifting_test import hand_made_pose
from lifting_test import tiny_config
from xsup import config_defaults
from xsup import export
from xsup import metrics
from xsup import predict
from xsup.data.synthetic import cameras
from xsup.data.synthetic import poses as poses_lib
from xsup.geometry import camera as camera_lib
from xsup.geometry import rotations
from xsup.losses import lifting as losses
from xsup.models import pose_prior
from xsup.models import student as student_lib
from xsup.train import hypothesis_choice
from xsup.train import lifting as lifting_train
from xsup.train import loop

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, lifting_arrays):
  """A tiny teacher trained for 2 steps (shared, read-only)."""
  workdir = str(tmp_path_factory.mktemp("teacher"))
  config = tiny_config("teacher", steps=2)
  config.num_devices = 1
  task = lifting_train.LiftingTask(config, train_data=lifting_arrays[0],
                                   eval_data={"test": lifting_arrays[1]})
  loop.train_and_evaluate(task, config, workdir)
  return workdir


def multi_config(teacher_dir, steps=2, prior="procedural"):
  config = tiny_config("student", steps=steps)
  config.num_devices = 1
  config.teacher_checkpoint = teacher_dir
  config.model.num_hypotheses = 2
  config.loss.wta_mirror_target = True
  config.hypotheses.prior_poses = prior
  config.hypotheses.prior_bank_size = 256
  config.hypotheses.prior.features = 8
  config.hypotheses.prior.head_dim = 8
  return config


def camera_poses(num, seed):
  """`[num, 17, 3]` procedural poses in a ring camera's frame (mm)."""
  rng = np.random.default_rng(seed)
  world = poses_lib.sample_poses(rng, num)
  rot, trans = cameras.ring_rig(np.array([0.0, 0.0, 900.0]))
  cam = np.asarray(camera_lib.world_to_camera(world, rot[1], trans[1]))
  return (cam - cam[:, :1]).astype(np.float32)


def depth_mirror(pose):
  return pose * np.array([1.0, 1.0, -1.0], np.float32)


# Winner-takes-all losses ----------------------------------------------------


def test_wta_distillation_sends_gradient_only_to_each_winner():
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.normal(size=(4, 17, 1)), jnp.float32)
  noise = rng.normal(size=(4, 3, 17, 1)) * np.array([0.1, 1.0, 2.0])[
      None, :, None, None]
  # Per sample, a different hypothesis is nearest the target.
  perm = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]])
  hyps = jnp.asarray(target[:, None] + np.take_along_axis(
      noise, perm[:, :, None, None], axis=1), jnp.float32)
  winner = np.argmin(np.abs(np.asarray(hyps - target[:, None])).mean(
      axis=(2, 3)), axis=1)
  np.testing.assert_array_equal(winner, np.argmin(perm, axis=1))
  grad = np.asarray(jax.grad(losses.wta_distillation_loss)(hyps, target))
  for b in range(4):
    for k in range(3):
      if k != winner[b]:
        assert np.all(grad[b, k] == 0.0)
    # d/dh of mean_b mean_j |h - t|: sign / (B J).
    diff = np.asarray(hyps[b, winner[b]] - target[b])
    np.testing.assert_allclose(grad[b, winner[b]],
                               np.sign(diff) / (4 * 17), rtol=1e-4)
  jax_test_util.check_grads(
      lambda h: losses.wta_distillation_loss(h, target), (hyps,), order=1,
      modes=("rev",), atol=1e-2, rtol=1e-2)


def test_wta_mirror_target_trains_a_second_winner_on_the_mirror():
  rng = np.random.default_rng(1)
  target = jnp.asarray(rng.normal(size=(2, 17, 1)), jnp.float32)
  mirror = losses.mirror_depth(target)
  np.testing.assert_allclose(mirror[:, 0], target[:, 0])
  np.testing.assert_allclose(mirror - mirror[:, :1],
                             -(target - target[:, :1]), atol=1e-6)
  # Hypothesis 0 near the target, 1 near its mirror, 2 far from both.
  hyps = jnp.stack([target + 0.01, mirror - 0.01, target + 50.0], axis=1)
  grad = np.asarray(jax.grad(losses.wta_distillation_loss)(
      hyps, target, True))
  assert np.all(grad[:, 2] == 0.0)
  assert np.all(np.abs(grad[:, :2]) > 0)
  # Without the mirror term only hypothesis 0 learns.
  grad = np.asarray(jax.grad(losses.wta_distillation_loss)(hyps, target))
  assert np.all(grad[:, 1:] == 0.0) and np.all(np.abs(grad[:, 0]) > 0)


def test_ordered_warmup_gives_fixed_roles(lifting_arrays, teacher_dir):
  # The hand-made pose turned obliquely in the camera frame (lifting units).
  body_to_camera = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], np.float32)
  pose = hand_made_pose() @ body_to_camera * 0.05
  rot = rotations.random_rotation_about_axis(KEY, (4,), axis="y")
  shapes = jnp.einsum("jk,bkl->bjl", jnp.asarray(pose), rot)
  shapes = shapes - shapes[:, :1]
  keypoints, depth = losses.project(shapes), shapes[..., 2:]
  mirror = losses.mirror_depth(depth)
  # Targets in either orientation: the roles follow the anatomy.
  target = jnp.where((jnp.arange(4) % 2 == 0)[:, None, None], depth, mirror)
  good = jnp.stack([depth, mirror], axis=1)
  swapped = jnp.stack([mirror, depth], axis=1)
  assert float(losses.ordered_mirror_distillation_loss(
      good, keypoints, target)) < 1e-5
  assert float(losses.ordered_mirror_distillation_loss(
      swapped, keypoints, target)) > 0.01
  for hyps in (good, swapped):
    assert float(losses.wta_distillation_loss(hyps, target, True)) < 1e-5
  config = multi_config(teacher_dir)
  config.loss.wta_mirror_target = False
  config.loss.wta_ordered_steps = 10
  with pytest.raises(ValueError, match="wta_mirror_target"):
    lifting_train.LiftingTask(config, train_data=lifting_arrays[0])


def test_fixed_roles_distillation_in_the_training_loss(lifting_arrays,
                                                       teacher_dir):
  train, _ = lifting_arrays
  x = jnp.asarray(train["keypoints_2d"][:8])
  config = multi_config(teacher_dir, prior="")
  config.loss.hypothesis_distillation = "fixed_roles"
  task = lifting_train.LiftingTask(config, train_data=train)
  state = task.init_state(KEY)
  target = jnp.asarray(np.random.default_rng(4).normal(size=(8, 17, 1)),
                       jnp.float32)
  _, (_, step_metrics) = task._hypothesis_loss(
      state.params, state.batch_stats, x, KEY, target, None, step=0)
  hyps, _ = task.model.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, x,
      train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(
      step_metrics["distillation"],
      losses.ordered_mirror_distillation_loss(hyps, x, target), rtol=1e-6)
  assert abs(float(step_metrics["distillation"]) - float(
      losses.wta_distillation_loss(hyps, target, True))) > 1e-4
  config.loss.hypothesis_distillation = "closest"
  with pytest.raises(ValueError, match="hypothesis_distillation"):
    lifting_train.LiftingTask(config, train_data=train)


def test_wta_cycle_matches_the_nearest_relifted_hypothesis():
  rng = np.random.default_rng(2)
  rotated = jnp.asarray(rng.normal(size=(3, 17, 3)), jnp.float32)
  relifted = jnp.stack([rotated + 1.0, rotated + 0.1], axis=1)
  assert float(losses.wta_cycle_loss(relifted, rotated)) == pytest.approx(
      float(np.sqrt(3 * 0.01)), rel=1e-4)
  grad = np.asarray(jax.grad(losses.wta_cycle_loss)(relifted, rotated))
  assert np.all(grad[:, 0] == 0.0) and np.all(np.abs(grad[:, 1]) > 0)
  with pytest.raises(ValueError, match=r"\[B, K\]"):
    losses.winner_takes_all(jnp.zeros((3,)))


# The student with K hypotheses; K = 1 is today's student -------------------


def test_student_hypothesis_shapes():
  x = jax.random.normal(KEY, (3, 17, 2)) * 0.2
  one = student_lib.Student(hidden=8, num_blocks=1)
  three = student_lib.Student(hidden=8, num_blocks=1, num_hypotheses=3)
  v1 = one.init(KEY, x, train=False)
  v3 = three.init(KEY, x, train=False)
  assert one.apply(v1, x, train=False).shape == (3, 17, 1)
  assert three.apply(v3, x, train=False).shape == (3, 3, 17, 1)
  assert v3["params"]["output"]["kernel"].shape == (2, 8, 3)
  # Everything but the last layer has the single-hypothesis shapes.
  shapes = lambda v: jax.tree.map(lambda a: a.shape, v)
  s1, s3 = shapes(v1), shapes(v3)
  s1["params"].pop("output")
  s3["params"].pop("output")
  assert s1 == s3
  # Hypothesis k reads output channel k.
  out3 = three.apply(v3, x, train=False)
  wide = three.clone(num_hypotheses=1, out_features=3).apply(v3, x,
                                                             train=False)
  np.testing.assert_allclose(out3[:, 1, :, 0], wide[..., 1], atol=1e-6)
  with pytest.raises(ValueError, match="num_hypotheses"):
    student_lib.Student(num_hypotheses=0).init(KEY, x, train=False)


def _reference_student_step(config, optimizer, state, x, key, target):
  """Today's student step, written out: 5 * distillation + cycle."""
  model = student_lib.Student(hidden=config.model.hidden,
                              num_blocks=config.model.num_blocks)

  def loss_fn(params, stats):
    depth, upd = model.apply({"params": params, "batch_stats": stats}, x,
                             train=True, mutable=["batch_stats"])
    distill = losses.distillation_loss(depth, target)
    rotated_2d, rotated_3d = losses.equivariance_cycle(
        key, losses.lift(x, depth), config.loss.cycle_samples)
    re_depth, _ = model.apply({"params": params,
                               "batch_stats": upd["batch_stats"]},
                              rotated_2d, train=True, mutable=["batch_stats"])
    cycle = losses.mpjpe_loss(losses.lift(rotated_2d, re_depth), rotated_3d)
    return 5.0 * distill + cycle, upd["batch_stats"]

  (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, state.batch_stats)
  updates, _ = optimizer.update(grads, state.opt_state, state.params)
  return loss, optax.apply_updates(state.params, updates), stats


def test_one_hypothesis_reproduces_todays_student_exactly(lifting_arrays,
                                                          teacher_dir):
  train, _ = lifting_arrays
  x = jnp.asarray(train["keypoints_2d"][:16])
  config = tiny_config("student")
  config.teacher_checkpoint = teacher_dir
  config.num_devices = 1
  config.model.num_hypotheses = 1
  task = lifting_train.LiftingTask(config, train_data=train)
  assert isinstance(task.model, student_lib.Student)
  # A config written before the option existed builds the same network.
  old = tiny_config("student")
  del old.model["num_hypotheses"]
  del old["hypotheses"]
  del old.loss["wta_mirror_target"]
  del old.loss["wta_ordered_steps"]
  del old.loss["hypothesis_distillation"]
  assert lifting_train.LiftingTask(old, train_data=train).model == task.model
  state = jax.device_get(task.init_state(KEY))
  # The same initial parameters as the published student's.
  reference_init = student_lib.Student(hidden=16, num_blocks=1).init(
      KEY, jnp.zeros((2, 17, 2)), train=False)
  jax.tree.map(np.testing.assert_array_equal, state.params,
               reference_init["params"])
  teacher_vars = jax.device_get(task.teacher[1])
  new_state, step_metrics = jax.jit(task.train_step)(
      state, {"keypoints_2d": x}, KEY, teacher_variables=teacher_vars)
  target = task.teacher_target(teacher_vars, x)
  loss, params, stats = jax.jit(
      lambda s, t: _reference_student_step(config, task.optimizer, s, x,
                                           KEY, t))(state, target)
  assert float(step_metrics["loss"]) == float(loss)
  jax.tree.map(np.testing.assert_array_equal, new_state.params, params)
  jax.tree.map(np.testing.assert_array_equal, new_state.batch_stats, stats)


def test_prior_needs_several_hypotheses(lifting_arrays, teacher_dir):
  config = tiny_config("student")
  config.hypotheses.prior_poses = "procedural"
  with pytest.raises(ValueError, match="num_hypotheses > 1"):
    lifting_train.LiftingTask(config, train_data=lifting_arrays[0])
  config.hypotheses.prior_poses = "nope"
  with pytest.raises(ValueError, match="prior_poses"):
    lifting_train.LiftingTask(config, train_data=lifting_arrays[0])
  config = multi_config(teacher_dir)
  config.hypotheses.choice = "vote"
  with pytest.raises(ValueError, match="Unknown hypothesis choice"):
    lifting_train.LiftingTask(config, train_data=lifting_arrays[0])


def test_prior_loss_reaches_only_the_prior(lifting_arrays, teacher_dir):
  train, _ = lifting_arrays
  x = jnp.asarray(train["keypoints_2d"][:16])
  task = lifting_train.LiftingTask(multi_config(teacher_dir),
                                   train_data=train)
  state = jax.device_get(jax.jit(task.init_state)(KEY))
  teacher_vars = jax.device_get(task.teacher[1])
  target = task.teacher_target(teacher_vars, x)
  real = task.prior_real_poses(KEY, x, target,
                               jnp.asarray(task.prior_bank, jnp.float32))
  assert real.shape == (16, 17, 3)

  loss_fn = task._hypothesis_loss  # pylint: disable=protected-access

  def term(params, name):
    _, (_, step_metrics) = loss_fn(params, state.batch_stats, x, KEY, target,
                                   real)
    return step_metrics[name]

  grads = jax.jit(jax.grad(term, argnums=0), static_argnums=1)
  prior_grads = jax.device_get(grads(state.params, "prior"))
  assert all(np.all(g == 0) for g in jax.tree.leaves(prior_grads["student"]))
  assert any(np.any(g != 0) for g in jax.tree.leaves(prior_grads["prior"]))
  distill_grads = jax.device_get(grads(state.params, "distillation"))
  assert all(np.all(g == 0) for g in jax.tree.leaves(distill_grads["prior"]))


# Choices without ground truth ---------------------------------------------


def test_chirality_choice_rotation_invariant_and_flips_under_reflection():
  pose = camera_poses(32, 3)
  rng = np.random.default_rng(4)
  swap = rng.random(32) < 0.5
  pair = np.stack([pose, depth_mirror(pose)], axis=1)
  pair[swap] = pair[swap][:, ::-1]
  scores = np.asarray(hypothesis_choice.chirality_scores(jnp.asarray(pair)))
  np.testing.assert_allclose(scores[:, 0], -scores[:, 1], rtol=1e-4,
                             atol=1e-5)
  chosen = hypothesis_choice.choose("chirality", pair,
                                    {"chirality": scores})
  # Rotated, shifted and rescaled: the same scores and choices.
  rot = np.asarray(rotations.random_rotation(KEY, (32,)))
  moved = np.einsum("nkjc,ncd->nkjd", pair, rot) * 0.01 + 7.0
  moved_scores = np.asarray(hypothesis_choice.chirality_scores(
      jnp.asarray(moved)))
  np.testing.assert_allclose(moved_scores, scores, rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(hypothesis_choice.choose(
      "chirality", moved, {"chirality": moved_scores}), chosen)
  # A reflection negates every score and flips every choice.
  mirrored = moved * np.array([-1.0, 1.0, 1.0], np.float32)
  mirrored_scores = np.asarray(hypothesis_choice.chirality_scores(
      jnp.asarray(mirrored)))
  np.testing.assert_allclose(mirrored_scores, -scores, rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(hypothesis_choice.choose(
      "chirality", mirrored, {"chirality": mirrored_scores}), 1 - chosen)
  # Unit-radius scaling of the analytic case (lifting_test: score 5).
  hand = hand_made_pose()
  radius = np.sqrt(np.mean(np.sum((hand - hand[0]) ** 2, axis=-1)))
  np.testing.assert_allclose(
      hypothesis_choice.chirality_scores(jnp.asarray(hand)[None]),
      5.0 / radius, rtol=1e-5)


def test_canonical_pose_invariances():
  pose = jnp.asarray(camera_poses(8, 5))
  canon = pose_prior.canonical_pose(pose)
  rot = rotations.random_rotation(KEY, (8,))
  moved = jnp.einsum("njc,ncd->njd", pose, rot) * 3.0 + 1.0
  np.testing.assert_allclose(pose_prior.canonical_pose(moved), canon,
                             atol=1e-4)
  np.testing.assert_allclose(
      pose_prior.canonical_pose(moved * jnp.array([1.0, -1.0, 1.0])),
      canon * jnp.array([1.0, 1.0, -1.0]), atol=1e-4)
  np.testing.assert_allclose(
      np.mean(np.sum(np.asarray(canon) ** 2, -1), -1), 1.0, rtol=1e-5)


def test_discriminator_choice_prefers_held_out_true_poses(lifting_arrays,
                                                         teacher_dir):
  """The prior, trained by the student step on procedural poses, picks the
  true pose over its depth mirror on held-out ground truth."""
  train, _ = lifting_arrays
  config = multi_config(teacher_dir)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.weight_decay = 0.0
  config.hypotheses.prior_bank_size = 2000
  config.hypotheses.prior.features = 16
  config.hypotheses.prior.head_dim = 32
  task = lifting_train.LiftingTask(config, train_data=train)
  state = task.init_state(KEY)
  extras = task.step_extras()
  step = jax.jit(lambda s, b, k: task.train_step(s, b, k, **extras))
  batches = task.train_batches(0)
  for i in range(200):
    batch = {"keypoints_2d": jnp.asarray(next(batches)["keypoints_2d"])}
    state, step_metrics = step(state, batch, jax.random.fold_in(KEY, i))
  assert float(step_metrics["prior_accuracy"]) > 0.8
  # Held out: other poses (another seed) seen by a camera, each with its
  # depth mirror, in random order.
  true = camera_poses(300, 99)
  swap = np.random.default_rng(6).random(300) < 0.5
  pair = np.stack([true, depth_mirror(true)], axis=1)
  pair[swap] = pair[swap][:, ::-1]
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  scores = task.model.apply(
      variables, jnp.asarray(pair.reshape(-1, 17, 3)),
      method=student_lib.HypothesisStudent.prior_score).reshape(300, 2)
  chosen = hypothesis_choice.choose("discriminator", pair,
                                    {"discriminator": np.asarray(scores)})
  accuracy = np.mean(chosen == swap.astype(int))
  assert accuracy > 0.9, accuracy


def test_temporal_path_is_the_cheapest_path():
  rng = np.random.default_rng(7)
  hyps = rng.normal(size=(5, 3, 17, 3))
  scores = rng.normal(size=(5, 3))
  unit = np.asarray(pose_prior.unit_radius(jnp.asarray(hyps)))
  best, best_cost = None, np.inf
  for path in np.ndindex(*(3,) * 5):
    cost = -sum(scores[t, k] for t, k in enumerate(path)) + 0.7 * sum(
        np.linalg.norm(unit[t - 1, path[t - 1]] - unit[t, path[t]],
                       axis=-1).mean() for t in range(1, 5))
    if cost < best_cost:
      best, best_cost = path, cost
  np.testing.assert_array_equal(
      hypothesis_choice.temporal_path(hyps, scores, 0.7), best)
  np.testing.assert_array_equal(
      hypothesis_choice.temporal_path(hyps, scores, 0.0),
      np.argmax(scores, axis=1))


def test_temporal_choice_fixes_an_isolated_wrong_frame():
  pose = camera_poses(1, 8)[0]
  frames = np.stack([pose + 5.0 * t for t in range(6)])
  pair = np.stack([frames, depth_mirror(frames)], axis=1)
  scores = np.where(np.arange(2) == 0, 1.0, -1.0)[None].repeat(6, 0)
  scores[3] = [-0.2, 0.2]  # One frame's score prefers the mirror.
  segments = [np.arange(6)]
  chosen = hypothesis_choice.choose("temporal", pair, {"chirality": scores},
                                    segments, temporal_weight=1.0)
  np.testing.assert_array_equal(chosen, 0)
  per_frame = hypothesis_choice.choose("chirality", pair,
                                       {"chirality": scores})
  assert per_frame[3] == 1
  with pytest.raises(ValueError, match="discriminator"):
    hypothesis_choice.choose("discriminator", pair, {"chirality": scores})


def test_sequence_segments_group_sort_and_cut():
  data = {"frame": np.array([3, 1, 2, 1, 2, 7, 8, 5]),
          "action": np.array(["a", "a", "a", "b", "b", "b", "b", "a"]),
          "camera": np.zeros(8, np.int32)}
  segments = hypothesis_choice.sequence_segments(data)
  assert [s.tolist() for s in segments] == [[1, 2, 0], [7], [3, 4], [5, 6]]
  with pytest.raises(ValueError, match="'frame'"):
    hypothesis_choice.sequence_segments({"action": data["action"]},
                                        source="x[test]")
  order = hypothesis_choice.rank(np.array([[0.1, 0.5, 0.3]]),
                                 np.array([2]))
  np.testing.assert_array_equal(order, [[2, 1, 0]])


# Metrics --------------------------------------------------------------------


def test_hypothesis_errors_confident_best_and_ambiguity():
  truth = camera_poses(6, 9)
  hyps = np.stack([truth + 20.0, depth_mirror(truth)], axis=1)
  per_hyp = metrics.per_hypothesis_errors(hyps, truth)
  for k in range(2):
    direct = metrics.pose_errors(hyps[:, k], truth)
    for name in metrics.HYPOTHESIS_METRICS:
      np.testing.assert_allclose(per_hyp[name][:, k], direct[name])
  chosen = np.array([0, 1, 0, 1, 0, 1])
  errors = metrics.hypothesis_errors(per_hyp, chosen)
  # The shifted truth is exact after Procrustes; the mirror is not.
  np.testing.assert_allclose(errors["best/p_mpjpe"], 0.0, atol=1e-3)
  np.testing.assert_array_equal(errors["confident/ambiguity"],
                                [0, 1, 0, 1, 0, 1])
  np.testing.assert_allclose(errors["confident/p_mpjpe"][::2], 0.0,
                             atol=1e-3)
  assert np.all(errors["confident/p_mpjpe"][1::2] > 10.0)
  # The published flip oracle forgives the mirror.
  np.testing.assert_allclose(errors["confident/p_mpjpe_flip"], 0.0,
                             atol=1e-3)
  with pytest.raises(ValueError, match="hypotheses must be"):
    metrics.per_hypothesis_errors(hyps[:, 0], truth)


# Training, evaluation, export and inference --------------------------------


def test_multi_hypothesis_student_trains_evaluates_exports_predicts(
    tmp_path, lifting_arrays, teacher_dir):
  train, test = lifting_arrays
  test = dict(test, frame=np.arange(len(test["pose_3d"])) % 16)
  config = multi_config(teacher_dir)
  task = lifting_train.LiftingTask(config, train_data=train,
                                   eval_data={"test": test})
  state = loop.train_and_evaluate(task, config, str(tmp_path / "student"))
  result = json.load(open(tmp_path / "student" / "eval" /
                          "test_metrics.json"))
  for key in ("p_mpjpe", "p_mpjpe_flip", "confident/p_mpjpe",
              "confident/p_mpjpe_flip", "best/p_mpjpe", "confident/ambiguity",
              "choice_discriminator/p_mpjpe", "choice_temporal/p_mpjpe"):
    assert np.isfinite(result[key]), key
  assert result["p_mpjpe"] == result["confident/p_mpjpe"]
  assert result["best/p_mpjpe"] <= result["confident/p_mpjpe"]
  assert set(result["per_action"]) == {"Walking", "Sitting", "average"}
  assert "confident/ambiguity" in result["per_action"]["Walking"]

  name, kwargs, variables = task.export_spec(state)
  assert name == "hypothesis_student"
  # The evaluation's scale protocol reaches every hypothesis' MPJPE.
  config.eval.scale_protocol = "reflection"
  reflection = task.evaluate_hypotheses(jax.device_get(variables), test)
  assert reflection["scale_protocol"] == "reflection"
  assert result["scale_protocol"] == "rotation"
  for key in ("mpjpe", "confident/mpjpe", "best/mpjpe"):
    assert reflection[key] == pytest.approx(reflection[
        key.replace("mpjpe", "mpjpe_scale_reflection")])
    assert reflection[key] == pytest.approx(result[
        key.replace("mpjpe", "mpjpe_scale_reflection")], rel=1e-6)
  directory = export.save(str(tmp_path / "export"), name, kwargs, variables,
                          metadata=task.export_metadata())
  predictor = predict.Predictor(directory, batch_size=8)
  x = test["keypoints_2d"][:10]
  out = predictor.predict_keypoints(x, normalised=True)
  direct = task.predict_hypotheses(jax.device_get(variables), x)
  assert out["hypotheses_3d"].shape == (10, 2, 17, 3)
  assert out["choice"] == "chirality"
  # Confident first: the larger chirality score.
  chosen = np.argmax(direct["chirality"], axis=1)
  np.testing.assert_allclose(
      out["pose_3d"], direct["hypotheses"][np.arange(10), chosen], atol=1e-5)
  np.testing.assert_allclose(out["scores"][:, 0],
                             direct["chirality"].max(axis=1), atol=1e-5)
  assert np.all(out["scores"][:, 0] >= out["scores"][:, 1])
  prior = predictor.predict_keypoints(x, normalised=True,
                                      choice="discriminator")
  np.testing.assert_allclose(prior["scores"][:, 0],
                             direct["discriminator"].max(axis=1), atol=1e-5)

  npy = str(tmp_path / "kp.npy")
  np.save(npy, x)
  out_dir = str(tmp_path / "out")
  doc = predict.main(["--model_dir", directory, "--inputs", npy,
                      "--output_dir", out_dir, "--normalised", "--sequence",
                      "--choice", "temporal", "--max_overlays", "2"])
  assert doc["choice"] == "temporal"
  assert np.shape(doc["hypotheses_3d"]) == (10, 2, 17, 3)
  assert doc["overlays"] == ["kp_0_overlay.png", "kp_1_overlay.png"]
  for png in doc["overlays"]:
    assert os.path.getsize(os.path.join(out_dir, png)) > 0
  with np.load(os.path.join(out_dir, "hypotheses.npz")) as saved:
    assert saved["scores"].shape == (10, 2)
  np.testing.assert_allclose(np.load(os.path.join(out_dir,
                                                  "predictions.npy")),
                             np.asarray(doc["pose_3d"]), atol=1e-4)


def test_multi_hypothesis_configs():
  for dataset in config_defaults.MULTI_HYPOTHESIS_DATASETS:
    config = config_defaults.lifting_multi_hypothesis(
        dataset, "gt" if dataset == "h36m" else None)
    assert config.model.num_hypotheses == 2
    assert config.hypotheses.choice in hypothesis_choice.CHOICES
  with pytest.raises(ValueError, match="Unknown dataset"):
    config_defaults.lifting_multi_hypothesis("mpii")
