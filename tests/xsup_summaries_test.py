"""X-as-Supervision image summaries and the MPI-INF-3DHP PCK / AUC protocol.

One tiny run (the `mpi_multi_sur_s1:tiny` config, ResNet-18 at 64x64, one
step with images) serves the TensorBoard, evaluation-file and
hypothesis-routing checks; the loop's image schedule is checked on a trivial
task; the rest are hand-made cases.
"""

import glob
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import image_fixtures
from repo_configs import load_config
from xsup import evaluate
from xsup import skeleton
from xsup import viz
from xsup.data import sources
from xsup.data.synthetic import poses as poses_lib
from xsup.train import loop
from xsup.train import state as state_lib
from xsup.train import xsup as xsup_train

S = 64
KINDS = ("skeleton_2d", "line_mask", "pose_3d", "depth_marginals")
SCORES = ("pck150", "auc", "pa_pck150", "pa_auc", "pck150_all17",
          "auc_all17")


def _gt_3dhp(seed: int, num: int) -> np.ndarray:
  """`[num, 17, 3]` 3DHP test-joint poses in camera mm (4 m away)."""
  world = np.asarray(poses_lib.sample_poses_h36m18(
      np.random.default_rng(seed), num), np.float64)
  cam = np.stack([world[..., 0], -world[..., 2], world[..., 1] + 4000.0], -1)
  return skeleton.convert(cam, "h36m18", "mpi3dhp17")


# ---------------------------------------------------------------------------
# Joint mapping and the protocol's arithmetic.


def test_h36m_to_3dhp_mapping_inverts_the_test_joint_table():
  x = np.random.default_rng(0).normal(size=(3, 17, 3))
  for layout in ("h36m17", "h36m18"):
    back = skeleton.convert(skeleton.convert(x, "mpi3dhp17", layout),
                            layout, "mpi3dhp17")
    np.testing.assert_array_equal(back, x)
  # Each 3DHP joint takes the named H36M-18 joint.
  h18 = np.arange(18.0)[:, None] * np.ones((1, 3))
  got = skeleton.convert(h18, "h36m18", "mpi3dhp17")[:, 0].astype(int)
  names = [skeleton.H36M18.joint_names[i] for i in got]
  expected = dict(head_top="head", neck="neck", head="nose", spine="torso",
                  pelvis="pelvis")
  for joint, name in zip(skeleton.MPI3DHP17.joint_names, names):
    assert name == expected.get(joint, joint), joint
  assert 17 not in got  # The H36M-18 thorax has no 3DHP joint.


def test_3dhp_scores_hand_computed():
  gt = _gt_3dhp(1, 5)
  offsets = np.zeros((17, 3))
  offsets[:, 0] = 1.0  # 1 mm everywhere ...
  offsets[14] = 0.0  # ... but the pelvis (root),
  offsets[0] = [200.0, 0.0, 0.0]  # head top 200 mm off,
  offsets[3] = [0.0, 52.0, 0.0]  # right elbow 52 mm,
  offsets[7] = [0.0, 0.0, 12.5]  # left wrist 12.5 mm.
  pred = skeleton.convert(gt + offsets, "mpi3dhp17", "h36m18")
  pred = pred + np.array([300.0, -100.0, 900.0])  # root-relative: no effect
  pred[:, 17] = 1e5  # The thorax is not a 3DHP joint.
  scores = evaluate.mpi_inf_3dhp_scores(pred, gt)
  # 14 protocol joints: 13 within 150 mm. Thresholds 0, 5, ..., 150:
  # 1 mm joints count 30 times, 12.5 mm 28, 52 mm 20, 200 mm never.
  assert scores["pck150"] == pytest.approx(13 / 14)
  assert scores["auc"] == pytest.approx((11 * 30 + 28 + 20) / (14 * 31))
  assert scores["pck150_all17"] == pytest.approx(16 / 17)

  # A rotated, scaled copy: wrong without alignment, exact after Procrustes.
  c, s = np.cos(0.6), np.sin(0.6)
  rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
  rel = gt - gt[:, 14:15]
  moved = skeleton.convert(1.2 * rel @ rot.T, "mpi3dhp17", "h36m18")
  scores = evaluate.mpi_inf_3dhp_scores(moved, gt)
  assert scores["pa_pck150"] == 1.0
  assert scores["pa_auc"] >= 30 / 31 - 1e-9  # all but the 0 mm threshold
  assert scores["pck150"] < 0.8 and scores["auc"] < 0.6
  # Spine and head (approximate H36M counterparts) do not steer the
  # alignment, nor count in the 14-joint scores.
  off = gt.copy()
  off[:, 15:] += 500.0
  scores = evaluate.mpi_inf_3dhp_scores(
      skeleton.convert(1.2 * off @ rot.T, "mpi3dhp17", "h36m18"), gt)
  assert scores["pa_pck150"] == 1.0 and scores["pa_auc"] >= 30 / 31 - 1e-9
  assert scores["pck150_all17"] < 1.0
  with pytest.raises(ValueError, match="mpi3dhp17"):
    evaluate.mpi_inf_3dhp_scores(pred, pred)


