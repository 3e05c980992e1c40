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

import dataclasses
import functools
import hashlib
import json
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from xsup import evaluate as evaluate_lib
from xsup import skeleton as skel
from xsup.data import pipeline
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


def _override_name(base: str, overrides: Dict[str, Any]) -> str:
  digest = hashlib.sha1(json.dumps(overrides, sort_keys=True,
                                   default=str).encode()).hexdigest()[:8]
  return f"{base}_{digest}"


def builder_config(data_config: ml_collections.ConfigDict):
  """The builder config (name, or a config object with overrides).

  `data_config.builder_overrides` (field -> value) replaces fields of the
  named builder config, e.g. subjects or frame counts; the result gets a
  name derived from the overrides so prepared data never collides with the
  plain config's.
  """
  overrides = dict(data_config.get("builder_overrides") or {})
  if not overrides:
    return data_config.config
  cls = pipeline.builder_module(data_config.name).Builder
  configs = {c.name: c for c in cls.BUILDER_CONFIGS}
  if data_config.config not in configs:
    raise ValueError(f"Dataset {data_config.name}: unknown config "
                     f"{data_config.config!r}; known: {sorted(configs)}")
  base = configs[data_config.config]
  fields = {f.name for f in dataclasses.fields(base)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"Dataset {data_config.name}/{data_config.config}: "
                     f"builder_overrides {unknown} are not config fields")
  values = {k: tuple(v) if isinstance(v, list) else v
            for k, v in overrides.items()}
  return dataclasses.replace(base, name=_override_name(base.name, values),
                             **values)


def load_image_split(data_config: ml_collections.ConfigDict,
                     split: str) -> Batch:
  """Reads split `split` of the image dataset described by `data_config`."""
  return pipeline.load_split(data_config.name, split,
                             builder_config(data_config),
                             data_config.get("data_dir"),
                             data_config.get("manual_dir"))


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


def prepare_target(data: Batch, remove_background: bool,
                   where: str = "target train split") -> Batch:
  """Training arrays of the target domain: images and person masks only."""
  _require(data, ("image", "mask"), where)
  return {"image": _images(data, remove_background, where),
          "mask": np.asarray(data["mask"], np.uint8)}


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


def prepare_synthetic(data: Batch, remove_background: bool,
                      rect_3d_mm: float, where: str = "synthetic split"
                      ) -> Batch:
  """Training arrays of the labelled domain: images and joint targets."""
  image = _images(data, remove_background, where)
  joints, rect = synthetic_joints(data, image.shape[2], rect_3d_mm, where)
  return {"image": image, "joints": joints, "rect_mm": rect}


