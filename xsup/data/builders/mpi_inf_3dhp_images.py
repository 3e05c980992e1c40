"""TFDS builder: MPI-INF-3DHP multi-view person patches with masks.

Features in `image_features` (`h36m18` joints, mapped from the 28 training
joints) plus

  joints_3d_univ17  [V, 17, 3] float32  `mpi3dhp17` joints, camera mm, at the
                                        universal skeleton scale (the target
                                        of the PCK/AUC protocol)

Splits:
  * `train`: S1-S6, Seq1-2, views [0, 2, 4, 7, 8] (V = 5), every 5th frame.
  * `validation`: S7-S8, same views, every 10th frame.
  * `test`: the official test set TS1-TS6 (V = 1), frames with
    `valid_frame` = 1. Its `joints_3d_camera` comes from the 17 test joints
    (`mpi3dhp17` -> `h36m18`: thorax = mean of the shoulders, neck from the
    3DHP neck, head from head top); the cameras are the published test
    intrinsics with `rot` = I and `trans` = 0; `mask` is all 255 (no
    segmentation); `action` is the activity name.

Training frames are dropped as in the reference: when a view sees a joint
outside its image, when more than 4 of a view's 28 joints fall on black
pixels of the dataset's chair mask, or when a view's dataset foreground mask
covers more than 85% of the image. Person masks are thresholded at 127.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds

from xsup import skeleton
from xsup.data.builders import image_features
from xsup.data.builders import patches
from xsup.data.formats import images
from xsup.data.formats import mpi_inf_3dhp as mpi
from xsup.geometry import camera as camera_lib

_MANUAL = """\
Point `manual_dir` at the `data/` folder holding MPI-INF-3DHP with its
frames extracted from the videos (numbered from 1):

  <manual_dir>/mpi_inf_3dhp/S1/Seq1/annot.mat
  <manual_dir>/mpi_inf_3dhp/S1/Seq1/camera.calibration
  <manual_dir>/mpi_inf_3dhp/S1/Seq1/images/video_0/frame_000001.jpg
  <manual_dir>/mpi_inf_3dhp/S1/Seq1/masks/video_0/frame_000001.jpg       (FGmasks)
  <manual_dir>/mpi_inf_3dhp/S1/Seq1/chair_masks/video_0/frame_000001.jpg (ChairMasks)
  <manual_dir>/sam_masks/mpi_inf_3dhp/S1/Seq1/masks/video_0/frame_000001.jpg

and the official test set (for the `test` split):

  <manual_dir>/mpi_inf_3dhp/mpi_inf_3dhp_test_set/TS1/annot_data.mat
  <manual_dir>/mpi_inf_3dhp/mpi_inf_3dhp_test_set/TS1/imageSequence/img_000001.jpg

