"""TFDS builder `synthetic_multiview`: procedural multi-view humans.

The default dataset of the image method, made without any download. Each
example is one procedural pose (`xsup.data.synthetic.poses`) seen by 4
calibrated cameras on a ring around the subject (`xsup.data.synthetic.cameras`,
H36M-like 1000 x 1000 intrinsics) and rendered as a capsule/ellipsoid figure
(`xsup.data.synthetic.figure_renderer`). Only the person-centred crop of each
view is rendered: the square box around the projected joints gives a 2x3
image->patch affine (`xsup.geometry.camera.affine_transform`), and composing it
with the intrinsics renders the patch directly, so no full camera image is
ever made.

Two domains with different appearance:
  * split `synthetic`: the labelled "synthetic supervision" domain. Every
    example is a new random person: saturated random colours per body part,
    flat or gradient random backgrounds (new per view), random light, no
    pixel noise, a new random camera ring per example.
  * splits `train` and `test`: the unlabelled "target" domain, made to look
    like a capture studio: a few subjects with fixed clothing (muted colours,
    skin, hair, textured cloth; subjects `target_1`..`target_5` in `train`,
    `target_6`, `target_7` in `test`), one fixed calibrated rig shared by all
    target examples with a fixed cluttered background per camera, light from
    above and sensor noise; the person walks around the capture area.
    The target domain keeps its 3D ground truth (`joints_3d_camera`,
    `joints_2d_patch`) for evaluation only: a trainer of the unsupervised
    method must not use these features of `train` as training targets (it
    may use the images, masks and cameras).

Features (the contract shared with the real image builders):
  image            [V, S, S, 3] uint8 RGB patches.
  mask             [V, S, S, 1] uint8 person mask, 0 (background) or 255.
  joints_3d_camera [V, 18, 3] float32 mm, H36M-18 joints in each camera frame.
  joints_2d_patch  [V, 18, 2] float32 patch pixels (pixel (row i, column j)
                   has its centre at (x=j, y=i)); equals
                   `apply_affine(affine, project(joints_3d_camera, focal,
                   center))` (no lens distortion).
  affine           [V, 2, 3] float32 image -> patch pixels.
  rot, trans       [V, 3, 3], [V, 3] float32 world -> camera (mm), world Z up.
  focal, center    [V, 2] float32 pixels of the 1000 x 1000 camera image.
  subject, action  Text: `synthetic` or `target_<k>`; the pose family of
                   `xsup.data.synthetic.poses.ACTIONS`.
  frame            int32 index of the example in its split.

Generation is deterministic: every example draws from its own
`np.random.default_rng` stream keyed by (seed, split, index), and the poses
from one stream per block of 256 poses, so example i of a split depends only
on the seed and i (not on the split size nor the number of workers).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds

from xsup import skeleton
from xsup.data.synthetic import cameras
from xsup.data.synthetic import figure_renderer as fr
from xsup.data.synthetic import poses as poses_lib
from xsup.geometry import camera as camera_lib

NUM_VIEWS = 4
SPLITS = ("synthetic", "train", "test")
TARGET_SUBJECTS = {"train": (1, 2, 3, 4, 5), "test": (6, 7)}
_SPLIT_CODE = {"synthetic": 0, "train": 1, "test": 2}
_POSE_STREAM, _SAMPLE_STREAM, _SUBJECT_STREAM, _STUDIO_STREAM = 0, 1, 2, 3
# First key of the target domain's shared streams (subjects, studio).
_TARGET_KEY = 1
_POSE_BLOCK = 256


@dataclasses.dataclass(frozen=True)
class Domain:
  """How one domain's examples are drawn.

  Attributes:
    name: "synthetic" or "target".
    style: appearance ranges (`figure_renderer.AppearanceStyle`).
    studio: True: one fixed rig and per-camera background for the whole
      domain, fixed appearance per subject, the person moves around;
      False: everything random per example.
    girth: range of the figure's radius scale.
    angle_scale: `poses.sample_poses(angle_scale=...)`.
  """
  name: str
  style: fr.AppearanceStyle
  studio: bool
  girth: Tuple[float, float] = (0.85, 1.2)
  angle_scale: float = 1.0


SYNTHETIC_DOMAIN = Domain(
    name="synthetic",
    style=fr.AppearanceStyle(
        palette="parts", saturation=(0.55, 1.0), value=(0.45, 1.0),
        texture_amplitude=(0.0, 0.08), backgrounds=("flat", "gradient"),
        background_saturation=(0.0, 1.0), background_value=(0.0, 1.0),
        light_elevation_deg=(-30.0, 80.0), light_intensity=(0.5, 0.9),
        ambient=(0.2, 0.5), image_noise_std=(0.0, 0.0)),
    studio=False)

TARGET_DOMAIN = Domain(
    name="target",
    style=fr.AppearanceStyle(
        palette="clothing", saturation=(0.05, 0.45), value=(0.2, 0.9),
        texture_amplitude=(0.12, 0.3), texture_wavelength_mm=(20.0, 120.0),
        backgrounds=("noise",), background_saturation=(0.0, 0.25),
        background_value=(0.25, 0.85), background_cells=(4, 10),
        light_elevation_deg=(40.0, 80.0), light_intensity=(0.55, 0.75),
        ambient=(0.3, 0.4), image_noise_std=(2.0, 5.0)),
    studio=True)


@dataclasses.dataclass(eq=False)
class SyntheticMultiviewConfig(tfds.core.BuilderConfig):
  """Sizes and rendering settings of one `synthetic_multiview` config.

  Attributes:
    image_size: patch side S in pixels.
    num_synthetic, num_train, num_test: examples per split.
    supersample: sub-samples per pixel side (anti-aliasing).
    box_margin: the crop's side is `box_margin` times the larger side of the
      projected joints' bounding box (centred on that box).
    min_box_mm: lower bound of the crop side, as a length at the pelvis
      depth (so folded poses are not blown up).
    seed: base seed of all random streams.
  """
  image_size: int = 256
  num_synthetic: int = 1000
  num_train: int = 1000
  num_test: int = 200
  supersample: int = 1
  box_margin: float = 1.35
  min_box_mm: float = 1000.0
  seed: int = 0

  def __post_init__(self):
    for field in ("image_size", "supersample"):
      if getattr(self, field) < 1:
        raise ValueError(f"SyntheticMultiviewConfig {self.name!r}: {field} "
                         f"must be >= 1, got {getattr(self, field)}")
    for field in ("num_synthetic", "num_train", "num_test"):
      if getattr(self, field) < 0:
        raise ValueError(f"SyntheticMultiviewConfig {self.name!r}: {field} "
                         f"must be >= 0, got {getattr(self, field)}")


def _config(name, image_size, num_synthetic, num_train, num_test,
            supersample, description):
  return SyntheticMultiviewConfig(
      name=name, image_size=image_size, num_synthetic=num_synthetic,
      num_train=num_train, num_test=num_test, supersample=supersample,
      description=description)


BUILDER_CONFIGS = [
    _config("64", 64, 8000, 8000, 1600, 2, "64x64 patches."),
    _config("128", 128, 4000, 4000, 800, 2, "128x128 patches."),
    _config("256", 256, 2000, 2000, 400, 1, "256x256 patches."),
    _config("tiny", 64, 4, 4, 2, 1, "64x64, a handful of examples (tests)."),
]


# ---------------------------------------------------------------------------
# Scene making (pure functions of their random streams).


def _rng(seed: int, *keys: int) -> np.random.Generator:
  return np.random.default_rng([seed, *keys])


def studio_rig(seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """The fixed rig of the target domain: `(rot [V, 3, 3], trans [V, 3])`.

  Four cameras roughly 90 degrees apart, 4.5-5.5 m from the centre of the
  capture area, 1.2-1.8 m high, all looking at (0, 0, 900) mm.
  """
  rng = _rng(seed, _TARGET_KEY, _STUDIO_STREAM, 0)
  rots, trans = [], []
  for v in range(NUM_VIEWS):
    az = 45.0 + 90.0 * v + rng.uniform(-10.0, 10.0)
    r, t = cameras.ring_rig(np.array([0.0, 0.0, 900.0]), (az,),
                            distance=rng.uniform(4500.0, 5500.0),
                            height=rng.uniform(1200.0, 1800.0))
    rots.append(r[0])
    trans.append(t[0])
  return np.stack(rots), np.stack(trans)


def random_rig(rng: np.random.Generator, pelvis: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray]:
  """A random ring of `NUM_VIEWS` cameras looking near `pelvis` (world mm)."""
  base = rng.uniform(0.0, 360.0)
  rots, trans = [], []
  for v in range(NUM_VIEWS):
    target = pelvis + np.array([*rng.normal(0.0, 100.0, 2),
                                rng.normal(0.0, 100.0)])
    r, t = cameras.ring_rig(target, (base + 90.0 * v +
                                     rng.uniform(-15.0, 15.0),),
                            distance=rng.uniform(4000.0, 6500.0),
                            height=rng.uniform(800.0, 2000.0))
    rots.append(r[0])
    trans.append(t[0])
  return np.stack(rots), np.stack(trans)


def crop_affine(joints_image: np.ndarray, pelvis_depth: float,
                focal: float, image_size: int, box_margin: float,
                min_box_mm: float) -> np.ndarray:
  """`[2, 3]` float32 image -> patch affine of the person-centred square box.

  Args:
    joints_image: `[J, 2]` projected joints (image pixels).
    pelvis_depth: camera z of the pelvis (mm).
    focal: focal length (pixels).
    image_size: patch side (pixels).
    box_margin: box side / larger side of the joints' bounding box.
    min_box_mm: smallest box side as a length at the pelvis depth.
  """
  lo, hi = joints_image.min(axis=0), joints_image.max(axis=0)
  side = max(float(np.max(hi - lo)) * box_margin,
             focal * min_box_mm / pelvis_depth)
  return np.asarray(camera_lib.affine_transform(0.5 * (lo + hi), side,
                                                image_size), np.float32)


def render_views(joints_world: np.ndarray, rot: np.ndarray,
                 trans: np.ndarray, appearances: Sequence[fr.Appearance],
                 shape: fr.FigureShape, *, image_size: int,
                 supersample: int = 1, box_margin: float = 1.35,
                 min_box_mm: float = 1000.0,
                 intrinsics: cameras.Intrinsics = cameras.H36M_LIKE
                 ) -> Dict[str, np.ndarray]:
  """Renders the patches of one pose in every view; all features but text.

  Args:
    joints_world: `[17, 3]` H36M-17 world mm (Z up).
    rot, trans: `[V, 3, 3]`, `[V, 3]` world -> camera.
    appearances: one `Appearance` per view.
    shape: the figure's proportions.
    image_size: patch side S.
    supersample, box_margin, min_box_mm: see `SyntheticMultiviewConfig`.
    intrinsics: the cameras' intrinsics (image size unused: only the crop is
      rendered).
  Returns:
    dict of `image`, `mask`, `joints_3d_camera`, `joints_2d_patch`,
    `affine`, `rot`, `trans`, `focal`, `center` arrays (see module doc).
  """
  num_views = rot.shape[0]
  focal = np.asarray(intrinsics.focal, np.float32)
  center = np.asarray(intrinsics.center, np.float32)
  cam17 = np.asarray(camera_lib.world_to_camera(
      np.broadcast_to(joints_world, (num_views, 17, 3)), rot, trans),
                     np.float32)
  cam18 = skeleton.convert(cam17, "h36m17", "h36m18")
  uv = np.asarray(camera_lib.project(cam18, focal, center), np.float32)
  primitives = fr.figure_primitives(joints_world, shape)
  images, masks, affines = [], [], []
  for v in range(num_views):
    affine = crop_affine(uv[v], float(cam18[v, 0, 2]), float(focal[0]),
                         image_size, box_margin, min_box_mm)
    out = fr.render(primitives, appearances[v], rot[v], trans[v],
                    fr.patch_intrinsics(affine, focal, center),
                    (image_size, image_size), supersample=supersample)
    images.append(out.image)
    masks.append(out.mask[..., None].astype(np.uint8) * 255)
    affines.append(affine)
  affines = np.stack(affines)
  return {
      "image": np.stack(images),
      "mask": np.stack(masks),
      "joints_3d_camera": cam18.astype(np.float32),
      "joints_2d_patch": np.asarray(
          camera_lib.apply_affine(uv, affines), np.float32),
      "affine": affines,
      "rot": np.asarray(rot, np.float32),
      "trans": np.asarray(trans, np.float32),
      "focal": np.tile(focal, (num_views, 1)),
      "center": np.tile(center, (num_views, 1)),
  }


def sample_shape(rng: np.random.Generator, domain: Domain) -> fr.FigureShape:
  """A random body girth for `domain`."""
  return fr.FigureShape().scaled(float(rng.uniform(*domain.girth)))


def make_example(config: SyntheticMultiviewConfig, domain: Domain,
                 split: str, index: int, joints_world: np.ndarray,
                 action: str) -> Dict[str, object]:
  """One example of `split` (features of the module doc).

  Args:
    config: sizes and rendering settings.
    domain: `SYNTHETIC_DOMAIN` or `TARGET_DOMAIN` (or a custom one).
    split: the split name (selects the random streams and target subjects).
    index: example index in the split.
    joints_world: `[17, 3]` H36M-17 world mm (Z up) standing near x = y = 0.
    action: the pose's action name.
  """
  seed = config.seed
  rng = _rng(seed, _SPLIT_CODE[split], _SAMPLE_STREAM, index)
  joints = np.asarray(joints_world, np.float64)
  if domain.studio:
    subjects = TARGET_SUBJECTS.get(split, TARGET_SUBJECTS["test"])
    subject_id = subjects[index % len(subjects)]
    subject = f"{domain.name}_{subject_id}"
    srng = _rng(seed, _TARGET_KEY, _SUBJECT_STREAM, subject_id)
    body = fr.sample_appearance(srng, domain.style)
    shape = sample_shape(srng, domain)
    # Move the person around the capture area (disc of radius 1 m).
    r, a = 1000.0 * np.sqrt(rng.random()), rng.uniform(0.0, 2.0 * np.pi)
    joints = joints + np.array([r * np.cos(a), r * np.sin(a), 0.0])
    rot, trans = studio_rig(seed)
    crng = [_rng(seed, _TARGET_KEY, _STUDIO_STREAM, 1 + v) for v in range(NUM_VIEWS)]
    backgrounds = [fr.sample_background(c, domain.style) for c in crng]
  else:
    subject = domain.name
    body = fr.sample_appearance(rng, domain.style)
    shape = sample_shape(rng, domain)
    rot, trans = random_rig(rng, joints[0])
    backgrounds = [fr.sample_background(rng, domain.style)
                   for _ in range(NUM_VIEWS)]
  appearances = [
      dataclasses.replace(body, background=bg,
                          noise_seed=int(rng.integers(2**31 - 1)))
      for bg in backgrounds]
  example = render_views(joints, rot, trans, appearances, shape,
                         image_size=config.image_size,
                         supersample=config.supersample,
                         box_margin=config.box_margin,
                         min_box_mm=config.min_box_mm)
  example.update(subject=subject, action=action, frame=np.int32(index))
  return example


def split_poses(config: SyntheticMultiviewConfig, domain: Domain, split: str,
                num: int) -> Tuple[np.ndarray, List[str]]:
  """The `[num, 17, 3]` world poses (mm) and action names of a split.

  Poses are drawn in blocks of `_POSE_BLOCK` from one stream per block, so
  pose `i` does not depend on `num`.
  """
  joints, actions = [], []
  for block in range(-(-num // _POSE_BLOCK)):
    rng = _rng(config.seed, _SPLIT_CODE[split], _POSE_STREAM, block)
    j, a = poses_lib.sample_poses_and_actions(
        rng, _POSE_BLOCK, angle_scale=domain.angle_scale)
    joints.append(j)
    actions.extend(poses_lib.ACTIONS[int(k)] for k in a)
  if not joints:
    return np.zeros((0, 17, 3), np.float32), []
  return np.concatenate(joints)[:num], actions[:num]


def domain_of_split(split: str) -> Domain:
  """`SYNTHETIC_DOMAIN` for split `synthetic`, `TARGET_DOMAIN` otherwise."""
  if split not in SPLITS:
    raise ValueError(f"synthetic_multiview: unknown split {split!r}; known: "
                     f"{SPLITS}")
  return SYNTHETIC_DOMAIN if split == "synthetic" else TARGET_DOMAIN


def _worker_init():
  """Pool workers compute on the CPU (never claim an accelerator)."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_platforms", "cpu")


