r"""Inference with an exported model: 3D poses from images or 2D keypoints.

    python -m xsup.predict --model_dir /tmp/xsup/synthetic_s2/export \
        --inputs photos/ [more files ...] --output_dir /tmp/predictions \
        [--focal_px 160] [--rect_3d_mm 2200] [--batch_size 32]

`--model_dir` is what `python -m xsup.main ... --mode export` wrote
(`params.npz`, `model.json`). What happens depends on the exported model:

  * `detector` (X-as-Supervision): `--inputs` are image files and/or
    folders of images (png, jpg, jpeg, bmp, gif, tif, tiff, webp), or one
    `.npy` of uint8 patches `[N, S, S, 3]`. Writes `predictions.json` (per
    image: every hypothesis in patch pixels, original-image pixels and
    root-relative camera millimetres, with its score), `predictions.npz`
    (the same arrays) and `<stem>_overlay.png` (the input patch with the
    most confident 2D skeleton, and all hypotheses in 3D beside it).
  * `teacher` / `student` / `hypothesis_student` (ITES lifting): `--inputs`
    is one `.npy` of H36M-17 2D keypoints `[N, 17, 2]` in pixels
    (`--focal_px` = the camera's focal length in pixels) or already
    normalised (`--normalised`). Writes `predictions.json`,
    `predictions.npy` (`[N, 17, 3]` root-relative 3D of the confident
    hypothesis), `hypotheses.npz` (every hypothesis, confident first, and
    its score) and `<stem>_<i>_overlay.png` for the first `--max_overlays`
    inputs (the 2D keypoints and the 3D hypotheses with their scores).
    A multi-hypothesis student picks its confident hypothesis without
    ground truth as exported (`hypotheses.choice`, see
    `xsup.train.hypothesis_choice`); `--sequence` says the inputs are the
    frames of one sequence in time order, which the temporal choice needs.

Camera assumption for images (the detector only sees a patch, so metric 3D
needs one). The input is a square, person-centred patch of side S pixels
(files of another size are zero-padded to a square, centred, and resized to
the model's S). The patch is the image of a pinhole camera with focal length
`focal_px` (patch pixels) and principal point at the patch centre (S / 2,
S / 2), looking at a person whose pelvis is at depth `pelvis_depth_mm`; the
patch then spans `rect_3d_mm` = S * pelvis_depth_mm / focal_px millimetres at
the pelvis depth (`xsup.geometry.patch.patch_rect_mm` with an identity
crop). Any two of the three determine the third; the defaults are
  * `rect_3d_mm`: the model's training value (`model.json` "inference"
    field; 2000 mm, the Human3.6M crop, for exports without it);
  * `focal_px`: 2.5 * S, what a Human3.6M camera (fx = 1145 px for a
    1000-pixel image) gives for a 2000 mm crop at the typical 5 m subject
    distance, rescaled to the patch (5000 / 2000 = 2.5 patch widths; a 22.6
    degree field of view).
The detector's normalised output (x, y) = pixels / S * 2 - 1 and
z = (depth - pelvis depth) / rect_3d_mm (see `xsup.geometry.patch`) then goes
to camera millimetres with `xsup.geometry.patch.patch_to_camera`, and the
pelvis is subtracted. A longer focal length flattens perspective; x, y scale
with `rect_3d_mm`.

Hypotheses: the detector returns H depth hypotheses per joint (x, y are
shared), in its order: hypothesis 0 is the highest peak of each joint's depth
marginal p(z) (`xsup.models.integral`). Each comes with a per-joint score,
the mass of p(z) within that hypothesis' depth window (1 when H == 1); the
scores usually, not always, decrease with the rank.

Python:

    predictor = xsup.predict.Predictor("/tmp/xsup/synthetic_s2/export")
    out = predictor.predict_images(["a.png", "b.jpg"])   # or uint8 [N,S,S,3]
    out["joints_camera"]   # [N, H, 18, 3] root-relative mm
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from xsup import export
from xsup import skeleton as skel
from xsup import viz
from xsup.geometry import camera as camera_lib
from xsup.geometry import patch as patch_lib
from xsup.models import integral
from xsup.train import hypothesis_choice
from xsup.train import lifting as lifting_train
from xsup.train import loop

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                    ".webp")
# Patch width at the pelvis for exports that do not record one (Human3.6M).
DEFAULT_RECT_3D_MM = 2000.0
# Default focal length in patch widths: typical Human3.6M subject distance
# over its crop width (5000 mm / 2000 mm).
DEFAULT_FOCAL_PATCH_WIDTHS = 5000.0 / 2000.0
LIFTING_MODELS = ("teacher", "student", "hypothesis_student")
# Keypoint overlays drawn by the command line unless told otherwise.
DEFAULT_MAX_OVERLAYS = 16

ImagesInput = Union[np.ndarray, Sequence[str]]


# ---------------------------------------------------------------------------
# Camera assumption of an image patch.


@dataclasses.dataclass(frozen=True)
class PatchCamera:
  """Pinhole camera of a person-centred square patch (see module docstring).

  Attributes:
    image_size: S, patch side in pixels.
    focal_px: focal length in patch pixels (fx = fy).
    rect_3d_mm: metric width of the patch at the pelvis depth.
    pelvis_depth_mm: camera z of the pelvis, rect_3d_mm * focal_px / S.
  """
  image_size: int
  focal_px: float
  rect_3d_mm: float
  pelvis_depth_mm: float

  @property
  def center_px(self) -> Tuple[float, float]:
    """Principal point: the patch centre, pixels."""
    return (self.image_size / 2.0, self.image_size / 2.0)

  def to_dict(self) -> Dict[str, Any]:
    return {"image_size": self.image_size, "focal_px": self.focal_px,
            "center_px": list(self.center_px),
            "rect_3d_mm": self.rect_3d_mm,
            "pelvis_depth_mm": self.pelvis_depth_mm}


def patch_camera(image_size: int, focal_px: Optional[float] = None,
                 rect_3d_mm: Optional[float] = None,
                 pelvis_depth_mm: Optional[float] = None,
                 default_rect_3d_mm: float = DEFAULT_RECT_3D_MM
                 ) -> PatchCamera:
  """The patch camera from at most two of focal, patch width, pelvis depth.

  rect_3d_mm = S * pelvis_depth_mm / focal_px links the three. Missing
  values come from the given ones, then from the defaults: focal
  `DEFAULT_FOCAL_PATCH_WIDTHS` * S, width `default_rect_3d_mm`.

  Args:
    image_size: S, pixels.
    focal_px: focal length, patch pixels.
    rect_3d_mm: patch width at the pelvis depth, mm.
    pelvis_depth_mm: pelvis depth, mm.
    default_rect_3d_mm: the width used when neither it nor the depth is
      given (the model's training value).

  Returns:
    A `PatchCamera`.
  """
  given = {k: v for k, v in (("focal_px", focal_px),
                             ("rect_3d_mm", rect_3d_mm),
                             ("pelvis_depth_mm", pelvis_depth_mm))
           if v is not None}
  if len(given) == 3:
    raise ValueError("patch_camera: give at most two of focal_px, "
                     "rect_3d_mm and pelvis_depth_mm (rect_3d_mm = S * "
                     "pelvis_depth_mm / focal_px)")
  bad = {k: v for k, v in given.items() if not (np.isfinite(v) and v > 0)}
  if bad:
    raise ValueError(f"patch_camera: {bad} must be positive")
  size = int(image_size)
  identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  if pelvis_depth_mm is not None and rect_3d_mm is not None:
    focal_px = size * pelvis_depth_mm / rect_3d_mm
  else:
    if focal_px is None:
      focal_px = DEFAULT_FOCAL_PATCH_WIDTHS * size
    if pelvis_depth_mm is not None:
      rect_3d_mm = float(patch_lib.patch_rect_mm(
          identity, np.array([focal_px, focal_px]), pelvis_depth_mm, size))
    else:
      if rect_3d_mm is None:
        rect_3d_mm = default_rect_3d_mm
      pelvis_depth_mm = rect_3d_mm * focal_px / size
  return PatchCamera(size, float(focal_px), float(rect_3d_mm),
                     float(pelvis_depth_mm))


def patch_to_root_relative_mm(joints: np.ndarray, cam: PatchCamera,
                              root: int = 0) -> np.ndarray:
  """Normalised patch joints -> root-relative camera millimetres.

  Args:
    joints: `[N, ..., J, 3]` normalised patch coordinates (e.g. with a
      hypothesis axis).
    cam: the patch camera.
    root: index of the pelvis.

  Returns:
    `[N, ..., J, 3]` float64 mm, camera axes (x right, y down, z forward),
    minus the root joint.
  """
  joints = np.asarray(joints, np.float64)
  n = joints.shape[0]
  affine = np.broadcast_to(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                           (n, 2, 3))
  cam_mm = patch_lib.patch_to_camera(
      joints, affine, np.full((n, 2), cam.focal_px),
      np.tile(np.asarray(cam.center_px, np.float64), (n, 1)),
      np.full((n,), cam.pelvis_depth_mm), np.full((n,), cam.rect_3d_mm),
      cam.image_size)
  return cam_mm - cam_mm[..., root:root + 1, :]


# ---------------------------------------------------------------------------
# Image files.


def find_images(folder: str) -> List[str]:
  """Image files directly inside `folder`, sorted by name."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"No folder {folder!r}")
  paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(folder, f)))
  if not paths:
    raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in "
                            f"folder {folder!r}")
  return paths


