"""A prepared dataset follows its manual files (`xsup.data.fingerprint`)."""

import logging
import os
import shutil

import numpy as np
import pytest

import cmu_fixtures
from xsup.data import fingerprint
from xsup.data import sources


def test_fingerprint_differences(tmp_path):
  manual = tmp_path / "manual"
  (manual / "sub").mkdir(parents=True)
  (manual / "a.txt").write_text("alpha")
  (manual / "sub" / "b.txt").write_text("beta")
  (manual / ".hidden").write_text("ignored")
  extra = tmp_path / "cams.json"
  extra.write_text("{}")
  stored = fingerprint.compute(str(manual), [str(extra)])
  assert sorted(stored["files"]) == ["a.txt", os.path.join("sub", "b.txt")]
  assert not fingerprint.differences(stored, str(manual), [str(extra)])
  # Same contents under a new modification time: no change.
  os.utime(manual / "a.txt", ns=(1, 10**18))
  assert not fingerprint.differences(stored, str(manual), [str(extra)])
  # Same size, other contents, new time: changed.
  (manual / "a.txt").write_text("ALPHA")
  (manual / "c.txt").write_text("new")
  (manual / "sub" / "b.txt").unlink()
  (manual / ".hidden").write_text("still ignored")
  extra.write_text('{"P1": []}')
  assert fingerprint.differences(stored, str(manual), [str(extra)]) == [
      "added: c.txt", f"removed: {os.path.join('sub', 'b.txt')}",
      "changed: a.txt", f"changed: {extra}"]
  # The same files copied elsewhere (new times) match.
  copy = tmp_path / "copy"
  shutil.copytree(manual, copy)
  now = fingerprint.compute(str(manual), [str(extra)])
  assert not fingerprint.differences(now, str(copy), [str(extra)])


def _write_clips(manual, clips, seed):
  rng = np.random.default_rng(seed)
  for clip in clips:
    cmu_fixtures.write_bvh(manual / f"{clip}.bvh",
                           cmu_fixtures.random_motion(rng, 16, max_deg=20))


def test_changed_manual_files_are_prepared_again(tmp_path, caplog):
  """The CMU builder: a replaced clip, a new clip, a deleted directory."""
  manual, data = tmp_path / "cmu", tmp_path / "tfds"
  _write_clips(manual, ["131_01", "131_02"], seed=0)
  load = lambda split: sources.load_split("cmu_mocap_lifting", split,
                                          data_dir=str(data),
                                          manual_dir=str(manual))
  first = load("clip_131_01")
  builder = sources.get_builder("cmu_mocap_lifting", data_dir=str(data))
  prepared = builder.data_dir
  assert os.path.isfile(os.path.join(prepared, fingerprint.FILENAME))
  # Unchanged files: the prepared copy is reused as is.
  with caplog.at_level(logging.WARNING):
    again = load("clip_131_01")
  assert "preparing it again" not in caplog.text
  np.testing.assert_array_equal(first["keypoints_3d"], again["keypoints_3d"])

  # A replaced input file is seen (today's TFDS alone would ignore it).
  _write_clips(manual, ["131_01"], seed=1)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    replaced = load("clip_131_01")
  assert "changed: 131_01.bvh" in caplog.text
  assert str(manual) in caplog.text and prepared in caplog.text
  assert not np.allclose(replaced["keypoints_3d"], first["keypoints_3d"])

  # A new clip becomes a split.
  _write_clips(manual, ["131_03"], seed=2)
  assert len(load("clip_131_03")["keypoints_3d"]) > 0

  # The manual directory is gone: stop, naming both directories.
  moved = tmp_path / "elsewhere"
  manual.rename(moved)
  with pytest.raises(FileNotFoundError) as err:
    load("clip_131_01")
  assert str(manual) in str(err.value) and prepared in str(err.value)
  # Moved with the same contents: the prepared copy stays valid.
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    moved_load = sources.load_split("cmu_mocap_lifting", "clip_131_01",
                                    data_dir=str(data),
                                    manual_dir=str(moved))
  assert "preparing it again" not in caplog.text
  np.testing.assert_array_equal(moved_load["keypoints_3d"],
                                replaced["keypoints_3d"])


def test_prepared_without_a_record_is_prepared_again(tmp_path, caplog):
  manual, data = tmp_path / "cmu", tmp_path / "tfds"
  _write_clips(manual, ["131_01"], seed=0)
  sources.load_split("cmu_mocap_lifting", "clip_131_01",
                     data_dir=str(data), manual_dir=str(manual))
  builder = sources.get_builder("cmu_mocap_lifting", data_dir=str(data))
  os.remove(os.path.join(builder.data_dir, fingerprint.FILENAME))
  with caplog.at_level(logging.WARNING):
    sources.load_split("cmu_mocap_lifting", "clip_131_01",
                       data_dir=str(data), manual_dir=str(manual))
  assert "no record of the manual files" in caplog.text
  assert os.path.isfile(os.path.join(builder.data_dir, fingerprint.FILENAME))


def test_builders_without_manual_files_are_not_fingerprinted(tmp_path):
  data = tmp_path / "tfds"
  sources.load_split("synthetic_lifting", "test", builder_config="tiny",
                     data_dir=str(data))
  builder = sources.get_builder("synthetic_lifting", "tiny", str(data))
  assert not fingerprint.reads_manual_dir(builder)
  assert not os.path.exists(os.path.join(builder.data_dir,
                                         fingerprint.FILENAME))


def test_every_manual_builder_goes_through_the_hook():
  """Each builder with manual files is recognised by `prepare_builder`."""
  here = os.path.join(os.path.dirname(sources.__file__), "builders")
  names = sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py")
                 and "\nBuilder = " in open(os.path.join(here, f)).read())
  manual = [n for n in names if fingerprint.reads_manual_dir(
      sources.builder_module(n).Builder)]
  assert set(manual) >= {"h36m_lifting", "cmu_mocap_lifting", "h36m_images",
                         "mpi_inf_3dhp_images", "mpii", "tiktok",
                         "surreal_pseudo"}
  assert "synthetic_lifting" not in manual
