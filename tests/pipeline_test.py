"""The streaming input pipeline: sources, global batches, grain, checkpoints."""

import glob
import os

import numpy as np
import pytest

from xsup.data import pipeline
from xsup.data import sources


@pytest.fixture(scope="module")
def lifting_builder(tmp_path_factory):
  """`synthetic_lifting` config `tiny` (400 / 100 examples), ArrayRecord."""
  return sources.prepare("synthetic_lifting", "tiny",
                         str(tmp_path_factory.mktemp("tfds")))


@pytest.fixture(scope="module")
def image_builder(tmp_path_factory):
  """`synthetic_multiview` config `tiny` (4 examples x 4 views at 64 px)."""
  return sources.prepare("synthetic_multiview", "tiny",
                         str(tmp_path_factory.mktemp("tfds_images")))


def _arrays(n=40):
  return {"x": np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3)),
          "id": np.arange(n)}


# ---------------------------------------------------------------------------
# Global batches.


def test_process_shards_partition_each_global_batch():
  n, batch, processes = 50, 8, 4
  samplers = [pipeline.GlobalBatchSampler(n, batch, seed=3, process_index=p,
                                          process_count=processes)
              for p in range(processes)]
  whole = pipeline.GlobalBatchSampler(n, batch, seed=3, process_index=0,
                                      process_count=1)
  assert whole.steps_per_epoch == n // batch == 6
  for step in range(2 * whole.steps_per_epoch):
    parts = [s.indices(step) for s in samplers]
    assert all(len(p) == batch // processes for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts),
                                  whole.indices(step))
  # One epoch visits distinct examples; the next epoch is another order.
  epoch0 = np.concatenate([whole.indices(s) for s in range(6)])
  epoch1 = np.concatenate([whole.indices(s) for s in range(6, 12)])
  assert len(set(epoch0.tolist())) == 48
  assert not np.array_equal(epoch0, epoch1)
  unshuffled = pipeline.GlobalBatchSampler(n, batch, seed=3, shuffle=False,
                                           process_index=0, process_count=1)
  np.testing.assert_array_equal(unshuffled.indices(7), np.arange(8, 16))


def test_bad_batch_settings_name_the_setting():
  with pytest.raises(ValueError, match=r"config.batch_size=6 .* 4 processes"):
    pipeline.GlobalBatchSampler(40, 6, seed=0, process_index=0,
                                process_count=4)
  with pytest.raises(ValueError, match=r"config.synthetic.batch_size=80 "
                     r"exceeds the 40 examples"):
    pipeline.GlobalBatchSampler(40, 80, seed=0, process_index=0,
                                process_count=1,
                                setting="config.synthetic.batch_size")


# ---------------------------------------------------------------------------
# The grain iterator and its checkpointed state.


def _batches(n=40, batch=4, seed=0, description="toy"):
  source = sources.ArraySource(_arrays(n), description)
  return pipeline.SourceBatches(
      source, pipeline.GlobalBatchSampler(len(source), batch, seed=seed,
                                          process_index=0, process_count=1))


def test_iterator_state_resumes_exactly():
  fn = _batches()
  it = pipeline.StepIterator(fn, fn.identity())
  first = [next(it)["id"] for _ in range(13)]  # Crosses an epoch (10 steps).
  for step, ids in enumerate(first):
    np.testing.assert_array_equal(ids, fn(step)["id"])
  it = pipeline.StepIterator(fn, fn.identity())
  for _ in range(5):
    next(it)
  state = it.get_state()
  it.close()
  resumed = pipeline.StepIterator(fn, fn.identity())
  resumed.set_state(state)
  assert resumed.next_step == 5
  for step in range(5, 13):
    np.testing.assert_array_equal(next(resumed)["id"], first[step])
  resumed.close()


@pytest.mark.parametrize("change,field", [
    (dict(batch=8), "global_batch_size"),
    (dict(description="other"), "dataset"),
    (dict(seed=1), "seed"),
    (dict(n=44), "num_examples")])
def test_state_of_other_data_or_settings_is_refused(change, field):
  fn = _batches()
  it = pipeline.StepIterator(fn, fn.identity(), start_step=3)
  state = it.get_state()
  other = _batches(**change)
  with pytest.raises(pipeline.IteratorStateError, match=field):
    pipeline.StepIterator(other, other.identity()).set_state(state)
  with pytest.raises(pipeline.IteratorStateError, match="Unreadable"):
    pipeline.StepIterator(fn, fn.identity()).set_state(b"{not json")