def _keyed_example(task) -> Tuple[str, Dict[str, object]]:
  config, split, index, joints, action = task
  return f"{split}_{index:07d}", make_example(
      config, domain_of_split(split), split, index, joints, action)


# Splits smaller than this are generated in-process (no worker start-up).
_MIN_EXAMPLES_FOR_WORKERS = 256


# ---------------------------------------------------------------------------
# The TFDS builder.


class SyntheticMultiview(tfds.core.GeneratorBasedBuilder):
  """Procedural multi-view humans in two domains (no download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = BUILDER_CONFIGS
  DEFAULT_CONFIG_NAME = "256"

  def __init__(self, *, num_workers: Optional[int] = None, **kwargs):
    """Args: num_workers: processes rendering examples while preparing.

    None uses up to 4 CPU cores for splits of at least 256 examples. The
    workers are started with "spawn": a script that prepares the data must
    guard its entry point with `if __name__ == "__main__":`. The examples do
    not depend on the number of workers.
    """
    if num_workers is not None and num_workers < 1:
      raise ValueError(f"synthetic_multiview: num_workers must be >= 1, got "
                       f"{num_workers}")
    self._num_workers = num_workers
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    v = NUM_VIEWS
    f32 = np.float32
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Sequence(
            tfds.features.Image(shape=(s, s, 3)), length=v,
            doc="[V, S, S, 3] uint8 RGB person-centred patches."),
        "mask": tfds.features.Sequence(
            tfds.features.Image(shape=(s, s, 1)), length=v,
            doc="[V, S, S, 1] uint8 person mask: 0 background, 255 person."),
        "joints_3d_camera": tfds.features.Tensor(
            shape=(v, 18, 3), dtype=f32,
            doc="H36M-18 joints in each camera frame (mm). Target domain "
                "(train/test): evaluation only, never a training target."),
        "joints_2d_patch": tfds.features.Tensor(
            shape=(v, 18, 2), dtype=f32,
            doc="H36M-18 joints in patch pixels. Target domain: evaluation "
                "only."),
        "affine": tfds.features.Tensor(
            shape=(v, 2, 3), dtype=f32, doc="Image -> patch pixels."),
        "rot": tfds.features.Tensor(
            shape=(v, 3, 3), dtype=f32, doc="World -> camera rotation."),
        "trans": tfds.features.Tensor(
            shape=(v, 3), dtype=f32, doc="World -> camera translation (mm)."),
        "focal": tfds.features.Tensor(shape=(v, 2), dtype=f32,
                                      doc="fx, fy (pixels)."),
        "center": tfds.features.Tensor(shape=(v, 2), dtype=f32,
                                       doc="cx, cy (pixels)."),
        "subject": tfds.features.Text(),
        "action": tfds.features.Text(),
        "frame": tfds.features.Scalar(dtype=np.int32),
    })
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=features,
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    sizes = {"synthetic": cfg.num_synthetic, "train": cfg.num_train,
             "test": cfg.num_test}
    return {split: self._generate_examples(split, num)
            for split, num in sizes.items()}

  def _generate_examples(self, split: str, num: int
                         ) -> Iterator[Tuple[str, Dict[str, object]]]:
    cfg = self.builder_config
    joints, actions = split_poses(cfg, domain_of_split(split), split, num)
    tasks = ((cfg, split, i, joints[i], actions[i]) for i in range(num))
    workers = self._num_workers
    if workers is None:
      workers = (min(4, os.cpu_count() or 1)
                 if num >= _MIN_EXAMPLES_FOR_WORKERS else 1)
    if workers <= 1:
      for task in tasks:
        yield _keyed_example(task)
      return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init) as pool:
      yield from pool.imap(_keyed_example, tasks, chunksize=4)


Builder = SyntheticMultiview