def mean_pose_mm(prepared_synthetic: Batch) -> np.ndarray:
  """`[18, 3]` mean root-relative pose of the labelled domain (mm).

  Normalised targets times (rect / 2, rect / 2, rect) per sample: camera
  axes, x and y at the pelvis depth.
  """
  joints = prepared_synthetic["joints"].astype(np.float64)
  rect = prepared_synthetic["rect_mm"].astype(np.float64)[..., None, None]
  mm = joints * rect * np.array([0.5, 0.5, 1.0])
  mm = mm - mm[..., :1, :]
  return mm.reshape(-1, *mm.shape[-2:]).mean(0)


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
    self._eval_sets: Dict[str, Batch] = {}

  # Data ---------------------------------------------------------------
  @functools.cached_property
  def target_train(self) -> Batch:
    raw = self._raw_train.pop("target", None)
    if raw is None:
      raw = load_image_split(self.config.dataset,
                             self.config.dataset.train_split)
    return prepare_target(raw, self.config.dataset.remove_background,
                          f"{self.config.dataset.name} split "
                          f"{self.config.dataset.train_split!r}")

  @functools.cached_property
  def synthetic_train(self) -> Batch:
    cfg = self.config.synthetic
    raw = self._raw_train.pop("synthetic", None)
    if raw is None:
      raw = load_image_split(cfg, cfg.split)
    return prepare_synthetic(raw, cfg.remove_background, cfg.rect_3d_mm,
                             f"{cfg.name} split {cfg.split!r}")

  @property
  def image_size(self) -> int:
    return int(self.target_train["image"].shape[2])

  @property
  def num_views(self) -> int:
    """V of the target domain (views of one example)."""
    return int(self.target_train["image"].shape[1])

  @property
  def synthetic_batch_size(self) -> int:
    """Synthetic examples per global step (default: B * V / V_synthetic)."""
    size = int(self.config.synthetic.get("batch_size") or 0)
    views = int(self.synthetic_train["image"].shape[1])
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

  def eval_data(self, split: str) -> Batch:
    if split not in self._eval_sets:
      raw = self._raw_eval.get(split)
      if raw is None:
        raw = load_image_split(self.config.dataset, split)
      where = f"{self.config.dataset.name} split {split!r}"
      _require(raw, ("joints_3d_camera", "joints_2d_patch", "affine",
                     "focal", "center"), where)
      data = {k: v for k, v in raw.items() if k not in ("image", "mask")}
      data["image"] = _images(raw, self.config.dataset.remove_background,
                              where)
      self._eval_sets[split] = data
    return self._eval_sets[split]

  @functools.cached_property
  def _iterators(self) -> Tuple[pipeline.EpochIterator,
                                pipeline.EpochIterator]:
    target = pipeline.EpochIterator(self.target_train,
                                    self.config.batch_size,
                                    seed=self.config.seed)
    synthetic = pipeline.EpochIterator(
        {"image": self.synthetic_train["image"],
         "joints": self.synthetic_train["joints"]},
        self.synthetic_batch_size, seed=self.config.seed + 1)
    return target, synthetic

  @property
  def steps_per_epoch(self) -> int:
    return self._iterators[0].steps_per_epoch

  def batch_at(self, step: int) -> Batch:
    """Process-local batch of global step `step` (deterministic).

    Views are flattened into the batch axis, example-major (entry
    example * V + view):
      target_image `[B * V, S, S, 3]` uint8, target_mask `[B * V, S, S, 1]`
      uint8, synthetic_image `[B_s * V_s, S, S, 3]` uint8,
      synthetic_joints `[B_s * V_s, 18, 3]` normalised patch coordinates and,
      when the discriminator trains, real_poses `[B * V, 18, 3]` metres
      (discriminator space).
    """
    target, synthetic = self._iterators
    t = target.batch_at(step)
    s = synthetic.batch_at(step)
    flat = lambda a: a.reshape((-1,) + a.shape[2:])
    batch = {"target_image": flat(t["image"]), "target_mask": flat(t["mask"]),
             "synthetic_image": flat(s["image"]),
             "synthetic_joints": flat(s["joints"])}
    if self.weights["discriminator"] > 0:
      # The real poses are drawn per global step, each host keeping its
      # slice, so a resumed run sees the same ones.
      per_step = self.config.batch_size * self.num_views
      rng = np.random.default_rng([self.config.seed, 0x5EA1, step])
      real = sample_real_poses(rng, per_step,
                               tuple(self.config.prior.pitch_range_deg))
      local = per_step // jax.process_count()
      batch["real_poses"] = real[jax.process_index() * local:
                                 (jax.process_index() + 1) * local]
    return batch

  def train_batches(self, start_step: int) -> Iterator[Batch]:
    step = start_step
    while True:
      yield self.batch_at(step)
      step += 1

  # State --------------------------------------------------------------
  @functools.cached_property
  def adam(self) -> optax.GradientTransformation:
    """Adam's moment scaling (b1, b2); the learning rate is applied in the
    step (`milestone_learning_rate`), so both optimisers share it."""
    opt = self.config.optimizer
    return optax.scale_by_adam(b1=opt.b1, b2=opt.b2)

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
    """`[18, 3]` mean root-relative pose of the labelled domain (mm)."""
    return mean_pose_mm(self.synthetic_train)

  def evaluate(self, state) -> Dict[str, Dict[str, Any]]:
    variables = {"params": state.params["detector"],
                 "batch_stats": state.batch_stats["detector"]}
    return {split: self.evaluate_split(variables, self.eval_data(split))
            for split in self.config.dataset.eval_splits}

  def evaluate_split(self, variables, data: Batch) -> Dict[str, Any]:
    """Metrics of one prepared evaluation split
    (`xsup.evaluate.evaluate_image_predictions` of `predict`'s output)."""
    images = data["image"]
    n, v = images.shape[0], images.shape[1]
    pred = self.predict(variables, images.reshape((-1,) + images.shape[2:]))
    pred = pred.reshape((n, v) + pred.shape[1:])
    return evaluate_lib.evaluate_image_predictions(
        pred, data, self.baseline_pose, protocol=self.eval_protocol,
        swap=bool(self.config.get("eval_swap_left_right", True)))

  # Image summaries ----------------------------------------------------
  @functools.cached_property
  def summary_examples(self) -> Tuple[xsup_summaries.SummaryExamples, ...]:
    """The fixed examples of the image summaries (view 0 of the first
    `xsup_summaries.SUMMARY_EXAMPLES` target training, synthetic and, when
    configured, first-evaluation-split examples)."""
    num = xsup_summaries.SUMMARY_EXAMPLES
    size = self.image_size
    target = self.target_train
    groups = [xsup_summaries.SummaryExamples(
        "target_train", target["image"][:num, 0],
        target["mask"][:num, 0, ..., 0].astype(np.float32) / 255.0, None,
        np.full(len(target["image"][:num]), self.config.dataset.rect_3d_mm,
                np.float32))]
    synthetic = self.synthetic_train
    groups.append(xsup_summaries.SummaryExamples(
        "synthetic", synthetic["image"][:num, 0], None,
        synthetic["joints"][:num, 0], synthetic["rect_mm"][:num, 0]))
    splits = tuple(self.config.dataset.eval_splits)
    if splits:
      data = self.eval_data(splits[0])
      part = {k: np.asarray(data[k])[:num] for k in
              ("joints_2d_patch", "joints_3d_camera", "affine", "focal")}
      labels, rect = synthetic_joints(
          part, size, self.config.dataset.rect_3d_mm,
          f"{self.config.dataset.name} split {splits[0]!r}")
      groups.append(xsup_summaries.SummaryExamples(
          f"eval_{splits[0]}", data["image"][:num, 0], None, labels[:, 0],
          rect[:, 0]))
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