# ---------------------------------------------------------------------------
# Rendering helpers.


def test_skeleton_overlay_draws_at_the_joint_pixels():
  image = np.zeros((S, S, 3), np.uint8)
  rng = np.random.default_rng(2)
  joints = rng.uniform(24, 56, (18, 2))
  out = viz.skeleton_overlay(image, np.stack([joints, joints + 1]),
                             skeleton.H36M18, scale=4)
  assert out.shape == (4 * S, 4 * S, 3) and out.dtype == np.uint8
  # Patch pixel (u, v) covers output pixels 4u..4u+3: every joint is drawn
  # where it lies, and nothing in the empty top-left corner.
  for u, v in joints:
    assert out[int(round(v * 4 + 2)), int(round(u * 4 + 2))].sum() > 100
  assert not out[:80, :80].any()
  # The input shows through unchanged away from the skeleton.
  grey = np.full((S, S, 3), 90, np.uint8)
  over = viz.skeleton_overlay(grey, joints, skeleton.H36M18, scale=4)
  np.testing.assert_array_equal(over[:80, :80], 90)
  assert np.any(over != 90)


def test_masks_side_by_side_layout():
  rendered = np.zeros((8, 8, 1))
  rendered[:, :4] = 1.0
  mask = np.zeros((8, 8))
  mask[:4] = 1.0
  out = viz.masks_side_by_side(rendered, mask, scale=2, gap=1)
  assert out.shape == (16, 2 * (3 * 8 + 2), 3) and out.dtype == np.uint8
  left, middle, right = out[:, :16], out[:, 18:34], out[:, 36:]
  np.testing.assert_array_equal(left[..., 0], np.kron(rendered[..., 0],
                                                      np.ones((2, 2))) * 255)
  np.testing.assert_array_equal(middle[..., 1], np.kron(mask, np.ones(
      (2, 2))) * 255)
  np.testing.assert_array_equal(right[..., 0], left[..., 0])
  np.testing.assert_array_equal(right[..., 1], middle[..., 1])
  assert not right[..., 2].any()
  no_mask = viz.masks_side_by_side(rendered, None, scale=4, gap=2)
  assert not no_mask[:, 40:72].any()  # The missing mask's panel is black.
  assert not no_mask[:, 80:, 1].any() and no_mask[:, 80:, 0].any()


def test_pose_and_marginal_images_are_drawn():
  pose = skeleton.convert(_gt_3dhp(3, 1), "mpi3dhp17", "h36m18")[0]
  pose = pose - pose[:1]
  image = viz.pose_3d_image(np.stack([pose, pose * 1.1]), pose, size_px=128)
  assert image.shape == (128, 128, 3) and image.dtype == np.uint8
  assert image.std() > 5
  probs = np.random.default_rng(4).dirichlet(np.ones(16), 18)
  image = viz.depth_marginals_image(probs, np.full((2, 18), 8.0),
                                    size_px=128)
  assert image.shape == (128, 128, 3) and image.std() > 5


# ---------------------------------------------------------------------------
# The loop's schedule on a trivial task.


class _CountingTask(loop.Task):
  """One scalar parameter counting the steps; an image per call."""

  def __init__(self, mesh):
    self.mesh = mesh
    self.calls = []

  @property
  def steps_per_epoch(self):
    return 100

  def init_state(self, key):
    del key
    return state_lib.TrainState(step=jnp.zeros((), jnp.int32),
                                params={"w": jnp.zeros(())}, batch_stats={},
                                opt_state={})

  def train_step(self, state, batch, key):
    del key
    return (state.replace(step=state.step + 1, params={
        "w": state.params["w"] + jnp.mean(batch["x"])}),
            {"loss": state.params["w"]})

  def train_batches(self, start_step):
    while True:
      yield {"x": np.ones((2,), np.float32)}

  def evaluate(self, state):
    return {}

  def summary_images(self, state):
    self.calls.append(int(state.step))
    return {"count": np.full((1, 4, 4, 3), 10 * int(state.step), np.uint8)}


@pytest.mark.parametrize("every,expected", [(2, [2, 4, 5]), (0, [])])
def test_loop_writes_images_every_n_steps_and_at_the_end(tmp_path, every,
                                                        expected):
  config = ml_collections.ConfigDict(dict(
      seed=0, batch_size=2, total_steps=5, log_every_steps=5,
      checkpoint_every_steps=5, eval_every_steps=5, num_devices=1,
      image_every_steps=every))
  task = _CountingTask(loop.make_mesh(config))
  loop.train_and_evaluate(task, config, str(tmp_path))
  assert task.calls == expected
  images = _event_images(str(tmp_path))
  assert sorted(step for step, _ in images) == expected
  for step in expected:
    np.testing.assert_array_equal(images[(step, "count")], 10 * step)