def load_image(path: str, image_size: int
               ) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
  """Reads an image file as a model input patch.

  Non-square images are zero-padded to a square (centred), then resized
  (bilinear, antialiased) to `image_size`.

  Returns:
    `(patch uint8 [S, S, 3] RGB, affine [2, 3] original image pixels ->
    patch pixels (pixel edges at integers), (width, height) of the file)`.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No image file {path!r}")
  try:
    with Image.open(path) as img:
      img = img.convert("RGB")
  except Exception as e:  # PIL raises several types for bad files.
    raise ValueError(f"Cannot read image file {path!r}: {e}") from e
  width, height = img.size
  side = max(width, height)
  off_x, off_y = (side - width) // 2, (side - height) // 2
  if width != height:
    square = Image.new("RGB", (side, side))
    square.paste(img, (off_x, off_y))
    img = square
  if side != image_size:
    img = img.resize((image_size, image_size), Image.BILINEAR)
  scale = image_size / side
  affine = np.array([[scale, 0.0, off_x * scale],
                     [0.0, scale, off_y * scale]])
  return np.asarray(img, np.uint8), affine, (width, height)


def load_images(paths: Sequence[str], image_size: int
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`load_image` of each path: `(uint8 [N, S, S, 3], affines [N, 2, 3],
  original (width, height) [N, 2])`."""
  if not len(paths):
    raise ValueError("No image files given")
  loaded = [load_image(p, image_size) for p in paths]
  return (np.stack([x[0] for x in loaded]), np.stack([x[1] for x in loaded]),
          np.array([x[2] for x in loaded], np.int64))


