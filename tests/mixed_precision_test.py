"""Mixed precision (`config.model.dtype="bfloat16"`): float32 parameters,
bfloat16 computation, the same training curve as float32.

Each method trains 20 steps from the same initial state on the same
batches in float32 and in bfloat16. bfloat16 keeps 8 significant bits
(relative rounding 2^-9 ~ 0.2% per value), so the losses differ by rounding
that grows a little as the two runs' parameters drift apart; the stated
tolerances bound the relative loss difference per step, and for the image
detector (whose bfloat16 heatmap logits move the soft-argmax the most)
also its mean over the 20 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import model_fixtures
from xsup import config_defaults
from xsup.data import pipeline
from xsup.models import precision
from xsup.train import lifting as lifting_train
from xsup.train import xsup as xsup_train

STEPS = 20
LIFTING_TOLERANCE = 0.05  # max |loss_bf16 - loss_f32| / loss_f32 per step.
IMAGE_TOLERANCE = (0.10, 0.03)  # (per step, mean over the steps).
S = 32  # Image side of the detector run.


@pytest.fixture(scope="module", autouse=True)
def fast_init():
  """The "rbg" PRNG compiles parameter initialisation several times faster
  on CPU; nothing here depends on the generator."""
  old = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "rbg")
  yield
  jax.config.update("jax_default_prng_impl", old)


def _batch(task, step):
  """Batch of global step `step`, whichever batch API the task has."""
  if hasattr(task, "batch_at"):
    return task.batch_at(step)
  return task.iterator.batch_at(step)


def _train(task, state, extras):
  """`STEPS` steps; returns (losses, final state, step jaxpr text)."""
  step = jax.jit(lambda s, b, k, e: task.train_step(s, b, k, **e))
  losses = []
  jaxpr = None
  for i in range(STEPS):
    batch = pipeline.shard_batch(_batch(task, i), task.mesh)
    key = jax.random.fold_in(jax.random.PRNGKey(0), i)
    if jaxpr is None:
      jaxpr = str(jax.make_jaxpr(task.train_step)(state, batch, key,
                                                  **extras))
    state, metrics = step(state, batch, key, extras)
    losses.append(float(metrics["loss"]))
  return np.array(losses), state, jaxpr


def _relative(a, b):
  return np.abs(a - b) / np.abs(b)


def _check_float32_state(state):
  for leaf in jax.tree.leaves((state.params, state.batch_stats,
                               state.opt_state)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32


def _lifting_config(stage, dtype):
  c = model_fixtures.tiny_lifting_config(stage)
  c.model.dtype = dtype
  c.batch_size = 32
  c.num_devices = 1
  c.optimizer.name = "adam"
  c.optimizer.weight_decay = 0.0
  return c


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_lifting_bfloat16_follows_float32(lifting_arrays, stage):
  train, _ = lifting_arrays
  runs = {}
  for dtype in ("float32", "bfloat16"):
    task = lifting_train.LiftingTask(_lifting_config(stage, dtype),
                                     train_data=train)
    state = jax.jit(task.init_state)(jax.random.PRNGKey(1))
    extras = {}
    if stage == "student":
      teacher = lifting_train.build_teacher(task.config.teacher_model)
      extras = {"teacher_variables": jax.jit(
          lambda k, t=teacher: t.init(k, jnp.zeros((2, 17, 2)),
                                      train=False))(jax.random.PRNGKey(2))}
    runs[dtype] = _train(task, state, extras)
  (loss32, _, jaxpr32), (loss16, state16, jaxpr16) = (runs["float32"],
                                                      runs["bfloat16"])
  assert "bf16" in jaxpr16 and "bf16" not in jaxpr32
  _check_float32_state(state16)
  assert np.all(np.isfinite(loss16))
  assert not np.array_equal(loss16, loss32)  # bfloat16 really ran.
  assert _relative(loss16, loss32).max() < LIFTING_TOLERANCE, (loss16,
                                                               loss32)


def _image_data(rng, num, views):
  """Raw builder-like arrays: target (V views) and synthetic renders."""
  images = lambda n, v: rng.integers(0, 256, (n, v, S, S, 3), dtype=np.uint8)
  yy, xx = np.mgrid[0:S, 0:S]
  disc = ((xx - S / 2)**2 + (yy - S / 2)**2 < (S / 3)**2) * 255
  masks = lambda n, v: np.broadcast_to(
      disc.astype(np.uint8)[..., None], (n, v, S, S, 1)).copy()
  n_syn = num * views
  return {
      "target": {"image": images(num, views), "mask": masks(num, views)},
      "synthetic": {
          "image": images(n_syn, 1), "mask": masks(n_syn, 1),
          "joints_2d_patch": rng.uniform(0.2 * S, 0.8 * S,
                                         (n_syn, 1, 18, 2)).astype(
                                             np.float32),
          "joints_depth": rng.uniform(-300, 300, (n_syn, 1, 18)).astype(
              np.float32)}}


def _image_config(dtype):
  c = config_defaults.xsup("s1")
  c.model.resnet_depth = 18
  c.model.resnet_width = 8
  c.model.depth_dim = 8
  c.model.neighbor_size = 3
  c.model.head_filters = 16
  c.model.dtype = dtype
  c.batch_size = 2
  c.num_devices = 1
  return c


def test_image_detector_bfloat16_follows_float32():
  data = _image_data(np.random.default_rng(0), 8, 2)
  runs = {}
  state = None
  for dtype in ("float32", "bfloat16"):
    task = xsup_train.XSupTask(
        _image_config(dtype),
        train_data={k: dict(v) for k, v in data.items()})
    if state is None:  # Both runs start from the same float32 state.
      state = jax.jit(task.init_state)(jax.random.PRNGKey(1))
    runs[dtype] = _train(task, jax.tree.map(jnp.copy, state),
                         task.step_extras())
  (loss32, _, jaxpr32), (loss16, state16, jaxpr16) = (runs["float32"],
                                                      runs["bfloat16"])
  assert "bf16" in jaxpr16 and "bf16" not in jaxpr32
  _check_float32_state(state16)
  assert np.all(np.isfinite(loss16))
  assert not np.array_equal(loss16, loss32)
  rel = _relative(loss16, loss32)
  assert rel.max() < IMAGE_TOLERANCE[0], (loss16, loss32)
  assert rel.mean() < IMAGE_TOLERANCE[1], (loss16, loss32)


def test_unknown_dtype_is_rejected():
  with pytest.raises(ValueError, match="config.model.dtype='float16'"):
    lifting_train.LiftingTask(_lifting_config("teacher", "float16"),
                              train_data={"keypoints_2d": np.zeros(
                                  (64, 17, 2), np.float32)})
  assert precision.with_compute_dtype("module", jnp.float32) == "module"
