"""Tests of the `cmu_mocap_lifting` TFDS builder."""

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import cmu_fixtures
from xsup.data.builders import cmu_mocap_lifting
from xsup.geometry import camera as camera_lib


def shared_cmu_dir():
  """`shared/data/cmu_mocap` of the project, or None when absent."""
  candidates = [os.environ.get("XSUP_SHARED_DIR"),
                Path(__file__).resolve().parents[2] / "shared",
                Path(__file__).resolve().parents[1] / ".." / "shared"]
  for c in candidates:
    folder = Path(c) / "data" / "cmu_mocap" if c else None
    if folder and (folder / "dev_h36m17.npz").is_file() and (
        folder / "bvh").is_dir():
      return folder
  return None


def _build(manual_dir, data_dir):
  builder = cmu_mocap_lifting.Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read(builder, split):
  ds = builder.as_dataset(split=split, shuffle_files=False)
  n = builder.info.splits[split].num_examples
  return next(iter(tfds.as_numpy(ds.batch(n))))


def _write_mix(manual):
  """A BVH clip at the top and an ASF/AMC clip in a sub-folder."""
  rng = np.random.default_rng(0)
  cmu_fixtures.write_bvh(manual / "09_01.bvh",
                         cmu_fixtures.random_motion(rng, 16, max_deg=20))
  cmu_fixtures.write_asf_amc(manual / "subjects" / "07", "07", "01",
                             cmu_fixtures.random_motion(rng, 8, max_deg=20))


def _check_examples(data, clip_joints_mm):
  """Reprojection and world consistency of one clip's examples."""
  views = cmu_mocap_lifting.film(clip_joints_mm)
  cam, frame = data["camera"], data["frame"]
  rot, trans = views["rot"][cam], views["trans"][cam]
  # keypoints_3d: camera frame metres of the clip's joints.
  world = np.asarray(camera_lib.camera_to_world(
      data["keypoints_3d"] * 1000.0, rot, trans))
  np.testing.assert_allclose(world, clip_joints_mm[frame], atol=0.5)
  # keypoints_2d: pinhole projection of keypoints_3d.
  reproj = np.asarray(camera_lib.project(data["keypoints_3d"],
                                         data["focal"], data["center"]))
  np.testing.assert_allclose(reproj, data["keypoints_2d"], atol=0.02)
  assert np.all(data["keypoints_3d"][..., 2] > 2.0)  # metres, ~5 m away
  # The cameras look at the clip's mean pelvis: the subject is in the image
  # (walking clips may step a little out of it at the ends).
  inside = np.all((data["keypoints_2d"] > 0) & (data["keypoints_2d"] < 1000),
                  axis=(-1, -2))
  assert inside.mean() > 0.9
  pelvis = np.median(data["keypoints_2d"][:, 0], axis=0)
  assert np.all(np.abs(pelvis - data["center"][0]) < 250)


def test_find_clips(tmp_path):
  _write_mix(tmp_path)
  (tmp_path / "notes.txt").write_text("not mocap")
  clips = cmu_mocap_lifting.find_clips(tmp_path)
  assert [c.clip_id for c in clips] == ["07_01", "09_01"]
  assert [c.split_name for c in clips] == ["clip_07_01", "clip_09_01"]
  assert [c.subject for c in clips] == ["07", "09"]
  assert clips[0].asf_path.endswith(os.path.join("07", "07.asf"))
  assert clips[1].asf_path is None


def test_find_clips_errors(tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="no .bvh or .amc"):
    cmu_mocap_lifting.find_clips(tmp_path / "a")
  (tmp_path / "b").mkdir()
  (tmp_path / "b" / "05_01.amc").write_text(":DEGREES\n")
  with pytest.raises(FileNotFoundError, match=r"05_01.amc has no skeleton"):
    cmu_mocap_lifting.find_clips(tmp_path / "b")
  (tmp_path / "b" / "x.asf").write_text("")
  (tmp_path / "b" / "y.asf").write_text("")
  with pytest.raises(FileNotFoundError, match="05.asf"):
    cmu_mocap_lifting.find_clips(tmp_path / "b")
  _write_mix(tmp_path / "c")
  rng = np.random.default_rng(1)
  cmu_fixtures.write_bvh(tmp_path / "c" / "x" / "07_01.bvh",
                         cmu_fixtures.random_motion(rng, 4))
  with pytest.raises(ValueError, match="both give split 'clip_07_01'"):
    cmu_mocap_lifting.find_clips(tmp_path / "c")


def test_build_errors(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(AssertionError, match="empty"):
    _build(empty, tmp_path / "d1")
  bad = tmp_path / "bad"
  bad.mkdir()
  text = cmu_fixtures.bvh_text(
      cmu_fixtures.random_motion(np.random.default_rng(2), 4))
  lines = text.splitlines()
  lines[-2] = lines[-2].rsplit(" ", 1)[0]  # one value short
  (bad / "01_01.bvh").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError,
                     match=rf"01_01.bvh:{len(lines) - 1}: expected"):
    _build(bad, tmp_path / "d2")


def test_build_generated_bvh_and_asf_amc(tmp_path):
  manual = tmp_path / "manual"
  _write_mix(manual)
  builder = _build(manual, tmp_path / "data")
  assert builder.info.name == "cmu_mocap_lifting"
  assert set(builder.info.splits) == {"clip_07_01", "clip_09_01"}
  for split, frames, subject in (("clip_09_01", 4, "09"),
                                 ("clip_07_01", 2, "07")):
    data = _read(builder, split)
    assert len(data["frame"]) == 4 * frames  # 120 fps -> 30 fps, 4 cameras
    assert {s.decode() for s in data["subject"]} == {subject}
    assert {a.decode() for a in data["action"]} == {split[len("clip_"):]}
    assert sorted(set(data["camera"].tolist())) == [0, 1, 2, 3]
    assert sorted(set(data["frame"].tolist())) == list(range(frames))
    clip = [c for c in cmu_mocap_lifting.find_clips(manual)
            if c.split_name == split][0]
    _check_examples(data, cmu_mocap_lifting.load_clip(clip))


def test_build_shared_cgspeed_clips(tmp_path):
  folder = shared_cmu_dir()
  if folder is None:
    pytest.skip("shared CMU data not found (set XSUP_SHARED_DIR)")
  builder = _build(folder / "bvh", tmp_path / "data")
  dev = np.load(folder / "dev_h36m17.npz")
  assert set(builder.info.splits) == {
      f"clip_{c}" for c in dev["clip_cmu_ids"]}
  for clip, cmu_id in enumerate(dev["clip_cmu_ids"]):
    ref = dev["positions_3d"][dev["clip_ids"] == clip]
    data = _read(builder, f"clip_{cmu_id}")
    assert len(data["frame"]) == 4 * len(ref)
    assert {s.decode() for s in data["subject"]} == {cmu_id.split("_")[0]}
    # The world joints behind the examples are the developer set's.
    _check_examples(data, ref)
  both = builder.as_dataset(split="clip_131_01+clip_131_02")
  n01 = int(np.sum(dev["clip_ids"] == 0))
  n02 = int(np.sum(dev["clip_ids"] == 1))
  assert int(both.cardinality()) == 4 * (n01 + n02)