# ---------------------------------------------------------------------------
# Jitted model application.


def hypothesis_scores(depth_marginals: jax.Array, depth_indices: jax.Array,
                      neighbor_size: int) -> jax.Array:
  """Mass of p(z) in each hypothesis' window.

  Args:
    depth_marginals: `[B, J, D]` p(z).
    depth_indices: `[B, K, J]` centre bins of the hypotheses.
    neighbor_size: odd window, bins (`integral_multi_hypothesis`'s).

  Returns:
    `[B, K, J]` sum of p over bins [c - n // 2, c + n // 2] (inside 0..D-1).
  """
  d = depth_marginals.shape[-1]
  bins = jnp.arange(d)
  half = neighbor_size // 2
  window = jnp.abs(bins - depth_indices[..., None]) <= half  # [B, K, J, D]
  return jnp.sum(jnp.where(window, depth_marginals[:, None], 0.0), axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _detector_forward(model, variables, images):
  """uint8 `[B, S, S, 3]` -> (joints `[B, K, J, 3]`, scores `[B, K, J]`).

  The module is a static (hashable) argument: equal models share compiles.
  """
  out = model.apply(variables, images.astype(jnp.float32) / 255.0,
                    train=False)
  if model.num_hypo > 1:
    idx = integral.integral_multi_hypothesis(
        out["heatmaps"], num_hypo=model.num_hypo,
        neighbor_size=model.neighbor_size).depth_indices
    scores = hypothesis_scores(out["depth_marginals"], idx,
                               model.neighbor_size)
  else:
    scores = jnp.ones(out["joints"].shape[:-1], jnp.float32)
  return out["joints"], scores


@functools.partial(jax.jit, static_argnums=(0, 1))
def _lifting_forward(stage, model, variables, keypoints_2d):
  """Normalised `[B, 17, 2]` -> root-relative 3D `[B, 17, 3]` (units)."""
  return lifting_train.predict_3d(stage, model, variables, keypoints_2d)


@functools.partial(jax.jit, static_argnums=0)
def _hypothesis_forward(model, variables, keypoints_2d):
  """Normalised `[B, 17, 2]` -> `lifting.predict_hypotheses_3d` outputs."""
  return lifting_train.predict_hypotheses_3d(model, variables, keypoints_2d)


# ---------------------------------------------------------------------------
# The predictor.


class Predictor:
  """An exported model ready for inference.

  Attributes:
    model_name: "detector", "teacher" or "student".
    model: the flax module.
    variables: its variables (on the default device).
    metadata: `model.json["inference"]` (`{}` for older exports).
    batch_size: chunk size of the jitted calls.
  """

  def __init__(self, model_dir: str, batch_size: int = 32,
               image_size: Optional[int] = None):
    """Loads `model_dir`.

    Args:
      model_dir: an export directory (`params.npz`, `model.json`).
      batch_size: inputs per jitted call.
      image_size: detector input side S, for exports that do not record it
        (it must then match theirs if they do).
    """
    if not os.path.isdir(model_dir):
      raise FileNotFoundError(f"No model directory {model_dir!r} (expected "
                              "the export/ folder of `--mode export`)")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.model_dir = model_dir
    self.model_name = export.load_spec(model_dir)["model"]
    self.metadata = export.load_metadata(model_dir)
    self.model, variables = export.load_model(model_dir)
    self.variables = jax.device_put(variables)
    self.batch_size = int(batch_size)
    stored = self.metadata.get("image_size")
    if image_size is not None and stored is not None and int(
        image_size) != int(stored):
      raise ValueError(f"image_size={image_size} but {model_dir!r} was "
                       f"trained on {stored}x{stored} patches")
    self._image_size = image_size if image_size is not None else stored

  @property
  def is_detector(self) -> bool:
    return self.model_name == "detector"

  @property
  def skeleton(self) -> skel.Skeleton:
    default = "h36m18" if self.is_detector else "h36m17"
    return skel.get(self.metadata.get("skeleton", default))

  @property
  def image_size(self) -> int:
    """S of the detector's input patches (from the export or the user)."""
    self._require("detector")
    if self._image_size is None:
      raise ValueError(
          f"{os.path.join(self.model_dir, export.MODEL_FILE)} does not record "
          "the input image size (exported by an older version); pass "
          "image_size= (CLI: --image_size) or uint8 arrays of the right size")
    return int(self._image_size)

  def camera(self, focal_px: Optional[float] = None,
             rect_3d_mm: Optional[float] = None,
             pelvis_depth_mm: Optional[float] = None,
             image_size: Optional[int] = None) -> PatchCamera:
    """The patch camera (`patch_camera`) with this model's defaults."""
    return patch_camera(
        image_size or self.image_size, focal_px, rect_3d_mm, pelvis_depth_mm,
        float(self.metadata.get("rect_3d_mm", DEFAULT_RECT_3D_MM)))

  def _require(self, kind: str) -> None:
    if kind == "detector" and not self.is_detector:
      raise ValueError(f"{self.model_dir!r} holds a {self.model_name} (a "
                       "lifting network: it takes 2D keypoints, use "
                       "predict_keypoints), not the image detector")
    if kind == "lifting" and self.is_detector:
      raise ValueError(f"{self.model_dir!r} holds the image detector (use "
                       "predict_images), not a lifting network")

  @property
  def _detector_fn(self):
    return functools.partial(_detector_forward, self.model)

  @property
  def _lifting_fn(self):
    if self.model_name == "hypothesis_student":
      return functools.partial(_hypothesis_forward, self.model)
    return functools.partial(_lifting_forward, self.model_name, self.model)

  def predict_images(self, images: ImagesInput,
                     focal_px: Optional[float] = None,
                     rect_3d_mm: Optional[float] = None,
                     pelvis_depth_mm: Optional[float] = None,
                     affine: Optional[np.ndarray] = None
                     ) -> Dict[str, Any]:
    """3D joints of person-centred patches (see the module docstring).

    Args:
      images: uint8 `[N, S, S, 3]` RGB patches, or image file paths (read,
        padded to square and resized to S).
      focal_px, rect_3d_mm, pelvis_depth_mm: the camera assumption
        (`patch_camera`; at most two).
      affine: for arrays, `[N, 2, 3]` maps of the images they were cut
        from to the patches (`load_images`), for "joints_image"; default
        identity.

    Returns:
      A dict of numpy arrays (H = hypotheses, most confident first):
        "joints_patch": `[N, H, 18, 3]` float32 normalised patch coordinates
          (the detector's output);
        "joints_pixels": `[N, H, 18, 2]` float32 patch pixels;
        "joints_image": `[N, H, 18, 2]` float32 pixels of the given image
          (of the file for paths; the patch for arrays);
        "joints_camera": `[N, H, 18, 3]` float32 root-relative camera mm;
        "scores": `[N, H, 18]` float32 p(z) mass of each hypothesis;
        "affine": `[N, 2, 3]` given image -> patch pixels;
      and "camera": the `PatchCamera` used.
    """
    self._require("detector")
    if isinstance(images, np.ndarray):
      patches = images
      if (patches.ndim != 4 or patches.shape[-1] != 3
          or patches.shape[1] != patches.shape[2]):
        raise ValueError(f"images must be uint8 [N, S, S, 3] square patches "
                         f"or file paths, got {patches.dtype} "
                         f"{patches.shape}")
      if patches.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got "
                         f"{patches.dtype}")
      size = patches.shape[1]
      if self._image_size is not None and size != int(self._image_size):
        raise ValueError(f"images are {size}x{size} but the model takes "
                         f"{self._image_size}x{self._image_size} patches; "
                         "resize them (or pass file paths)")
      if affine is None:
        affine = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                         (len(patches), 1, 1))
      affine = np.asarray(affine, np.float64)
      if affine.shape != (len(patches), 2, 3):
        raise ValueError(f"affine must be [{len(patches)}, 2, 3], got "
                         f"{affine.shape}")
    else:
      if affine is not None:
        raise ValueError("affine is only for array input (files get theirs)")
      if isinstance(images, (str, os.PathLike)):
        images = [images]
      size = self.image_size
      patches, affine, _ = load_images([os.fspath(p) for p in images], size)
    joints, scores = loop.run_chunked(self._detector_fn, self.variables, patches,
                                 self.batch_size)
    cam = self.camera(focal_px, rect_3d_mm, pelvis_depth_mm, image_size=size)
    pixels = (joints[..., :2].astype(np.float64) + 1.0) / 2.0 * size
    inverse = np.asarray(camera_lib.invert_affine(affine))
    image_px = np.asarray(camera_lib.apply_affine(
        pixels, inverse[:, None]))
    return {
        "joints_patch": joints.astype(np.float32),
        "joints_pixels": pixels.astype(np.float32),
        "joints_image": image_px.astype(np.float32),
        "joints_camera": patch_to_root_relative_mm(joints, cam).astype(
            np.float32),
        "scores": scores.astype(np.float32),
        "affine": affine.astype(np.float32),
        "camera": cam,
    }

  def predict_keypoints(self, keypoints_2d: np.ndarray,
                        focal_px: Optional[Any] = None,
                        normalised: bool = False,
                        norm_scale: Union[None, str, float] = None,
                        sequence: bool = False,
                        choice: Optional[str] = None
                        ) -> Dict[str, Any]:
    """3D poses from H36M-17 2D keypoints (lifting exports).

    Args:
      keypoints_2d: `[N, 17, 2]` pixels (or normalised, see `normalised`).
      focal_px: camera focal length(s) in pixels: scalar, `[2]` or `[N, 2]`;
        required for pixel input.
      normalised: the keypoints are already normalised as the training data
        (`xsup.data.lifting.prepare`).
      norm_scale: for pixel input, the normalisation scale: None computes it
        from these keypoints (mean root-head distance 0.2, as each
        evaluation split does), "train" reuses the training split's (stored
        in the export), a float is used as is.
      sequence: the N inputs are consecutive frames of one sequence (the
        temporal choice uses this; without it that choice scores frames
        one by one with its per-frame score).
      choice: how a multi-hypothesis student picks its confident
        hypothesis (`hypothesis_choice.CHOICES`); default: the export's.

    Returns:
      "pose_3d": `[N, 17, 3]` float32 root-relative 3D of the confident
        hypothesis, in the units of the normalised 2D (the lifting is
        defined up to scale: align the scale to metric data, e.g. bone
        lengths, for millimetres);
      "hypotheses_3d": `[N, K, 17, 3]` every hypothesis, confident first,
        the others by descending score (K = 1 for single-hypothesis
        networks);
      "scores": `[N, K]` float32 per-frame score of each hypothesis (same
        order; the chirality score, or the pose prior's for the
        discriminator choice), higher = more plausible;
      "choice": the choice used (None for single-hypothesis networks);
      "keypoints_normalised": `[N, 17, 2]` the network input;
      "norm_scale": the scale used (None for normalised input).
    """
    self._require("lifting")
    kp = np.asarray(keypoints_2d)
    joints = skel.H36M17.num_joints
    if kp.ndim != 3 or kp.shape[1:] != (joints, 2):
      raise ValueError(f"keypoints_2d must be [N, {joints}, 2] (H36M-17 "
                       f"pixels), got shape {kp.shape}")
    kp = kp.astype(np.float32)
    if not np.all(np.isfinite(kp)):
      raise ValueError("keypoints_2d has non-finite values")
    scale = None
    if normalised:
      norm = kp
    else:
      if focal_px is None:
        raise ValueError("Pixel keypoints need focal_px (the camera's focal "
                         "length in pixels), or normalised=True")
      if isinstance(norm_scale, str):
        if norm_scale != "train":
          raise ValueError(f"norm_scale={norm_scale!r}; expected None, "
                           "'train' or a number")
        if "norm_scale" not in self.metadata:
          raise ValueError(f"{self.model_dir!r} does not record the training "
                           "norm_scale (older export); pass a number")
        norm_scale = float(self.metadata["norm_scale"])
      focal = np.asarray(focal_px, np.float64)
      if focal.ndim == 0:
        focal = np.full((2,), float(focal))
      norm, scale = camera_lib.normalize_2d_lifting(kp, focal,
                                                    scale=norm_scale)
    out = loop.run_chunked(self._lifting_fn, self.variables, norm,
                           self.batch_size)
    if self.model_name == "hypothesis_student":
      hyps, scores, used = self._choose(out, sequence, choice)
    else:
      if choice is not None:
        raise ValueError(f"choice={choice!r}: {self.model_dir!r} holds a "
                         "single-hypothesis network")
      hyps = np.asarray(out)[:, None]
      scores = np.asarray(hypothesis_choice.chirality_scores(
          jnp.asarray(hyps)))
      used = None
    return {"pose_3d": np.asarray(hyps[:, 0], np.float32),
            "hypotheses_3d": np.asarray(hyps, np.float32),
            "scores": np.asarray(scores, np.float32),
            "choice": used,
            "keypoints_normalised": np.asarray(norm, np.float32),
            "norm_scale": scale}

  def _choose(self, out: Dict[str, np.ndarray], sequence: bool,
              choice: Optional[str]):
    """(hypotheses `[N, K, 17, 3]`, scores `[N, K]`) in the chosen order,
    and the choice used."""
    settings = dict(self.metadata.get("hypotheses") or {})
    choice = hypothesis_choice.check_choice(
        choice or settings.get("choice", "chirality"))
    unary = settings.get("temporal_unary", "chirality")
    if choice == "temporal" and not sequence:
      choice = unary
    hyps = np.asarray(out["hypotheses"])
    scores = {k: np.asarray(v) for k, v in out.items() if k != "hypotheses"}
    segments = [np.arange(len(hyps))] if choice == "temporal" else None
    chosen = hypothesis_choice.choose(
        choice, hyps, scores, segments, temporal_unary=unary,
        temporal_weight=float(settings.get("temporal_weight", 1.0)))
    base = scores[hypothesis_choice.per_frame_score(choice, unary)]
    order = hypothesis_choice.rank(base, chosen)
    return (np.take_along_axis(hyps, order[:, :, None, None], axis=1),
            np.take_along_axis(base, order, axis=1), choice)