def test_workers_decode_the_same_batches_and_share_the_state(image_builder):
  source = sources.TfdsSource(image_builder, "train", ("image", "mask"))
  fn = pipeline.SourceBatches(
      source, pipeline.GlobalBatchSampler(len(source), 2, seed=0,
                                          process_index=0, process_count=1))
  serial = pipeline.StepIterator(fn, fn.identity())
  expected = [next(serial) for _ in range(5)]
  serial.close()
  assert expected[0]["image"].shape == (2, 4, 64, 64, 3)
  assert expected[0]["image"].dtype == np.uint8
  assert expected[0]["mask"].shape == (2, 4, 64, 64, 1)
  parallel = pipeline.StepIterator(fn, fn.identity(), num_workers=2)
  try:
    for want in expected[:3]:
      got = next(parallel)
      for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    state = parallel.get_state()
  finally:
    parallel.close()
  # A state saved with 2 workers resumes without workers, and vice versa.
  resumed = pipeline.StepIterator(fn, fn.identity())
  resumed.set_state(state)
  for want in expected[3:]:
    np.testing.assert_array_equal(next(resumed)["image"], want["image"])
  resumed.close()


def test_eval_chunks_cover_the_split_in_order_with_a_padded_tail():
  source = sources.ArraySource(_arrays(10))
  chunks = list(pipeline.eval_chunks(source, 4))
  assert [valid for _, valid in chunks] == [4, 4, 2]
  assert all(len(batch["id"]) == 4 for batch, _ in chunks)
  ids = np.concatenate([batch["id"][:valid] for batch, valid in chunks])
  np.testing.assert_array_equal(ids, np.arange(10))
  with pytest.raises(ValueError, match="chunk size"):
    list(pipeline.eval_chunks(source, 0))


# ---------------------------------------------------------------------------
# Prepared files: reading, damage, older formats.


def test_tfds_source_reads_stacked_features(lifting_builder):
  source = sources.TfdsSource(lifting_builder, "train")
  assert len(source) == 400
  batch = source.read([3, 1, 2])
  assert batch["keypoints_2d"].shape == (3, 17, 2)
  assert batch["keypoints_3d"].dtype == np.float32
  assert batch["action"].dtype.kind == "U"
  np.testing.assert_array_equal(batch["keypoints_2d"][1],
                                source.read([1])["keypoints_2d"][0])
  assert source.feature_shapes["keypoints_2d"] == (17, 2)
  only = sources.TfdsSource(lifting_builder, "test", ("keypoints_2d",))
  assert set(only.read([0])) == {"keypoints_2d"}
  with pytest.raises(IndexError, match=r"out of range \[0, 400\)"):
    source.read([400])


def _copy_prepared(builder, tmp_path):
  """A copy of a prepared dataset's data dir (its damage stays local)."""
  import shutil  # pylint: disable=g-import-not-at-top
  root = os.fspath(builder.data_dir_root)
  copy = tmp_path / "copy"
  shutil.copytree(root, copy)
  return str(copy)


def _shard(data_dir, split="train"):
  (path,) = glob.glob(os.path.join(
      data_dir, "synthetic_lifting", "tiny", "*",
      f"synthetic_lifting-{split}.array_record-*"))
  return path


def test_missing_or_truncated_shard_is_named(lifting_builder, tmp_path):
  data_dir = _copy_prepared(lifting_builder, tmp_path)
  path = _shard(data_dir)
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(sources.DataFileError,
                     match=f"shard {path} cannot be read"):
    sources.prepare("synthetic_lifting", "tiny", data_dir)
  os.remove(path)
  with pytest.raises(sources.DataFileError, match=f"shard {path} is missing"):
    sources.prepare("synthetic_lifting", "tiny", data_dir)


def test_corrupt_records_are_named_when_read(lifting_builder, tmp_path):
  data_dir = _copy_prepared(lifting_builder, tmp_path)
  path = _shard(data_dir)
  data = bytearray(open(path, "rb").read())
  data[1000:1200] = bytes(b ^ 0xFF for b in data[1000:1200])
  with open(path, "wb") as f:
    f.write(bytes(data))
  builder = sources.prepare("synthetic_lifting", "tiny", data_dir)
  source = sources.TfdsSource(builder, "train")
  with pytest.raises(sources.DataFileError, match=f"{path}.*Delete"):
    sources.read_all(source)


def test_tfrecord_dataset_of_older_versions_is_converted(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path / "old")
  old = sources.get_builder("synthetic_lifting", "tiny", data_dir)
  old.download_and_prepare()  # TFRecord, as older versions prepared it.
  expected = next(iter(tfds.as_numpy(old.as_dataset(
      "test", shuffle_files=False).batch(1000))))
  builder = sources.prepare("synthetic_lifting", "tiny", data_dir)
  got = sources.read_all(sources.TfdsSource(builder, "test"))
  np.testing.assert_array_equal(got["keypoints_2d"],
                                expected["keypoints_2d"])
  np.testing.assert_array_equal(got["keypoints_3d"],
                                expected["keypoints_3d"])
  # The conversion happens once.
  assert glob.glob(os.path.join(os.fspath(builder.data_dir),
                                "*.array_record-*"))
  again = sources.prepare("synthetic_lifting", "tiny", data_dir)
  assert "array_record" in {f.value for f in
                            again.info.available_file_formats()}
