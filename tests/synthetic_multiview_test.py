"""Tests of the `synthetic_multiview` TFDS builder (config `tiny`)."""

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xsup.data.builders import synthetic_multiview as sm
from xsup.geometry import camera as camera_lib

V, S = sm.NUM_VIEWS, 64


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """All splits of the `tiny` config, prepared in a temporary data_dir."""
  builder = sm.Builder(config="tiny", data_dir=str(
      tmp_path_factory.mktemp("tfds")))
  builder.download_and_prepare()
  data = {split: sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                        key=lambda ex: int(ex["frame"]))
          for split in sm.SPLITS}
  return builder, data


def test_splits_shapes_and_dtypes(built):
  builder, data = built
  cfg = builder.builder_config
  assert builder.name == "synthetic_multiview"
  assert {s: len(v) for s, v in data.items()} == {
      "synthetic": cfg.num_synthetic, "train": cfg.num_train,
      "test": cfg.num_test}
  expected = {
      "image": ((V, S, S, 3), np.uint8), "mask": ((V, S, S, 1), np.uint8),
      "joints_3d_camera": ((V, 18, 3), np.float32),
      "joints_2d_patch": ((V, 18, 2), np.float32),
      "affine": ((V, 2, 3), np.float32), "rot": ((V, 3, 3), np.float32),
      "trans": ((V, 3), np.float32), "focal": ((V, 2), np.float32),
      "center": ((V, 2), np.float32), "frame": ((), np.int32)}
  for split, examples in data.items():
    for i, ex in enumerate(examples):
      for name, (shape, dtype) in expected.items():
        assert ex[name].shape == shape, (split, name)
        assert ex[name].dtype == dtype, (split, name)
      assert int(ex["frame"]) == i
      assert set(np.unique(ex["mask"])) <= {0, 255}
      subject = ex["subject"].decode()
      if split == "synthetic":
        assert subject == "synthetic"
      else:
        ids = sm.TARGET_SUBJECTS[split]
        assert subject in {f"target_{k}" for k in ids}
      assert ex["action"].decode() in sm.poses_lib.ACTIONS


def test_patch_joints_are_the_projected_camera_joints(built):
  _, data = built
  for examples in data.values():
    for ex in examples:
      uv = camera_lib.project(ex["joints_3d_camera"], ex["focal"],
                              ex["center"])
      np.testing.assert_allclose(
          ex["joints_2d_patch"],
          np.asarray(camera_lib.apply_affine(uv, ex["affine"])), atol=1e-3)


def test_views_agree_on_one_world_pose(built):
  _, data = built
  for examples in data.values():
    for ex in examples:
      world = np.asarray(camera_lib.camera_to_world(
          ex["joints_3d_camera"], ex["rot"], ex["trans"]))
      np.testing.assert_allclose(world, np.broadcast_to(world[0], world.shape),
                                 atol=0.5)
      assert world[0, :, 2].min() > 0.0       # standing above the floor
      # H36M-18 thorax is the mid-shoulder point.
      np.testing.assert_allclose(world[0, 17], world[0, [11, 14]].mean(0),
                                 atol=1e-2)
      for r in ex["rot"]:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)


def test_mask_covers_the_joints_and_the_person_is_centred(built):
  _, data = built
  for examples in data.values():
    for ex in examples:
      for v in range(V):
        # Each joint lies in the figure: at least one of the 4 pixel centres
        # around it is masked (at 64 px a pixel is ~3 cm, and the head joint
        # lies ~1 cm under the head's surface).
        xy = ex["joints_2d_patch"][v]
        inside = np.all((xy >= 0) & (xy < S - 1), axis=-1)
        assert inside.mean() > 0.9
        x0, y0 = np.floor(xy[inside]).astype(int).T
        m = ex["mask"][v, ..., 0] == 255
        near = m[y0, x0] | m[y0 + 1, x0] | m[y0, x0 + 1] | m[y0 + 1, x0 + 1]
        assert np.all(near)
        frac = (ex["mask"][v] > 0).mean()
        assert 0.05 < frac < 0.7
        lo = ex["joints_2d_patch"][v].min(0)
        hi = ex["joints_2d_patch"][v].max(0)
        np.testing.assert_allclose(0.5 * (lo + hi), [S / 2, S / 2], atol=0.5)


def _saturation_and_roughness(examples):
  sats, rough = [], []
  for ex in examples:
    img = ex["image"].astype(np.float64) / 255.0
    person = ex["mask"][..., 0] > 0
    mx, mn = img.max(-1), img.min(-1)
    sats.append(np.mean(((mx - mn) / np.maximum(mx, 1e-6))[person]))
    # Mean absolute horizontal difference of background pixel pairs.
    bg = ~person[..., 1:] & ~person[..., :-1]
    diff = np.abs(np.diff(img, axis=-2)).mean(-1)
    rough.append(np.mean(diff[bg]))
  return np.mean(sats), np.mean(rough)


def test_domains_differ_in_appearance(built):
  _, data = built
  sat_s, rough_s = _saturation_and_roughness(data["synthetic"])
  sat_t, rough_t = _saturation_and_roughness(data["train"] + data["test"])
  assert sat_s > sat_t + 0.15          # saturated part colours vs clothing
  assert rough_t > 2.0 * rough_s       # cluttered noisy studio vs flat

  # The target domain is one fixed rig; the synthetic one changes each time.
  target = data["train"] + data["test"]
  for ex in target[1:]:
    np.testing.assert_array_equal(ex["rot"], target[0]["rot"])
  assert not np.allclose(data["synthetic"][0]["rot"],
                         data["synthetic"][1]["rot"])


def test_generation_is_deterministic(built):
  builder, data = built
  cfg = builder.builder_config
  for split in ("synthetic", "test"):
    domain = sm.domain_of_split(split)
    joints, actions = sm.split_poses(cfg, domain, split, len(data[split]))
    i = len(data[split]) - 1
    again = sm.make_example(cfg, domain, split, i, joints[i], actions[i])
    for name, value in again.items():
      stored = data[split][i][name]
      if isinstance(stored, bytes):
        stored = stored.decode()
      np.testing.assert_array_equal(np.asarray(value), stored,
                                    err_msg=f"{split}/{name}")
  other = dataclasses.replace(cfg, seed=cfg.seed + 1)
  joints, actions = sm.split_poses(other, sm.SYNTHETIC_DOMAIN, "synthetic", 1)
  ex = sm.make_example(other, sm.SYNTHETIC_DOMAIN, "synthetic", 0, joints[0],
                       actions[0])
  assert not np.array_equal(ex["image"], data["synthetic"][0]["image"])


def test_bad_split_and_workers():
  with pytest.raises(ValueError, match="unknown split"):
    sm.domain_of_split("validation")
  with pytest.raises(ValueError, match="num_workers"):
    sm.Builder(config="tiny", num_workers=0)