def load_model(model_dir: str, batch_size: int = 32,
               image_size: Optional[int] = None) -> Predictor:
  """A `Predictor` for an export directory."""
  return Predictor(model_dir, batch_size=batch_size, image_size=image_size)


# ---------------------------------------------------------------------------
# Command line.

ORDER_NOTE = (
    "hypotheses are in the detector's order: rank 0 is the highest peak of "
    "each joint's depth marginal (the most confident); 'scores' are the "
    "per-joint p(z) mass in each hypothesis' depth window and 'score' their "
    "mean. x, y are shared by all hypotheses; only depth differs.")
CAMERA_NOTE = (
    "joints_camera_mm: root-relative camera millimetres (x right, y down, z "
    "away from the camera) assuming a person-centred square patch seen by a "
    "pinhole camera with focal_px and the principal point at the patch "
    "centre, the pelvis at pelvis_depth_mm, the patch spanning rect_3d_mm "
    "there. joints_pixels: patch pixels; joints_image: pixels of the file.")


def _round(a: np.ndarray, digits: int) -> List:
  return np.round(np.asarray(a, np.float64), digits).tolist()


def _unique_stems(paths: Sequence[str]) -> List[str]:
  seen: Dict[str, int] = {}
  stems = []
  for p in paths:
    stem = os.path.splitext(os.path.basename(p))[0]
    if stem in seen:
      seen[stem] += 1
      stem = f"{stem}_{seen[stem]}"
    else:
      seen[stem] = 0
    stems.append(stem)
  return stems


