"""Lifting inputs from any lifting builder (shared feature schema).

Every lifting builder (`synthetic_lifting`, `h36m_lifting`,
`cmu_mocap_lifting`) yields `keypoints_2d` [17, 2] px, `keypoints_3d`
[17, 3] camera-frame metres, `focal` [2], `center` [2], `subject`, `action`,
`camera`, `frame`. This module turns a loaded split into model inputs:
normalised 2D (ITES normalisation) and root-relative 3D in millimetres.
"""

from typing import Dict, Optional

import numpy as np

from xsup.data import builder_configs
from xsup.data import sources
from xsup.geometry import camera

REQUIRED = ("keypoints_2d", "keypoints_3d", "focal")


def prepare(raw: sources.Batch, source: str = "dataset",
            scale: Optional[float] = None) -> sources.Batch:
  """Normalises a raw lifting split.

  Args:
    raw: arrays of a lifting builder split.
    source: name used in error messages.
    scale: reuse a 2D normalisation scale; by default each split computes
      its own from its 2D keypoints alone (no 3D is used).
  Returns:
    `keypoints_2d` `[N, 17, 2]` normalised, `pose_3d` `[N, 17, 3]`
    root-relative mm, plus the metadata fields (`action`, `subject`, ...)
    and the scalar-per-split `norm_scale` `[N]`.
  """
  for key in REQUIRED:
    if key not in raw:
      raise ValueError(f"{source}: missing feature {key!r}; lifting builders "
                       f"must provide {REQUIRED}")
  kp2d = np.asarray(raw["keypoints_2d"], np.float32)
  kp3d = np.asarray(raw["keypoints_3d"], np.float32)
  if kp2d.ndim != 3 or kp2d.shape[-1] != 2:
    raise ValueError(f"{source}: keypoints_2d must be [N, J, 2], got "
                     f"{kp2d.shape}")
  if kp3d.shape[:2] != kp2d.shape[:2] or kp3d.shape[-1] != 3:
    raise ValueError(f"{source}: keypoints_3d must be [N, J, 3] matching "
                     f"keypoints_2d {kp2d.shape}, got {kp3d.shape}")
  for name, values in (("keypoints_2d", kp2d), ("keypoints_3d", kp3d),
                       ("focal", np.asarray(raw["focal"], np.float32))):
    bad = ~np.isfinite(values).reshape(len(values), -1).all(-1)
    if bad.any():
      raise ValueError(f"{source}: non-finite {name} in {int(bad.sum())} "
                       f"examples; first: {describe_example(raw, bad)}")
  norm2d, scale = camera.normalize_2d_lifting(kp2d, raw["focal"], scale=scale)
  out: Dict[str, np.ndarray] = {
      "keypoints_2d": norm2d,
      "pose_3d": ((kp3d - kp3d[:, :1]) * 1000.0).astype(np.float32),
      "norm_scale": np.full((len(kp2d),), scale, np.float32),
  }
  for key in ("subject", "action", "camera", "frame"):
    if key in raw:
      out[key] = raw[key]
  return out


def describe_example(raw: sources.Batch, bad: np.ndarray) -> str:
  """Where the first example of mask `bad` `[N]` comes from (its index and
  the subject, action, camera and frame fields that the split has)."""
  i = int(np.argmax(bad))
  parts = [f"example {i}"]
  for key in ("subject", "action", "camera", "frame"):
    if key in raw:
      value = raw[key][i]
      if isinstance(value, bytes):
        value = value.decode()
      parts.append(f"{key} {str(value)!r}" if isinstance(value, str)
                   else f"{key} {int(value)}")
  return ", ".join(parts)


def load(dataset_config, split: str) -> sources.Batch:
  """Loads and prepares `split` of the builder named in `dataset_config`."""
  raw = sources.load_split(dataset_config.name, split,
                           builder_config=builder_configs.resolve(
                               dataset_config),
                           data_dir=dataset_config.get("data_dir"),
                           manual_dir=dataset_config.get("manual_dir"))
  source = f"{dataset_config.name}[{split}]"
  if dataset_config.get("manual_dir"):
    source += f" (from {dataset_config.manual_dir})"
  return prepare(raw, source=source)