# ---------------------------------------------------------------------------
# One tiny run: TensorBoard images, 3DHP scores in the evaluation files.


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
  """`mpi_multi_sur_s1:tiny`, two steps, images at every step."""
  old = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "rbg")  # Faster init on CPU.
  try:
    manual = image_fixtures.write_reference_fixtures(
        tmp_path_factory.mktemp("reference_data"))
    config = load_config("mpi_multi_sur_s1.py", "tiny")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for part in (config.dataset, config.synthetic):
      part.manual_dir = manual
      part.data_dir = data_dir
    config.image_every_steps = 1
    config.total_steps = 1
    # The official test set's layout (one view); the routing test below
    # reuses it.
    config.dataset.eval_splits = ("test",)
    workdir = str(tmp_path_factory.mktemp("run"))
    task = xsup_train.get_task(config)
    loop.train_and_evaluate(task, config, workdir)
  finally:
    jax.config.update("jax_default_prng_impl", old)
  return config, workdir, task


def _event_images(workdir):
  """{(step, tag): uint8 [N, H, W, 3]} of the run's image summaries."""
  images = {}
  for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name != "images":
          continue
        blobs = tf.make_ndarray(value.tensor)
        images[(event.step, value.tag)] = np.stack(
            [tf.io.decode_png(b).numpy() for b in blobs[2:]])
  return images


def test_run_writes_image_summaries(mpi_run):
  _, workdir, task = mpi_run
  images = _event_images(workdir)
  groups = ("target_train", "synthetic", "eval_test")
  assert set(images) == {(1, f"{g}/{k}") for g in groups for k in KINDS}
  for group in groups:
    for kind in KINDS:
      batch = images[(1, f"{group}/{kind}")]
      assert batch.ndim == 4 and batch.shape[-1] == 3, (group, kind)
      assert batch.dtype == np.uint8 and batch.std() > 1, (group, kind)
  # The first target examples (view 0), shown at 4x with the prediction
  # drawn over them (an untrained detector puts every joint near the
  # centre, so the skeleton is small).
  inputs = task.summary_examples[0].images
  first = task.target_source.read(range(len(inputs)))
  np.testing.assert_array_equal(inputs, xsup_train._images(  # pylint: disable=protected-access
      first, task.config.dataset.remove_background, "target")[:, 0])
  drawn = images[(1, "target_train/skeleton_2d")]
  assert drawn.shape == (len(inputs), 4 * S, 4 * S, 3)
  plain = np.repeat(np.repeat(inputs, 4, axis=1), 4, axis=2)
  changed = np.any(np.abs(drawn.astype(int) - plain) > 30, axis=-1)
  assert np.all(changed.any(axis=(1, 2)))
  assert changed.mean() < 0.5
  # Without a person mask, the synthetic line-mask panel shows the labels'.
  assert task.summary_examples[1].masks is None
  assert images[(1, "synthetic/line_mask")][..., 1].any()


def test_run_reports_3dhp_scores(mpi_run):
  config, workdir, _ = mpi_run
  assert config.dataset.eval_protocol == "mpi_inf_3dhp"
  for split in config.dataset.eval_splits:
    with open(os.path.join(workdir, "eval", f"{split}_metrics.json")) as f:
      metrics = json.load(f)
    assert metrics["pck_ground_truth"] == "joints_3d_univ17"
    for mode in ("confident", "best", "noswap/confident"):
      for score in SCORES:
        value = metrics[f"{mode}/{score}"]
        assert 0.0 <= value <= 1.0, (split, mode, score)
    assert metrics["best/pck150"] >= metrics["confident/pck150"]
    assert "confident/auc" in metrics["per_action"]["average"]


def test_3dhp_scores_follow_the_hypotheses(mpi_run):
  _, _, task = mpi_run
  data = sources.read_all(task.eval_source("test"))
  gt, _ = xsup_train.synthetic_joints(data, S, 2000.0)  # [N, 1, 18, 3]
  wrong = gt.copy()
  wrong[..., 1:, 2] += 0.2  # 400 mm too deep, but the pelvis
  metrics = task.score_split(np.stack([wrong, gt, wrong], 2), data)
  # The targets are the universal skeleton (0.95 x the camera joints in the
  # fixture): within 150 mm of the exact prediction, and exact after
  # Procrustes (which also scales).
  assert metrics["best/pck150"] == 1.0 and metrics["best/pa_pck150"] == 1.0
  assert metrics["best/pa_auc"] > 0.95
  assert metrics["confident/pck150"] == 0.0
  assert metrics["confident/auc"] < metrics["best/auc"]