def _resolve_inputs(inputs: Sequence[str]) -> Tuple[List[str], Optional[str]]:
  """(image files, .npy file or None) named by `--inputs`."""
  files, arrays = [], []
  for item in inputs:
    if os.path.isdir(item):
      files.extend(find_images(item))
    elif item.lower().endswith(".npy"):
      if not os.path.isfile(item):
        raise FileNotFoundError(f"No file {item!r}")
      arrays.append(item)
    elif not os.path.isfile(item):
      raise FileNotFoundError(f"No image file or folder {item!r}")
    else:
      files.append(item)
  if arrays and (files or len(arrays) > 1):
    raise ValueError("--inputs: give either one .npy or image files/folders, "
                     f"got {len(arrays)} .npy and {len(files)} images")
  return files, (arrays[0] if arrays else None)


def _load_npy(path: str) -> np.ndarray:
  try:
    return np.load(path, allow_pickle=False)
  except Exception as e:
    raise ValueError(f"Cannot read {path!r} as a .npy array: {e}") from e


def write_image_predictions(predictor: Predictor, out: Dict[str, Any],
                            patches: np.ndarray, names: Sequence[str],
                            sizes: np.ndarray, output_dir: str,
                            overlays: bool = True) -> Dict[str, Any]:
  """Writes predictions.json / .npz and `<stem>_overlay.png` files.

  Args:
    predictor: the detector predictor.
    out: `predict_images` output for `patches`.
    patches: uint8 `[N, S, S, 3]` model inputs.
    names: N input names (file paths or array entries).
    sizes: `[N, 2]` (width, height) of the given images.
    output_dir: folder to write into (created).
    overlays: also draw one PNG per input.

  Returns:
    The JSON document written.
  """
  os.makedirs(output_dir, exist_ok=True)
  skeleton = predictor.skeleton
  stems = _unique_stems(names)
  records = []
  for i, name in enumerate(names):
    hyps = []
    for k in range(out["joints_patch"].shape[1]):
      hyps.append({
          "rank": k,
          "score": round(float(np.mean(out["scores"][i, k])), 5),
          "scores": _round(out["scores"][i, k], 5),
          "joints_pixels": _round(out["joints_pixels"][i, k], 2),
          "joints_image": _round(out["joints_image"][i, k], 2),
          "joints_camera_mm": _round(out["joints_camera"][i, k], 1),
      })
    record = {"name": os.path.basename(name), "input": name,
              "image_size": [int(s) for s in sizes[i]], "hypotheses": hyps}
    if overlays:
      png = os.path.join(output_dir, f"{stems[i]}_overlay.png")
      fig = viz.prediction_figure(
          patches[i], out["joints_pixels"][i, 0], out["joints_camera"][i],
          skeleton, title=os.path.basename(name))
      fig.savefig(png, dpi=100)
      record["overlay"] = os.path.basename(png)
    records.append(record)
  doc = {"model_dir": predictor.model_dir, "model": predictor.model_name,
         "skeleton": skeleton.name, "joint_names": list(skeleton.joint_names),
         "camera": out["camera"].to_dict(), "camera_note": CAMERA_NOTE,
         "hypothesis_order": ORDER_NOTE, "predictions": records}
  with open(os.path.join(output_dir, "predictions.json"), "w") as f:
    json.dump(doc, f, indent=1)
  np.savez(os.path.join(output_dir, "predictions.npz"),
           **{k: out[k] for k in ("joints_patch", "joints_pixels",
                                  "joints_image", "joints_camera", "scores")},
           names=np.array(names))
  return doc