(`<manual_dir>/mpi_inf_3dhp_test_set/TS1/...` is accepted too). File formats
are described in `xsup.data.formats.mpi_inf_3dhp`.
"""


@dataclasses.dataclass(eq=False)
class MpiInf3dhpImagesConfig(image_features.PatchConfig):
  """Config: patch size, sequences, sampling and frame filters.

  Attributes:
    views: training camera ids.
    train_subjects, validation_subjects: subject numbers.
    sequences: sequence numbers per subject.
    test_sequences: test sequence numbers (TS1..TS6); empty: no test split.
    train_step, validation_step, test_step: keep every n-th frame (for the
      test set: every n-th valid frame).
    filter_outside: drop frames with a joint outside a view's image.
    filter_chair: drop frames with more than `chair_max_joints` joints on
      black chair-mask pixels of a view.
    filter_overexposed: drop frames whose foreground mask covers more than
      `overexposed_fraction` of a view.
    mask_threshold: person masks become 255 above it, 0 otherwise.
    rect_3d_mm: side of the 3D box the patch covers.
  """
  views: Tuple[int, ...] = mpi.TRAIN_VIEWS
  train_subjects: Tuple[int, ...] = mpi.TRAIN_SUBJECTS
  validation_subjects: Tuple[int, ...] = mpi.VALIDATION_SUBJECTS
  sequences: Tuple[int, ...] = mpi.SEQUENCES
  test_sequences: Tuple[int, ...] = mpi.TEST_SEQUENCES
  train_step: int = 5
  validation_step: int = 10
  test_step: int = 1
  filter_outside: bool = True
  filter_chair: bool = True
  chair_max_joints: int = 4
  filter_overexposed: bool = True
  overexposed_fraction: float = 0.85
  mask_threshold: int = 127
  rect_3d_mm: float = patches.RECT_3D_MM


def _binarize(mask: np.ndarray, threshold: int) -> np.ndarray:
  return np.where(mask > threshold, 255, 0).astype(np.uint8)


class MpiInf3dhpImages(tfds.core.GeneratorBasedBuilder):
  """MPI-INF-3DHP multi-view person patches, masks, cameras and 3D joints."""

  name = "mpi_inf_3dhp_images"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
  BUILDER_CONFIGS = [
      MpiInf3dhpImagesConfig(name=image_features.size_config_name(s),
                             image_size=s, description=f"{s}x{s} patches")
      for s in image_features.IMAGE_SIZES]
  DEFAULT_CONFIG_NAME = image_features.size_config_name(256)

  def _info(self) -> tfds.core.DatasetInfo:
    extra = {"joints_3d_univ17": image_features.float_tensor(
        None, mpi.NUM_TEST_JOINTS, 3)}
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=image_features.multiview_features(
            self.builder_config.image_size, None, extra=extra),
        homepage="https://vcai.mpi-inf.mpg.de/3dhp-dataset/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    layout = mpi.find_layout(dl_manager.manual_dir)
    cfg = self.builder_config
    splits = {"train": self._generate_examples(layout, "train"),
              "validation": self._generate_examples(layout, "validation")}
    if cfg.test_sequences:
      splits["test"] = self._generate_examples(layout, "test")
    return splits

  def _generate_examples(self, layout: mpi.MpiInf3dhpLayout, split: str
                         ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    if split == "train":
      return self._generate_train(layout, cfg.train_subjects, cfg.train_step)
    if split == "validation":
      return self._generate_train(layout, cfg.validation_subjects,
                                  cfg.validation_step)
    if split == "test":
      return self._generate_test(layout)
    raise ValueError(f"Unknown split {split!r}")

  def _keep_frame(self, layout: mpi.MpiInf3dhpLayout, subject: int,
                  sequence: int, frame: int,
                  annots: Dict[int, Dict[str, np.ndarray]],
                  cameras: Dict[int, mpi.Camera]) -> bool:
    """The reference's frame filters (see the module docstring)."""
    cfg = self.builder_config
    pixels = {}
    for v in cfg.views:
      cam = cameras[v]
      uv = np.asarray(camera_lib.project(annots[v]["annot3"][frame],
                                         cam.focal, cam.center), np.float64)
      inside = ((uv[:, 0] >= 0) & (uv[:, 1] >= 0) & (uv[:, 0] < cam.width) &
                (uv[:, 1] < cam.height))
      if cfg.filter_outside and not np.all(inside):
        return False
      pixels[v] = uv
    for v in cfg.views:
      if cfg.filter_chair:
        path = layout.chair_mask_path(subject, sequence, v, frame)
        chair = images.read_mask(path, channel="red")
        cols = np.clip(pixels[v][:, 0].astype(np.int64), 0,
                       chair.shape[1] - 1)
        rows = np.clip(pixels[v][:, 1].astype(np.int64), 0,
                       chair.shape[0] - 1)
        if np.sum(chair[rows, cols] <= 127) > cfg.chair_max_joints:
          return False
      if cfg.filter_overexposed:
        path = layout.dataset_mask_path(subject, sequence, v, frame)
        fg = images.read_mask(path, channel="red") > 127
        if fg.sum() > cfg.overexposed_fraction * fg.size:
          return False
    return True

  def _generate_train(self, layout: mpi.MpiInf3dhpLayout,
                      subjects: Sequence[int], step: int
                      ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    for subject in subjects:
      for sequence in cfg.sequences:
        annot_path = layout.annotation_path(subject, sequence)
        annots = mpi.read_train_annotations(annot_path, cfg.views)
        calib_path = layout.calibration_path(subject, sequence)
        cameras = mpi.read_camera_calibration(calib_path)
        missing = [v for v in cfg.views if v not in cameras]
        if missing:
          raise ValueError(f"{calib_path}: no calibration for cameras "
                           f"{missing}")
        num_frames = min(layout.num_frames(subject, sequence, v)
                         for v in cfg.views)
        rows = min(annots[v]["annot3"].shape[0] for v in cfg.views)
        if num_frames > rows:
          raise ValueError(f"{annot_path}: {rows} annotated frames but "
                           f"{num_frames} extracted frames per view")
        for frame in mpi.frame_steps(num_frames, step):
          if not self._keep_frame(layout, subject, sequence, frame, annots,
                                  cameras):
            continue
          views = []
          univ = []
          for v in cfg.views:
            cam = cameras[v]
            image_path = layout.image_path(subject, sequence, v, frame)
            mask_path = layout.mask_path(subject, sequence, v, frame)
            image = images.read_rgb(image_path)
            mask = images.read_mask(mask_path, channel="red")
            patches.check_same_size(image, mask, image_path, mask_path)
            joints = skeleton.convert(annots[v]["annot3"][frame],
                                      "mpi3dhp28", "h36m18")
            view = patches.camera_view(image, mask, joints, cam.focal,
                                       cam.center, cam.rot, cam.trans,
                                       cfg.image_size,
                                       rect_mm=cfg.rect_3d_mm)
            view["mask"] = _binarize(view["mask"], cfg.mask_threshold)
            views.append(view)
            univ.append(skeleton.convert(annots[v]["univ_annot3"][frame],
                                         "mpi3dhp28", "mpi3dhp17"))
          example = patches.stack_views(views)
          example.update(subject=f"S{subject}", action=f"Seq{sequence}",
                         frame=frame,
                         joints_3d_univ17=np.stack(univ).astype(np.float32))
          yield f"S{subject}_Seq{sequence}_{frame:06d}", example

  def _generate_test(self, layout: mpi.MpiInf3dhpLayout
                     ) -> Iterator[Tuple[str, dict]]:
    cfg = self.builder_config
    for sequence in cfg.test_sequences:
      annot = mpi.read_test_annotations(layout.test_annotation_path(sequence))
      cam = mpi.camera_of_test_sequence(sequence)
      valid = np.flatnonzero(annot.valid)[::max(cfg.test_step, 1)]
      for frame in valid:
        frame = int(frame)
        image = images.read_rgb(layout.test_image_path(sequence, frame))
        no_mask = np.zeros(image.shape[:2], np.uint8)
        joints = skeleton.convert(annot.annot3[frame], "mpi3dhp17", "h36m18")
        view = patches.camera_view(image, no_mask, joints, cam.focal,
                                   cam.center, cam.rot, cam.trans,
                                   cfg.image_size, rect_mm=cfg.rect_3d_mm)
        view["mask"] = np.full_like(view["mask"], 255)
        example = patches.stack_views([view])
        activity = int(annot.activity[frame])
        example.update(
            subject=f"TS{sequence}",
            action=mpi.ACTIVITY_NAMES.get(activity, f"activity_{activity}"),
            frame=frame,
            joints_3d_univ17=annot.univ_annot3[frame][None].astype(
                np.float32))
        yield f"TS{sequence}_{frame:06d}", example


Builder = MpiInf3dhpImages

__all__ = ["Builder", "MpiInf3dhpImages", "MpiInf3dhpImagesConfig"]
