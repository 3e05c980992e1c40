"""Tests of the `synthetic_lifting` TFDS builder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xsup import skeleton
from xsup.data.builders import synthetic_lifting
from xsup.data.builders.synthetic_lifting import Builder
from xsup.data.synthetic import poses
from xsup.geometry import camera


def _load(data_dir, split):
  builder = Builder(config="tiny", data_dir=str(data_dir))
  builder.download_and_prepare()
  examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
  return builder, {k: np.stack([e[k] for e in examples]) for k in examples[0]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  builder, train = _load(data_dir, "train")
  _, test = _load(data_dir, "test")
  return builder, train, test


def test_features_and_sizes(tiny):
  builder, train, test = tiny
  assert builder.name == "synthetic_lifting"
  assert str(builder.info.version) == "1.0.0"
  cfg = builder.builder_config
  assert len(train["frame"]) == 4 * cfg.num_train
  assert len(test["frame"]) == 4 * cfg.num_test
  assert train["keypoints_2d"].shape[1:] == (17, 2)
  assert train["keypoints_3d"].shape[1:] == (17, 3)
  assert train["focal"].shape[1:] == (2,) and train["center"].shape[1:] == (2,)
  for key in ("keypoints_2d", "keypoints_3d", "focal", "center"):
    assert train[key].dtype == np.float32, key
  assert train["camera"].dtype == np.int32 and train["frame"].dtype == np.int32
  assert set(train["camera"]) == {0, 1, 2, 3}
  assert set(train["frame"]) == set(range(cfg.num_train))
  assert set(train["subject"]) == {b"synth_train"}
  assert set(test["subject"]) == {b"synth_test"}
  assert {a.decode() for a in train["action"]} <= set(poses.ACTIONS)
  np.testing.assert_allclose(train["focal"][0], [1145.0, 1145.0])


def test_3d_is_camera_frame_metres(tiny):
  _, train, _ = tiny
  k3d = train["keypoints_3d"].astype(np.float64)
  # 4.5-5.5 m rig, subject within 1 m of the centre: depths of a few metres.
  assert 2.5 < k3d[..., 2].min() and k3d[..., 2].max() < 7.5
  # Not root-centred.
  assert np.abs(k3d[:, 0]).max() > 1.0
  thigh = np.linalg.norm(k3d[:, 2] - k3d[:, 1], axis=-1)
  assert 0.3 < thigh.min() and thigh.max() < 0.6
  # The same pose seen by the 4 cameras has the same shape (rigid motion).
  order = np.lexsort((train["camera"], train["frame"]))
  bones = np.linalg.norm(skeleton.H36M17.bone_vectors(k3d[order]), axis=-1)
  bones = bones.reshape(-1, 4, 17)
  np.testing.assert_allclose(bones, bones[:, :1].repeat(4, 1), atol=1e-4)


def test_2d_is_projection_of_3d(tiny):
  _, train, test = tiny
  for data in (train, test):
    reproj = np.asarray(camera.project(data["keypoints_3d"], data["focal"],
                                       data["center"]))
    np.testing.assert_allclose(reproj, data["keypoints_2d"], atol=1e-2)
    # The person is inside the 1000 x 1000 image.
    assert data["keypoints_2d"].min() > 0 and data["keypoints_2d"].max() < 1000


def test_deterministic_and_splits_differ(tiny, tmp_path):
  _, train, test = tiny
  _, again = _load(tmp_path, "train")
  for key in train:
    np.testing.assert_array_equal(train[key], again[key])
  n = min(len(train["frame"]), len(test["frame"]))
  assert np.abs(train["keypoints_3d"][:n] - test["keypoints_3d"][:n]).mean() \
      > 0.05


def test_noise_config_adds_pixel_noise():
  clean_cfg = synthetic_lifting.SyntheticLiftingConfig(name="c", noise_px=0.0)
  noisy_cfg = synthetic_lifting.SyntheticLiftingConfig(name="n", noise_px=5.0)
  clean = synthetic_lifting.render_split(50, 3, clean_cfg)
  noisy = synthetic_lifting.render_split(50, 3, noisy_cfg)
  np.testing.assert_array_equal(clean["keypoints_3d"], noisy["keypoints_3d"])
  diff = noisy["keypoints_2d"] - clean["keypoints_2d"]
  assert abs(diff.std() - 5.0) < 0.3 and abs(diff.mean()) < 0.3
  configs = {c.name: c for c in Builder.BUILDER_CONFIGS}
  assert configs["noisy"].noise_px == 5.0 and configs["default"].noise_px == 0