def _parse_norm_scale(value: Optional[str]) -> Union[None, str, float]:
  if value in (None, "", "input"):
    return None
  if value == "train":
    return value
  try:
    return float(value)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"--norm_scale={value!r}; expected input, train or a number"
    ) from None


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m xsup.predict",
      description="3D human poses from images (X-as-Supervision detector "
      "export) or 2D keypoints (ITES teacher/student export).")
  parser.add_argument("--model_dir", required=True,
                      help="export folder written by --mode export")
  parser.add_argument("--inputs", required=True, nargs="+",
                      help="image files and/or folders, or one .npy "
                      "(uint8 [N,S,S,3] patches or [N,17,2] keypoints)")
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--focal_px", type=float, default=None,
                      help="images: focal length in patch pixels (default "
                      "2.5 * S); keypoints: the camera's focal length in "
                      "pixels (required unless --normalised)")
  parser.add_argument("--rect_3d_mm", type=float, default=None,
                      help="images: patch width at the pelvis, mm (default: "
                      "the model's training value)")
  parser.add_argument("--pelvis_depth_mm", type=float, default=None,
                      help="images: pelvis depth, mm (instead of one of "
                      "--focal_px / --rect_3d_mm)")
  parser.add_argument("--image_size", type=int, default=None,
                      help="detector input size for exports that do not "
                      "record it")
  parser.add_argument("--no_overlays", action="store_true",
                      help="skip the overlay PNGs")
  parser.add_argument("--normalised", action="store_true",
                      help="keypoints: already normalised (no --focal_px)")
  parser.add_argument("--sequence", action="store_true",
                      help="keypoints: the inputs are consecutive frames of "
                      "one sequence (for the temporal hypothesis choice)")
  parser.add_argument("--choice", default=None,
                      choices=hypothesis_choice.CHOICES,
                      help="keypoints, multi-hypothesis student: how to pick "
                      "the confident hypothesis (default: the export's)")
  parser.add_argument("--max_overlays", type=int,
                      default=DEFAULT_MAX_OVERLAYS,
                      help="keypoints: overlays of the first N inputs (0: "
                      "none)")
  parser.add_argument("--norm_scale", default=None,
                      help="keypoints: 'input' (default: from the given "
                      "keypoints), 'train' (the training split's) or a "
                      "number")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Runs the command line on `argv` (without the program name).

  Returns:
    The JSON document written to `<output_dir>/predictions.json`.
  """
  args = build_parser().parse_args(argv)
  predictor = Predictor(args.model_dir, batch_size=args.batch_size,
                        image_size=args.image_size)
  files, npy = _resolve_inputs(args.inputs)
  if predictor.is_detector:
    if npy is not None:
      patches = _load_npy(npy)
      if patches.ndim == 3:
        patches = patches[None]
      out = predictor.predict_images(
          patches, args.focal_px, args.rect_3d_mm, args.pelvis_depth_mm)
      stem = os.path.splitext(os.path.basename(npy))[0]
      names = [f"{stem}_{i}" for i in range(len(patches))]
      sizes = np.tile([patches.shape[2], patches.shape[1]],
                      (len(patches), 1))
    else:
      patches, affine, sizes = load_images(files, predictor.image_size)
      names = files
      out = predictor.predict_images(
          patches, args.focal_px, args.rect_3d_mm, args.pelvis_depth_mm,
          affine=affine)
    return write_image_predictions(predictor, out, patches, names, sizes,
                                   args.output_dir,
                                   overlays=not args.no_overlays)
  if npy is None:
    raise ValueError(f"{args.model_dir!r} holds a {predictor.model_name} "
                     "(lifting network): --inputs must be one .npy of 2D "
                     "keypoints [N, 17, 2], not images")
  keypoints = _load_npy(npy)
  out = predictor.predict_keypoints(
      keypoints, focal_px=args.focal_px, normalised=args.normalised,
      norm_scale=_parse_norm_scale(args.norm_scale), sequence=args.sequence,
      choice=args.choice)
  max_overlays = 0 if args.no_overlays else args.max_overlays
  return write_keypoint_predictions(predictor, out, npy, args.output_dir,
                                    max_overlays=max_overlays)


def write_keypoint_predictions(predictor: Predictor, out: Dict[str, Any],
                               npy: str, output_dir: str,
                               max_overlays: int = DEFAULT_MAX_OVERLAYS
                               ) -> Dict[str, Any]:
  """Writes a lifting prediction: json, npy, npz and overlays.

  Args:
    predictor: the lifting predictor.
    out: `predict_keypoints` output.
    npy: the input file (its stem names the overlays).
    output_dir: folder to write into (created).
    max_overlays: draw `<stem>_<i>_overlay.png` for the first inputs.

  Returns:
    The JSON document written to `predictions.json`.
  """
  if max_overlays < 0:
    raise ValueError(f"max_overlays must be >= 0, got {max_overlays}")
  os.makedirs(output_dir, exist_ok=True)
  skeleton = predictor.skeleton
  np.save(os.path.join(output_dir, "predictions.npy"), out["pose_3d"])
  np.savez(os.path.join(output_dir, "hypotheses.npz"),
           hypotheses_3d=out["hypotheses_3d"], scores=out["scores"])
  stem = os.path.splitext(os.path.basename(npy))[0]
  overlays = []
  for i in range(min(max_overlays, len(out["pose_3d"]))):
    labels = [f"hypothesis {k}: score {s:+.3f}"
              for k, s in enumerate(out["scores"][i])]
    fig = viz.prediction_figure(
        None, out["keypoints_normalised"][i], out["hypotheses_3d"][i],
        skeleton, title=f"{stem}[{i}]", labels=labels, unit="units")
    name = f"{stem}_{i}_overlay.png"
    fig.savefig(os.path.join(output_dir, name), dpi=100)
    overlays.append(name)
  doc = {"model_dir": predictor.model_dir, "model": predictor.model_name,
         "input": npy, "skeleton": skeleton.name,
         "joint_names": list(skeleton.joint_names),
         "norm_scale": out["norm_scale"],
         "units": "root-relative 3D in the units of the normalised 2D "
                  "input (defined up to scale)",
         "pose_3d": _round(out["pose_3d"], 5),
         "choice": out["choice"],
         "hypothesis_order": "confident first, then by descending score; "
                             "scores: higher = more plausible",
         "hypotheses_3d": _round(out["hypotheses_3d"], 5),
         "scores": _round(out["scores"], 5),
         "overlays": overlays}
  with open(os.path.join(output_dir, "predictions.json"), "w") as f:
    json.dump(doc, f)
  return doc


def run() -> None:
  viz.use_headless_backend()
  try:
    main(sys.argv[1:])
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"xsup.predict: error: {e}")


if __name__ == "__main__":
  run()
