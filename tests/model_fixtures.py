"""Concrete model variables drawn with numpy (much faster than `init` on CPU),
and the tiny lifting config the lifting tests share."""

import jax
import ml_collections
import numpy as np

from xsup import config_defaults


def numpy_variables(abstract, seed: int = 0, random_stats: bool = False):
  """Fills an abstract variables tree (from `jax.eval_shape(model.init)`).

  Kernels get He-normal values (fan-in = all but the last axis). With
  `random_stats` False, BatchNorm scales and variances are 1 and every other
  leaf is 0 (an identity-like network); with True, scales and variances are
  uniform in [0.5, 1.5] and the rest normal with std 0.1 (every parameter
  matters, as needed to compare two inference paths).
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      value = rng.normal(size=leaf.shape) * np.sqrt(
          2.0 / np.prod(leaf.shape[:-1]))
    elif "var" in name or "scale" in name:
      value = (rng.uniform(0.5, 1.5, size=leaf.shape) if random_stats
               else np.ones(leaf.shape))
    else:
      value = (rng.normal(size=leaf.shape) * 0.1 if random_stats
               else np.zeros(leaf.shape))
    return np.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def tiny_lifting_config(stage: str, steps: int = 4) -> ml_collections.ConfigDict:
  """The lifting config of `stage` with 1-layer networks and batch 16, for
  `steps` steps (checkpoints every 2; only the final evaluation)."""
  c = config_defaults.lifting(stage)
  config_defaults.shrink_lifting(c, batch=16, steps=steps, log_every=2,
                                 teacher_width=32, teacher_layers=1)
  c.checkpoint_every_steps = 2
  c.eval_every_steps = 100
  c.optimizer.decay_every_epochs = 1
  c.loss.align_root_epochs = 1 if stage == "teacher" else 0
  return c
