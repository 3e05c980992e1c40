"""X-as-Supervision: the two domains' data, the two-optimiser step, export.

`config.stage` picks the loss set (SPEC.md section 1):
  * `s1`: synthetic supervision only (all other weights are 0 and their
    terms are not computed).
  * `s2`: all losses, started from an S1 run with
    `--mode finetune --config.init_checkpoint=<s1 workdir>` (the detector and
    physique network come from S1, the discriminator starts fresh).

Each global step sees two domains:
  * the labelled *synthetic* domain (`config.synthetic`, e.g. the
    `synthetic` split of `synthetic_multiview` or the `surreal_pseudo`
    renders) with known joints;
  * the unlabelled *target* domain (`config.dataset`, e.g. Human3.6M): only
    its images, person masks and view count are used for training; its 3D
    ground truth serves evaluation only.
The V views of a target example are extra batch entries; every loss is the
sum over views of a per-view loss (as published), the synthetic images being
split into as many groups as the target has views.

One jitted step (`XSupTask.train_step`):
  1. one detector forward over the synthetic and target images together
     (train-mode BatchNorm: the statistics are those of the mixed batch),
     kept as a VJP so every loss reaches the detector through its outputs;
  2. discriminator update: LSGAN discriminator loss on real poses (sampled
     on the host from `xsup.data.synthetic.poses`, optionally rotated about
     the vertical axis) against the detector's current predictions, detached,
     all hypotheses;
  3. detector + physique update with the weighted synthetic supervision, mask
     reconstruction, physique reconstruction, symmetry and generator LSGAN
     losses. The generator loss uses the just-updated discriminator and sends
     gradient to the detector; the discriminator's parameters are not changed
     by it (SPEC.md section 3).
Both optimisers are Adam with betas (0.5, 0.999) and learning rates divided
by 10 at each epoch milestone. Loss weights, learning rates, milestones and
the patch scale enter the step as run-time values (`step_extras`), so
changing them never recompiles; the set of computed terms is fixed by which
weights of the config are non-zero.

Patch coordinates (the detector's targets and outputs: x, y in [-1, 1]
over the patch, z = relative depth / rect_mm) and their conversion to
millimetres are documented in `xsup.geometry.patch`. The symmetry and
adversarial losses use `patch_units_to_mm` with the nominal
`config.dataset.rect_3d_mm` (the target domain's depth is unknown).

Evaluation (`XSupTask.evaluate_split`) predicts and hands the predictions
to `xsup.evaluate.evaluate_image_predictions` (camera-millimetre errors of
the confident and best hypotheses, 2D error, left/right ambiguity,
triangulation, mean-pose baseline; `config.dataset.eval_protocol`
`"mpi_inf_3dhp"` adds that dataset's PCK / AUC). Image summaries
(`summary_images`, every `config.image_every_steps` steps) are drawn by
`xsup.train.xsup_summaries` for the first few target training, synthetic
and first-evaluation-split examples (view 0).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from xsup import evaluate as evaluate_lib
from xsup import skeleton as skel
from xsup.data import builder_configs
from xsup.data import pipeline
from xsup.data import sources
from xsup.data.synthetic import poses as poses_lib
from xsup.geometry import patch as patch_lib
from xsup.losses import xsup as losses
from xsup.models import detector as detector_lib
from xsup.models import discriminator as discriminator_lib
from xsup.models import physique as physique_lib
from xsup.models import precision
from xsup.models import render
from xsup.train import loop
from xsup.train import state as state_lib
from xsup.train import xsup_summaries

STAGES = ("s1", "s2")
# Loss terms computed on the target domain (need its forward pass).
TARGET_TERMS = ("mask", "physique", "symmetry", "generator", "discriminator")
LOSS_TERMS = ("synthetic",) + TARGET_TERMS

_H18 = skel.H36M18

Batch = pipeline.Batch


# ---------------------------------------------------------------------------
# Real poses of the prior (host-side numpy).


# Level camera looking along world +Y of a Z-up world: camera x = world x,
# camera y (down) = -world z, camera z (forward) = world y.
_LEVEL_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0],
                          [0.0, 1.0, 0.0]])


def sample_real_poses(rng: np.random.Generator, num: int,
                      pitch_range_deg: Sequence[float] = (0.0, 15.0)
                      ) -> np.ndarray:
  """Real poses for the discriminator, in its space.

  Procedural H36M-18 poses (`poses.sample_poses_h36m18`, random facing
  direction) seen by a camera tilted down by a uniform angle in
  `pitch_range_deg`.

  Returns:
    `[num, 18, 3]` float32 root-relative metres, camera axes (x right,
    y down, z away from the camera), like `losses.to_discriminator_space`.
  """
  world = poses_lib.sample_poses_h36m18(rng, num).astype(np.float64)
  pitch = np.deg2rad(rng.uniform(pitch_range_deg[0], pitch_range_deg[1],
                                 num))
  c, s = np.cos(pitch), np.sin(pitch)
  rot = np.zeros((num, 3, 3))
  rot[:, 0, 0] = 1.0
  rot[:, 1, 1], rot[:, 1, 2] = c, -s
  rot[:, 2, 1], rot[:, 2, 2] = s, c
  rot = rot @ _LEVEL_CAMERA
  cam = np.einsum("nij,nkj->nki", rot, world - world[:, :1])
  return (cam * 1e-3).astype(np.float32)


# ---------------------------------------------------------------------------
# Data.


# The builder config (name, or a config object with
# `data_config.builder_overrides` applied); see `xsup.data.builder_configs`.
builder_config = builder_configs.resolve


def open_image_split(data_config: ml_collections.ConfigDict, split: str,
                     features: Optional[Sequence[str]] = None
                     ) -> sources.TfdsSource:
  """Split `split` of the image dataset `data_config`, prepared (if needed)
  and streamed from disk (`features`: those to read; default all)."""
  builder = sources.prepare(data_config.name, builder_config(data_config),
                            data_config.get("data_dir"),
                            data_config.get("manual_dir"))
  return sources.TfdsSource(builder, split, features)


def _require(data: Batch, fields: Sequence[str], where: str) -> None:
  missing = [f for f in fields if f not in data]
  if missing:
    raise ValueError(f"{where}: missing features {missing}; has "
                     f"{sorted(data)}")


def _images(data: Batch, remove_background: bool, where: str) -> np.ndarray:
  """`[N, V, S, S, 3]` uint8, background zeroed where the mask is < 128."""
  _require(data, ("image",), where)
  image = np.asarray(data["image"])
  if image.ndim != 5 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"{where}: image must be uint8 [N, V, S, S, 3], got "
                     f"{image.dtype} {image.shape}")
  if image.shape[2] != image.shape[3]:
    raise ValueError(f"{where}: patches must be square, got {image.shape}")
  if remove_background:
    _require(data, ("mask",), where)
    image = image * (np.asarray(data["mask"]) >= 128).astype(np.uint8)
  return image


def _flat_views(a: np.ndarray) -> np.ndarray:
  """`[N, V, ...]` -> `[N * V, ...]`, example-major (entry n * V + v)."""
  return a.reshape((-1,) + a.shape[2:])


def target_batch(data: Batch, remove_background: bool,
                 where: str = "target train split") -> Batch:
  """Step inputs of the target domain: its images and person masks only.

  Returns `target_image` `[N * V, S, S, 3]` and `target_mask`
  `[N * V, S, S, 1]` uint8, views flattened example-major.
  """
  _require(data, ("image", "mask"), where)
  return {"target_image": _flat_views(_images(data, remove_background,
                                              where)),
          "target_mask": _flat_views(np.asarray(data["mask"], np.uint8))}


def synthetic_joints(data: Batch, image_size: int, rect_3d_mm: float,
                     where: str = "synthetic split"
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """Normalised targets `[N, V, 18, 3]` and patch widths `[N, V]` (mm).

  Depth comes from `joints_depth` (relative to the pelvis, mm; patch width
  `rect_3d_mm`) or from `joints_3d_camera` (patch width per sample from the
  crop affine, focal length and pelvis depth).
  """
  _require(data, ("joints_2d_patch",), where)
  j2d = np.asarray(data["joints_2d_patch"], np.float32)
  if j2d.ndim != 4 or j2d.shape[-2:] != (_H18.num_joints, 2):
    raise ValueError(f"{where}: joints_2d_patch must be [N, V, 18, 2] "
                     f"(h36m18), got {j2d.shape}")
  if "joints_depth" in data:
    depth = np.asarray(data["joints_depth"], np.float32)
    rect = np.full(j2d.shape[:2], rect_3d_mm, np.float32)
  elif "joints_3d_camera" in data:
    _require(data, ("affine", "focal"), where)
    cam = np.asarray(data["joints_3d_camera"], np.float32)
    depth = cam[..., 2] - cam[..., :1, 2]
    rect = patch_lib.patch_rect_mm(data["affine"], data["focal"],
                                   cam[..., 0, 2], image_size)
  else:
    raise ValueError(f"{where}: needs joints_depth or joints_3d_camera for "
                     f"the depth targets; has {sorted(data)}")
  return patch_lib.normalise_patch_joints(j2d, depth, image_size, rect), rect


def synthetic_batch(data: Batch, remove_background: bool, rect_3d_mm: float,
                    where: str = "synthetic split") -> Batch:
  """Step inputs of the labelled domain: `synthetic_image`
  `[N * V, S, S, 3]` uint8 and `synthetic_joints` `[N * V, 18, 3]`
  normalised patch coordinates."""
  image = _images(data, remove_background, where)
  joints, _ = synthetic_joints(data, image.shape[2], rect_3d_mm, where)
  return {"synthetic_image": _flat_views(image),
          "synthetic_joints": _flat_views(joints)}


def synthetic_features(available: Sequence[str], remove_background: bool
                       ) -> Tuple[str, ...]:
  """The features of a labelled split that training reads."""
  wanted = ["image", "joints_2d_patch"]
  if remove_background:
    wanted.append("mask")
  if "joints_depth" in available:
    wanted.append("joints_depth")
  else:
    wanted += ["joints_3d_camera", "affine", "focal"]
  return tuple(f for f in wanted if f in available)


def mean_pose_mm(data: Batch, image_size: int, rect_3d_mm: float,
                 where: str = "synthetic split") -> np.ndarray:
  """`[18, 3]` mean root-relative pose of labelled examples (mm).

  Normalised targets times (rect / 2, rect / 2, rect) per sample: camera
  axes, x and y at the pelvis depth.
  """
  joints, rect = synthetic_joints(data, image_size, rect_3d_mm, where)
  joints = joints.astype(np.float64)
  mm = joints * rect.astype(np.float64)[..., None, None] * np.array(
      [0.5, 0.5, 1.0])
  mm = mm - mm[..., :1, :]
  return mm.reshape(-1, *mm.shape[-2:]).mean(0)


BASELINE_EXAMPLES = 4096  # Labelled examples averaged by `baseline_pose`.


def eval_batch(data: Batch, remove_background: bool,
               where: str = "evaluation split") -> Batch:
  """An evaluation chunk: `image` with the background removed (when
  configured), every label kept, `mask` dropped."""
  out = {k: v for k, v in data.items() if k not in ("image", "mask")}
  out["image"] = _images(data, remove_background, where)
  return out


class _Subset:
  """Examples `indices` of a source, as a source."""

  def __init__(self, source, indices: np.ndarray):
    self.source, self.indices = source, np.asarray(indices)
    self.description = source.description

  def __len__(self) -> int:
    return len(self.indices)

  def read(self, indices: Sequence[int]) -> Batch:
    return self.source.read(self.indices[np.asarray(indices, np.int64)])


class StepBatches:
  """Picklable `global step -> process-local batch` of the XSup step.

  The target and synthetic batches come from their sources and samplers;
  the discriminator's real poses (when it trains) are drawn per global step
  from `(seed, step)`, each process keeping its rows, so a batch depends on
  the step alone (any number of processes or grain workers, any resume
  point).
  """

  def __init__(self, target: pipeline.SourceBatches,
               synthetic: pipeline.SourceBatches,
               real_poses_per_step: int = 0, seed: int = 0,
               pitch_range_deg: Sequence[float] = (0.0, 15.0)):
    self.target = target
    self.synthetic = synthetic
    self.real_poses_per_step = int(real_poses_per_step)
    self.seed = int(seed)
    self.pitch_range_deg = tuple(pitch_range_deg)

  def __call__(self, step: int) -> Batch:
    batch = dict(self.target(step))
    batch.update(self.synthetic(step))
    if self.real_poses_per_step:
      rng = np.random.default_rng([self.seed, 0x5EA1, int(step)])
      real = sample_real_poses(rng, self.real_poses_per_step,
                               self.pitch_range_deg)
      sampler = self.target.sampler
      local = self.real_poses_per_step // sampler.process_count
      start = sampler.process_index * local
      batch["real_poses"] = real[start:start + local]
    return batch

  def identity(self) -> Dict[str, Any]:
    return {"target": self.target.identity(),
            "synthetic": self.synthetic.identity(),
            "real_poses_per_step": self.real_poses_per_step}


# ---------------------------------------------------------------------------
# Models, optimisers, losses.


def detector_kwargs(model_config: ml_collections.ConfigDict
                    ) -> Dict[str, Any]:
  """JSON-serialisable `IntegralDetector` fields (export uses them)."""
  return dict(resnet_depth=model_config.resnet_depth,
              resnet_width=model_config.get("resnet_width", 64),
              num_joints=_H18.num_joints, depth_dim=model_config.depth_dim,
              num_hypo=model_config.num_hypo,
              neighbor_size=model_config.neighbor_size,
              head_filters=model_config.head_filters,
              head_layers=model_config.head_layers)


def build_models(model_config: ml_collections.ConfigDict):
  """(detector, physique network, discriminator) flax modules."""
  dtype = precision.compute_dtype(model_config.get("dtype", "float32"))
  det = detector_lib.IntegralDetector(**detector_kwargs(model_config),
                                      dtype=dtype)
  phys = physique_lib.PhysiqueNet(
      features=tuple(model_config.physique_features))
  disc = discriminator_lib.build_discriminator(
      model_config.discriminator,
      **dict(model_config.get("discriminator_kwargs") or {}))
  return det, phys, disc


def milestone_learning_rate(base_lr: jax.Array, step: jax.Array,
                            milestones: jax.Array, decay: jax.Array
                            ) -> jax.Array:
  """base_lr * decay ** (number of milestones (steps) reached by `step`)."""
  passed = jnp.sum((step >= milestones).astype(jnp.float32))
  return base_lr * decay ** passed


def sum_over_groups(fn: Callable[..., jax.Array], num_groups: int,
                    *arrays: jax.Array) -> jax.Array:
  """Sum over groups of `fn(*group)`; entry i belongs to group i % G.

  With example-major flattened views (entry = example * V + view) and
  G = V, the groups are the views.
  """
  def split(a):
    if a.shape[0] % num_groups:
      raise ValueError(f"xsup: {a.shape[0]} entries do not split into "
                       f"{num_groups} view groups")
    return a.reshape((a.shape[0] // num_groups, num_groups) + a.shape[1:])
  return jnp.sum(jax.vmap(fn, in_axes=1)(*[split(a) for a in arrays]))


def discriminator_objective(disc: Any, disc_params: Any, real: jax.Array,
                            fake: jax.Array, key: jax.Array,
                            num_views: int) -> Tuple[jax.Array, Dict]:
  """LSGAN discriminator loss summed over views; the fakes are detached.

  Args:
    disc: discriminator module.
    disc_params: its params.
    real: `[N_r, J, 3]` real poses (discriminator space).
    fake: `[N, K, J, 3]` predicted poses, all hypotheses (discriminator
      space); gradients do not flow into them. N_r and N are multiples of
      `num_views`.
    key: dropout key.
    num_views: V (entries are example-major).

  Returns:
    `(loss, {"score/real", "score/fake"})`.
  """
  n, k = fake.shape[:2]
  fake = jax.lax.stop_gradient(fake)
  poses = jnp.concatenate([real, fake.reshape((n * k,) + fake.shape[2:])])
  scores = disc.apply({"params": disc_params}, poses, train=True,
                      rngs={"dropout": key})
  num_real = real.shape[0]
  real_s = scores[:num_real]
  fake_s = scores[num_real:].reshape(n, k, 1)
  loss = sum_over_groups(losses.lsgan_discriminator_loss, num_views, real_s,
                         fake_s)
  return loss, {"score/real": jnp.mean(real_s),
                "score/fake": jnp.mean(fake_s)}


def generator_objective(disc: Any, disc_params: Any, fake: jax.Array,
                        key: jax.Array, num_views: int) -> jax.Array:
  """LSGAN generator loss summed over views (gradient reaches `fake`).

  Args: as `discriminator_objective`; `disc_params` are constants here.
  """
  n, k = fake.shape[:2]
  scores = disc.apply({"params": jax.lax.stop_gradient(disc_params)},
                      fake.reshape((n * k,) + fake.shape[2:]), train=True,
                      rngs={"dropout": key}).reshape(n, k, 1)
  return sum_over_groups(losses.lsgan_generator_loss, num_views, scores)


class XSupTask(loop.Task):
  """X-as-Supervision stage S1 or S2 on any pair of image builders."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None,
               train_data: Optional[Dict[str, Batch]] = None,
               eval_data: Optional[Dict[str, Batch]] = None):
    """Args:
      config: see `xsup.config_defaults.xsup`.
      mesh: device mesh (default: `loop.make_mesh(config)`).
      train_data: raw arrays to use instead of loading, as
        `{"target": target train split, "synthetic": labelled split}`
        (features of `xsup/data/builders/image_features.py`).
      eval_data: split name -> raw arrays of a target evaluation split.
    """
    if config.stage not in STAGES:
      raise ValueError(f"config.stage={config.stage!r}; expected one of "
                       f"{STAGES}")
    self.config = config
    self.mesh = mesh if mesh is not None else loop.make_mesh(config)
    self.detector, self.physique, self.discriminator = build_models(
        config.model)
    self.weights = {t: float(config.loss[t]) for t in LOSS_TERMS}
    bad = [t for t, w in self.weights.items() if w < 0]
    if bad:
      raise ValueError(f"config.loss weights must be >= 0: {bad}")
    self.eval_protocol = config.dataset.get("eval_protocol") or "h36m"
    if self.eval_protocol not in evaluate_lib.EVAL_PROTOCOLS:
      raise ValueError(f"config.dataset.eval_protocol={self.eval_protocol!r};"
                       f" expected one of {evaluate_lib.EVAL_PROTOCOLS}")
    self._raw_train = dict(train_data or {})
    self._raw_eval = dict(eval_data or {})
    self._eval_sources: Dict[str, Any] = {}

  # Data ---------------------------------------------------------------
  def _source(self, data_config: ml_collections.ConfigDict, split: str,
              raw: Optional[Batch],
              features: Optional[Sequence[str]] = None):
    """In-memory `raw` arrays when given, else the streamed split; checks
    that it has `features`."""
    if raw is not None:
      keep = {k: v for k, v in raw.items()
              if features is None or k in features}
      source = sources.ArraySource(keep, f"arrays of {data_config.name} "
                                   f"split {split!r}")
    else:
      source = open_image_split(data_config, split, features)
    _require(source.feature_shapes, features or (), source.description)
    return source

  @functools.cached_property
  def target_source(self):
    """The target domain's training split (images and masks only)."""
    return self._source(self.config.dataset, self.config.dataset.train_split,
                        self._raw_train.get("target"), ("image", "mask"))

  @functools.cached_property
  def synthetic_source(self):
    """The labelled domain's split (images and joint labels)."""
    cfg = self.config.synthetic
    raw = self._raw_train.get("synthetic")
    if raw is not None:
      available = list(raw)
    else:
      available = list(open_image_split(cfg, cfg.split).feature_shapes)
    return self._source(cfg, cfg.split, raw,
                        synthetic_features(available, cfg.remove_background))

  def _image_shape(self, source, where: str) -> Tuple[int, ...]:
    """`(V, S, S, 3)` of `source`'s examples (read from its first example
    when the feature leaves V free, e.g. splits with different views)."""
    shape = tuple(source.feature_shapes.get("image") or ())
    if shape and None in shape:
      shape = tuple(np.shape(source.read([0])["image"])[1:])
    if len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]:
      raise ValueError(f"{where}: image must be [V, S, S, 3] per example "
                       f"(square patches), got {shape}")
    return shape

  @functools.cached_property
  def _target_shape(self) -> Tuple[int, ...]:
    return self._image_shape(self.target_source,
                             self.target_source.description)

  @property
  def image_size(self) -> int:
    return int(self._target_shape[1])

  @property
  def num_views(self) -> int:
    """V of the target domain (views of one example)."""
    return int(self._target_shape[0])

  @functools.cached_property
  def synthetic_views(self) -> int:
    return int(self._image_shape(self.synthetic_source,
                                 self.synthetic_source.description)[0])

  @property
  def synthetic_batch_size(self) -> int:
    """Synthetic examples per global step (default: B * V / V_synthetic)."""
    size = int(self.config.synthetic.get("batch_size") or 0)
    views = self.synthetic_views
    if not size:
      if (self.config.batch_size * self.num_views) % views:
        raise ValueError(
            f"config.batch_size * {self.num_views} target views is not a "
            f"multiple of the {views} synthetic views; set "
            "config.synthetic.batch_size")
      size = self.config.batch_size * self.num_views // views
    if (size * views) % self.num_views:
      raise ValueError(f"config.synthetic.batch_size={size} x {views} views "
                       f"must split into {self.num_views} view groups")
    return size

  def eval_source(self, split: str):
    """Evaluation split `split` of the target domain (streamed)."""
    if split not in self._eval_sources:
      self._eval_sources[split] = self._source(
          self.config.dataset, split, self._raw_eval.get(split))
    return self._eval_sources[split]

  @functools.cached_property
  def step_batches(self) -> StepBatches:
    """The picklable batch of each global step (see `batch_at`)."""
    cfg = self.config
    target = pipeline.SourceBatches(
        self.target_source,
        pipeline.GlobalBatchSampler(len(self.target_source), cfg.batch_size,
                                    seed=cfg.seed),
        functools.partial(target_batch,
                          remove_background=cfg.dataset.remove_background,
                          where=self.target_source.description))
    synthetic = pipeline.SourceBatches(
        self.synthetic_source,
        pipeline.GlobalBatchSampler(len(self.synthetic_source),
                                    self.synthetic_batch_size,
                                    seed=cfg.seed + 1,
                                    setting="config.synthetic.batch_size"),
        functools.partial(synthetic_batch,
                          remove_background=cfg.synthetic.remove_background,
                          rect_3d_mm=cfg.synthetic.rect_3d_mm,
                          where=self.synthetic_source.description))
    real = (cfg.batch_size * self.num_views
            if self.weights["discriminator"] > 0 else 0)
    return StepBatches(target, synthetic, real, cfg.seed,
                       tuple(cfg.prior.pitch_range_deg))

  @property
  def steps_per_epoch(self) -> int:
    return self.step_batches.target.sampler.steps_per_epoch

  def batch_at(self, step: int) -> Batch:
    """Process-local batch of global step `step` (deterministic).

    Views are flattened into the batch axis, example-major (entry
    example * V + view):
      target_image `[B * V, S, S, 3]` uint8, target_mask `[B * V, S, S, 1]`
      uint8, synthetic_image `[B_s * V_s, S, S, 3]` uint8,
      synthetic_joints `[B_s * V_s, 18, 3]` normalised patch coordinates and,
      when the discriminator trains, real_poses `[B * V, 18, 3]` metres
      (discriminator space). B are this process's rows of the global batch.
    """
    return self.step_batches(step)

  def train_batches(self, start_step: int) -> pipeline.StepIterator:
    return pipeline.training_iterator(
        self.step_batches, self.target_source, start_step,
        self.config.get("data_workers"), self.config.get("data_prefetch", 2))

  # State --------------------------------------------------------------
  @functools.cached_property
  def adam(self) -> optax.GradientTransformation:
    """Adam's moment scaling (b1, b2, eps); the learning rate is applied in the
    step (`milestone_learning_rate`), so both optimisers share it."""
    opt = self.config.optimizer
    return optax.scale_by_adam(b1=opt.b1, b2=opt.b2,
                               eps=opt.get("eps", 1e-8))

  def init_state(self, key: jax.Array) -> state_lib.TrainState:
    size = self.image_size
    k_det, k_phys, k_disc = jax.random.split(key, 3)
    det_vars = self.detector.init(k_det, jnp.zeros((1, size, size, 3)),
                                  train=False)
    phys_vars = self.physique.init(k_phys, jnp.zeros((1, size, size, 1)),
                                   train=False)
    disc_vars = self.discriminator.init(
        {"params": k_disc, "dropout": k_disc},
        jnp.zeros((2, _H18.num_joints, 3)), train=False)
    if set(disc_vars) != {"params"}:
      raise ValueError(f"Discriminator {self.config.model.discriminator!r} "
                       "has state besides params (e.g. BatchNorm); choose "
                       "one without")
    det_params = det_vars["params"]
    det_stats = det_vars["batch_stats"]
    path = self.config.model.get("pretrained_backbone")
    if path and self.config.model.get("resnet_width", 64) != 64:
      raise ValueError(
          f"config.model.pretrained_backbone={path!r} needs the published "
          f"ResNet width 64, got config.model.resnet_width="
          f"{self.config.model.resnet_width}")
    if path:
      from xsup.models import pretrained  # pylint: disable=g-import-not-at-top
      det_params, det_stats = pretrained.load_torchvision_resnet(
          path, det_params, det_stats)
    params = {"detector": det_params, "physique": phys_vars["params"],
              "discriminator": disc_vars["params"]}
    return state_lib.TrainState(
        step=jnp.zeros((), jnp.int32), params=params,
        batch_stats={"detector": det_stats,
                     "physique": phys_vars["batch_stats"]},
        opt_state={
            "generator": self.adam.init({"detector": params["detector"],
                                         "physique": params["physique"]}),
            "discriminator": self.adam.init(params["discriminator"])})

  def init_from_checkpoint(self, state, restored):
    """S2 start: detector (+ physique) from S1, fresh discriminator/Adam."""
    source = f"config.init_checkpoint={self.config.init_checkpoint!r}"

    def matching(name, collection):
      tree = restored.get(collection, {}).get(name)
      target = getattr(state, collection)[name]
      if tree is None:
        return None
      got = jax.tree.map(lambda x: tuple(np.shape(x)), tree)
      want = jax.tree.map(lambda x: tuple(x.shape), target)
      if got != want:
        raise ValueError(
            f"{source}: its {collection}/{name} does not match config.model "
            "(ResNet depth, depth_dim, num_hypo, head or physique features)")
      return jax.tree.map(lambda a, t: jnp.asarray(a, t.dtype), tree, target)

    params, stats = dict(state.params), dict(state.batch_stats)
    for name in ("detector", "physique"):
      p, s = matching(name, "params"), matching(name, "batch_stats")
      if p is not None and s is not None:
        params[name], stats[name] = p, s
      elif name == "detector":
        raise ValueError(f"{source} holds no detector params and "
                         "batch_stats (not an xsup run?)")
      else:
        logging.info("%s has no physique network; it starts fresh", source)
    return state.replace(params=params, batch_stats=stats)

  # Step -----------------------------------------------------------------
  def render_lines(self, joints_2d: jax.Array) -> jax.Array:
    """The line mask of the mask and physique losses (`config.render`).

    Args:
      joints_2d: `[B, 18, 2]` normalised patch (x, y) (hypothesis 0).

    Returns:
      `[B, S, S, 1]` in [0, 1].
    """
    cfg = self.config.render
    return render.render_skeleton(
        joints_2d, self.image_size,
        links=render.line_links(cfg.extension_links),
        body_width=cfg.body_width, arm_width_scale=cfg.arm_width_scale)

  def _active(self, term: str) -> bool:
    """Whether `term` is computed (static: weight > 0 in the config)."""
    return self.weights[term] > 0

  @property
  def _target_active(self) -> bool:
    return any(self._active(t) for t in TARGET_TERMS)

  def step_extras(self) -> Dict[str, Any]:
    """Run-time hyperparameters of the step (changing them never
    recompiles; which terms exist is fixed by the config's non-zero
    weights)."""
    cfg = self.config
    milestones = np.array([int(round(m * self.steps_per_epoch))
                           for m in cfg.optimizer.milestones_epochs],
                          np.int32)
    hparams = {
        "weights": {t: np.float32(w) for t, w in self.weights.items()},
        "symmetry_bone": np.float32(cfg.loss.symmetry_bone),
        "symmetry_keypoint": np.float32(cfg.loss.symmetry_keypoint),
        "units_to_mm": patch_lib.patch_units_to_mm(cfg.dataset.rect_3d_mm,
                                                   self.image_size),
        "lr_generator": np.float32(cfg.optimizer.generator_lr),
        "lr_discriminator": np.float32(cfg.optimizer.discriminator_lr),
        "milestones": milestones,
        "decay": np.float32(cfg.optimizer.decay),
    }
    return {"hparams": jax.device_put(hparams,
                                      state_lib.replicated(self.mesh))}

  def _generator_loss(self, phys_params, joints, num_synthetic, phys_stats,
                      disc_params, batch, key, hparams):
    """Weighted detector + physique objective and its unweighted terms.

    Args:
      phys_params: physique network params (differentiated).
      joints: `[N_s + N_t, K, 18, 3]` detector outputs, synthetic images
        first (differentiated; the detector's gradient follows by VJP).
      num_synthetic: N_s (static).
      phys_stats: physique BatchNorm statistics.
      disc_params: the (already updated) discriminator params, constant.
      batch: the step's batch.
      key: dropout key of the discriminator.
      hparams: `step_extras()["hparams"]`.
    """
    cfg, w = self.config, hparams["weights"]
    v = self.num_views
    terms = {t: jnp.zeros((), jnp.float32) for t in LOSS_TERMS}
    new_phys_stats = phys_stats
    if self._active("synthetic"):
      terms["synthetic"] = sum_over_groups(
          losses.synthetic_supervision_loss, v, joints[:num_synthetic],
          batch["synthetic_joints"])
    if self._target_active:
      target_joints = joints[num_synthetic:]
      masks = batch["target_mask"].astype(jnp.float32) / 255.0
      if self._active("mask") or self._active("physique"):
        rendered = self.render_lines(target_joints[:, 0, :, :2])
      if self._active("mask"):
        terms["mask"] = sum_over_groups(
            functools.partial(losses.mask_reconstruction_loss,
                              use_clip=cfg.loss.mask_use_clip,
                              reference_clip=cfg.loss.mask_reference_clip),
            v, rendered, masks)
      if self._active("physique"):
        body, upd = self.physique.apply(
            {"params": phys_params, "batch_stats": phys_stats}, rendered,
            train=True, mutable=["batch_stats"])
        new_phys_stats = upd["batch_stats"]
        terms["physique"] = sum_over_groups(
            losses.physique_reconstruction_loss, v, body, masks)
      if self._active("symmetry"):
        terms["symmetry"] = sum_over_groups(
            functools.partial(
                losses.symmetry_loss,
                bone_weight=hparams["symmetry_bone"],
                keypoint_weight=hparams["symmetry_keypoint"],
                reference_pairs=cfg.loss.symmetry_reference_pairs),
            v, target_joints * hparams["units_to_mm"])
      if self._active("generator"):
        fake = losses.to_discriminator_space(
            target_joints * hparams["units_to_mm"], units="mm")
        if not cfg.loss.generator_reaches_detector:
          fake = jax.lax.stop_gradient(fake)  # The published quirk.
        terms["generator"] = generator_objective(
            self.discriminator, disc_params, fake, key, v)
    total = jnp.zeros((), jnp.float32)
    for t in LOSS_TERMS:
      if t != "discriminator" and self._active(t):
        total = total + w[t] * terms[t]
    return total, (new_phys_stats, terms)

  def train_step(self, state, batch, key, hparams):
    """One step: discriminator update, then detector + physique update.

    Args:
      state: `TrainState` (params/batch_stats/opt_state dicts, see
        `init_state`).
      batch: `batch_at`'s arrays, placed on the mesh.
      key: this step's PRNG key.
      hparams: `step_extras()["hparams"]`.

    Returns:
      `(new state, scalar metrics)`.
    """
    w = hparams["weights"]
    k_disc, k_gen, k_rot = jax.random.split(key, 3)
    params, stats = state.params, state.batch_stats
    metrics = {}

    # One detector pass over the synthetic and the target images (the
    # BatchNorm statistics are those of the whole mixed batch), kept as a
    # VJP: every loss below reaches the detector through its outputs.
    parts = []
    if self._active("synthetic"):
      parts.append(batch["synthetic_image"])
    if self._target_active:
      parts.append(batch["target_image"])
    if not parts:
      raise ValueError("config.loss: every weight is 0, nothing to train")
    num_synthetic = (batch["synthetic_image"].shape[0]
                     if self._active("synthetic") else 0)
    images = jnp.concatenate(parts).astype(jnp.float32) / 255.0

    def forward(det_params):
      out, upd = self.detector.apply(
          {"params": det_params, "batch_stats": stats["detector"]}, images,
          train=True, mutable=["batch_stats"])
      return out["joints"], upd["batch_stats"]

    joints, det_vjp, det_stats = jax.vjp(forward, params["detector"],
                                         has_aux=True)

    # 1. Discriminator update (first), against the detached predictions.
    disc_params = params["discriminator"]
    disc_opt = state.opt_state["discriminator"]
    disc_loss = jnp.zeros((), jnp.float32)
    disc_grad_norm = jnp.zeros((), jnp.float32)
    lr_d = milestone_learning_rate(hparams["lr_discriminator"], state.step,
                                   hparams["milestones"], hparams["decay"])
    if self._active("discriminator"):
      real = batch["real_poses"]
      if self.config.prior.rotation_deg > 0:
        real = losses.random_vertical_rotation(
            k_rot, real, self.config.prior.rotation_deg, up_axis="y")
      fake = losses.to_discriminator_space(
          joints[num_synthetic:] * hparams["units_to_mm"], units="mm")

      def disc_fn(p):
        loss, aux = discriminator_objective(self.discriminator, p, real,
                                            fake, k_disc, self.num_views)
        return w["discriminator"] * loss, (loss, aux)

      (_, (disc_loss, disc_aux)), disc_grads = jax.value_and_grad(
          disc_fn, has_aux=True)(disc_params)
      updates, disc_opt = self.adam.update(disc_grads, disc_opt, disc_params)
      disc_params = jax.tree.map(lambda p, u: p - lr_d * u, disc_params,
                                 updates)
      disc_grad_norm = state_lib.tree_norm(disc_grads)
      metrics.update(disc_aux)

    # 2. Detector + physique update, through the updated discriminator.
    loss_fn = functools.partial(
        self._generator_loss, num_synthetic=num_synthetic,
        phys_stats=stats["physique"], disc_params=disc_params, batch=batch,
        key=k_gen, hparams=hparams)
    (total, (phys_stats, terms)), (phys_grads, joint_grads) = (
        jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
            params["physique"], joints))
    (det_grads,) = det_vjp(joint_grads)
    gen_params = {"detector": params["detector"],
                  "physique": params["physique"]}
    grads = {"detector": det_grads, "physique": phys_grads}
    updates, gen_opt = self.adam.update(grads, state.opt_state["generator"],
                                        gen_params)
    lr_g = milestone_learning_rate(hparams["lr_generator"], state.step,
                                   hparams["milestones"], hparams["decay"])
    gen_params = jax.tree.map(lambda p, u: p - lr_g * u, gen_params, updates)

    terms["discriminator"] = disc_loss
    metrics.update(terms)
    metrics.update({
        "loss": total,
        "lr": lr_g,
        "grad_norm/detector": state_lib.tree_norm(det_grads),
        "grad_norm/physique": state_lib.tree_norm(phys_grads),
        "grad_norm/discriminator": disc_grad_norm,
        "param_norm/detector": state_lib.tree_norm(gen_params["detector"]),
    })
    new_state = state.replace(
        step=state.step + 1,
        params={"detector": gen_params["detector"],
                "physique": gen_params["physique"],
                "discriminator": disc_params},
        batch_stats={"detector": det_stats, "physique": phys_stats},
        opt_state={"generator": gen_opt, "discriminator": disc_opt})
    return new_state, loop.mean_metrics(metrics)

  # Evaluation ---------------------------------------------------------
  @functools.cached_property
  def _predict(self):
    def predict(variables, images):
      out = self.detector.apply(variables, images.astype(jnp.float32) / 255.0,
                                train=False)
      return out["joints"], out["depth_marginals"]
    return jax.jit(predict)

  def predict_outputs(self, variables, images: np.ndarray
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 `[N, S, S, 3]` -> (normalised joints `[N, K, 18, 3]`, depth
    marginals `[N, 18, D]`), in chunks of `config.eval_batch_size`."""
    chunk = int(self.config.get("eval_batch_size") or 64)
    return loop.run_chunked(self._predict, variables, images, chunk,
                            pad_to_batch=True)

  def predict(self, variables, images: np.ndarray) -> np.ndarray:
    """uint8 `[N, S, S, 3]` -> normalised joints `[N, K, 18, 3]`."""
    return self.predict_outputs(variables, images)[0]

  @functools.cached_property
  def baseline_pose(self) -> np.ndarray:
    """`[18, 3]` mean root-relative pose of the labelled domain (mm), over
    up to `BASELINE_EXAMPLES` evenly spaced examples of its split."""
    source = self.synthetic_source
    n = len(source)
    idx = np.unique(np.linspace(0, n - 1, min(n, BASELINE_EXAMPLES)).astype(
        np.int64))
    data = sources.read_all(_Subset(source, idx), chunk=256)
    size = self._image_shape(source, source.description)[1]
    return mean_pose_mm(data, size, self.config.synthetic.rect_3d_mm,
                        source.description)

  def evaluate(self, state) -> Dict[str, Dict[str, Any]]:
    variables = {"params": state.params["detector"],
                 "batch_stats": state.batch_stats["detector"]}
    return {split: self.evaluate_split(variables, split)
            for split in self.config.dataset.eval_splits}

  def predict_split(self, variables, split: str) -> Tuple[np.ndarray, Batch]:
    """Streams evaluation split `split` through the detector.

    Chunks of `config.eval_batch_size` images (whole examples) are read,
    predicted and dropped; only predictions and labels are kept.

    Returns:
      `(pred, labels)`: `[N, V, K, 18, 3]` normalised patch coordinates,
      and every feature of the split but `image` and `mask`.
    """
    source = self.eval_source(split)
    views, size = self._image_shape(source, source.description)[:2]
    chunk = max(1, int(self.config.get("eval_batch_size") or 64) // views)
    transform = functools.partial(
        eval_batch, remove_background=self.config.dataset.remove_background,
        where=source.description)
    preds, labels = [], []
    for batch, valid in pipeline.eval_chunks(source, chunk, transform):
      images = batch.pop("image")
      pred = self.predict(variables, _flat_views(images))
      preds.append(pred.reshape(images.shape[:2] + pred.shape[1:])[:valid])
      labels.append({k: v[:valid] for k, v in batch.items()})
    labels = {k: np.concatenate([part[k] for part in labels])
              for k in labels[0]}
    labels["image_size"] = size
    return np.concatenate(preds), labels

  def score_split(self, pred: np.ndarray, labels: Batch) -> Dict[str, Any]:
    """Metrics of predictions `[N, V, K, 18, 3]` of a split's `labels`
    (`xsup.evaluate.evaluate_image_predictions`)."""
    labels = dict(labels)
    size = int(labels.pop("image_size", 0)) or int(
        np.shape(labels.get("image"))[2])
    return evaluate_lib.evaluate_image_predictions(
        pred, labels, self.baseline_pose, protocol=self.eval_protocol,
        swap=bool(self.config.get("eval_swap_left_right", True)),
        image_size=size)

  def evaluate_split(self, variables, split: str) -> Dict[str, Any]:
    """Metrics of the detector on evaluation split `split`."""
    return self.score_split(*self.predict_split(variables, split))

  # Image summaries ----------------------------------------------------
  @functools.cached_property
  def summary_examples(self) -> Tuple[xsup_summaries.SummaryExamples, ...]:
    """The fixed examples of the image summaries (view 0 of the first
    `xsup_summaries.SUMMARY_EXAMPLES` target training, synthetic and, when
    configured, first-evaluation-split examples)."""
    num = xsup_summaries.SUMMARY_EXAMPLES
    size = self.image_size
    cfg = self.config

    def first(source):
      return source.read(range(min(num, len(source))))

    raw = first(self.target_source)
    images = _images(raw, cfg.dataset.remove_background,
                     self.target_source.description)
    groups = [xsup_summaries.SummaryExamples(
        "target_train", images[:, 0],
        np.asarray(raw["mask"])[:, 0, ..., 0].astype(np.float32) / 255.0,
        None, np.full(len(images), cfg.dataset.rect_3d_mm, np.float32))]
    raw = first(self.synthetic_source)
    images = _images(raw, cfg.synthetic.remove_background,
                     self.synthetic_source.description)
    labels, rect = synthetic_joints(raw, images.shape[2],
                                    cfg.synthetic.rect_3d_mm)
    groups.append(xsup_summaries.SummaryExamples(
        "synthetic", images[:, 0], None, labels[:, 0], rect[:, 0]))
    splits = tuple(cfg.dataset.eval_splits)
    if splits:
      source = self.eval_source(splits[0])
      data = first(source)
      labels, rect = synthetic_joints(data, size, cfg.dataset.rect_3d_mm,
                                      source.description)
      images = _images(data, cfg.dataset.remove_background,
                       source.description)
      groups.append(xsup_summaries.SummaryExamples(
          f"eval_{splits[0]}", images[:, 0], None, labels[:, 0], rect[:, 0]))
    return tuple(groups)

  @functools.cached_property
  def _render_lines_jit(self):
    return jax.jit(self.render_lines)

  def summary_images(self, state) -> Dict[str, np.ndarray]:
    """Figures of the fixed `summary_examples` for TensorBoard
    (`xsup.train.xsup_summaries.summary_images`: per group, the predicted
    skeleton, line mask, 3D hypotheses and depth marginals)."""
    variables = {"params": state.params["detector"],
                 "batch_stats": state.batch_stats["detector"]}
    return xsup_summaries.summary_images(
        self.summary_examples,
        functools.partial(self.predict_outputs, variables),
        self._render_lines_jit, self.image_size)

  def export_spec(self, state):
    return ("detector", detector_kwargs(self.config.model),
            {"params": state.params["detector"],
             "batch_stats": state.batch_stats["detector"]})

  def export_metadata(self) -> Dict[str, Any]:
    """Inference settings of the detector export (`xsup.predict`): input
    patch side, the nominal patch width at the pelvis (mm) of the target
    domain, the joint layout, and whether training zeroed backgrounds."""
    return {"input": "image", "image_size": self.image_size,
            "rect_3d_mm": float(self.config.dataset.rect_3d_mm),
            "skeleton": _H18.name,
            "remove_background": bool(self.config.dataset.remove_background)}


def get_task(config: ml_collections.ConfigDict) -> XSupTask:
  return XSupTask(config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  return loop.train_and_evaluate(get_task(config), config, workdir)
