"""Tests of the `h36m_lifting` TFDS builder on tiny VideoPose3D-format files."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xsup import skeleton
from xsup.data.builders import h36m_lifting
from xsup.data.formats import h36m_cameras
from xsup.geometry import camera as camera_lib

METADATA = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13],
                                   [1, 2, 3, 14, 15, 16]]}
# subject -> VideoPose3D sequence name -> frames.
SEQUENCES = {"S1": {"Walking 1": 4, "Photo": 3},
             "S9": {"Directions": 3},
             "S11": {"Directions": 2, "Eating 2": 3}}
EXTRA_2D_FRAMES = 2
CAMERAS = h36m_cameras.cameras(list(SEQUENCES))


def _world_poses(rng, frames):
  """`[T, 32, 3]` metres: points around a body-sized box near the origin."""
  centre = np.array([0.2, -0.3, 0.9]) + rng.uniform(-0.3, 0.3, 3)
  return (centre + rng.uniform(-0.4, 0.4, (frames, 32, 3)) *
          np.array([1.0, 1.0, 2.0])).astype(np.float32)


def _project(points, cams):
  """World `[N, 17, 3]` m, one `Camera` per row -> distorted pixels."""
  stack = lambda f: np.stack([getattr(c, f) for c in cams])
  pc = camera_lib.world_to_camera(points, stack("rot"), stack("trans"))
  return np.asarray(camera_lib.project(
      pc, stack("focal"), stack("center"), stack("radial"),
      stack("tangential")), np.float32)


def _write_fixture(manual_dir, rng):
  positions_3d, gt, cpn = {}, {}, {}
  # All poses first, then one batched projection per camera index.
  rows = []
  for subject, seqs in SEQUENCES.items():
    positions_3d[subject], gt[subject], cpn[subject] = {}, {}, {}
    for action, frames in seqs.items():
      # The 2D runs longer than the mocap, like some H36M videos.
      world = _world_poses(rng, frames + EXTRA_2D_FRAMES)
      positions_3d[subject][action] = world[:frames]
      gt[subject][action] = [None] * 4
      rows += [(subject, action, t, world[t]) for t in range(len(world))]
  world17 = skeleton.convert(np.stack([r[3] for r in rows]), "h36m32",
                             "h36m17")
  for v in range(4):
    px = _project(world17, [CAMERAS[r[0]][v] for r in rows])
    for subject, seqs in SEQUENCES.items():
      for action in seqs:
        idx = [i for i, r in enumerate(rows) if r[:2] == (subject, action)]
        gt[subject][action][v] = px[idx]
  for subject, seqs in SEQUENCES.items():
    for action in seqs:
      if (subject, action) != ("S11", "Directions"):
        cpn[subject][action] = [
            k + rng.normal(0, 3, k.shape).astype(np.float32)
            for k in gt[subject][action]]
  manual_dir.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(manual_dir / "data_3d_h36m.npz",
                      positions_3d=positions_3d)
  np.savez_compressed(manual_dir / "data_2d_h36m_gt.npz", positions_2d=gt,
                      metadata=METADATA)
  np.savez_compressed(manual_dir / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
                      positions_2d=cpn, metadata=METADATA)
  return positions_3d, gt


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("h36m")
  positions_3d, gt = _write_fixture(root / "manual",
                                    np.random.default_rng(0))
  return root, positions_3d, gt


def _build(config, manual_dir, data_dir):
  builder = h36m_lifting.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read(builder, split):
  ds = builder.as_dataset(split=split, shuffle_files=False)
  return list(tfds.as_numpy(ds))


def test_gt_build_matches_mocap_and_cameras(fixture_dir, tmp_path):
  root, positions_3d, gt = fixture_dir
  builder = _build("gt", root / "manual", tmp_path / "data")
  assert builder.info.name == "h36m_lifting"
  assert set(builder.info.splits) == {"train", "test"}
  train = _read(builder, "train")
  test = _read(builder, "test")
  assert len(train) == 4 * (4 + 3)
  assert len(test) == 4 * (3 + 2 + 3)
  by_canonical = {(s, h36m_cameras.canonical_action(a)): a
                  for s, acts in SEQUENCES.items() for a in acts}
  examples = train + test
  cams, world17, keys = [], [], set()
  for ex in examples:
    subject = ex["subject"].decode()
    action = ex["action"].decode()
    assert action in h36m_cameras.ACTIONS
    raw = by_canonical[(subject, action)]
    v, t = int(ex["camera"]), int(ex["frame"])
    keys.add((subject, raw, v, t))
    cam = CAMERAS[subject][v]
    cams.append(cam)
    assert ex["keypoints_2d"].shape == (17, 2)
    assert ex["keypoints_3d"].dtype == np.float32
    np.testing.assert_allclose(ex["focal"], cam.focal)
    np.testing.assert_allclose(ex["center"], cam.center)
    # 2D: the file's keypoints of that frame (longer 2D was cut, not moved).
    np.testing.assert_array_equal(ex["keypoints_2d"], gt[subject][raw][v][t])
    world17.append(skeleton.convert(positions_3d[subject][raw][t], "h36m32",
                                    "h36m17"))
  assert len(keys) == len(examples)  # no duplicates
  stack = lambda f: np.stack([getattr(c, f) for c in cams])
  kp3d = np.stack([e["keypoints_3d"] for e in examples])
  kp2d = np.stack([e["keypoints_2d"] for e in examples])
  # 3D: the mocap reduced to 17 joints, in each camera's frame, metres.
  back = np.asarray(camera_lib.camera_to_world(kp3d, stack("rot"),
                                               stack("trans")))
  np.testing.assert_allclose(back, np.stack(world17), atol=2e-5)
  assert np.all(kp3d[..., 2] > 2.0)  # metres, not mm
  # Reprojection with the published distortion lands on the 2D.
  reproj = np.asarray(camera_lib.project(
      kp3d, stack("focal"), stack("center"), stack("radial"),
      stack("tangential")))
  np.testing.assert_allclose(reproj, kp2d, atol=0.05)
  # Without distortion it is off, by a few pixels only.
  plain = np.asarray(camera_lib.project(kp3d, stack("focal"),
                                        stack("center")))
  assert 0.5 < np.abs(plain - kp2d).max() < 40.0


def test_cpn_build_skips_s11_directions(fixture_dir, tmp_path):
  root, _, _ = fixture_dir
  builder = _build("cpn_ft_h36m_dbb", root / "manual", tmp_path / "data")
  test = _read(builder, "test")
  assert len(test) == 4 * (3 + 3)
  pairs = {(e["subject"].decode(), e["action"].decode()) for e in test}
  assert pairs == {("S9", "Directions"), ("S11", "Eating")}


def test_missing_2d_file(fixture_dir, tmp_path):
  root, _, _ = fixture_dir
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "data_3d_h36m.npz").write_bytes(
      (root / "manual" / "data_3d_h36m.npz").read_bytes())
  with pytest.raises(FileNotFoundError, match="data_2d_h36m_gt.npz"):
    _build("gt", manual, tmp_path / "data")


def test_2d_file_missing_a_subject(tmp_path):
  rng = np.random.default_rng(1)
  manual = tmp_path / "manual"
  _write_fixture(manual, rng)
  data = np.load(manual / "data_2d_h36m_gt.npz", allow_pickle=True)
  kp = data["positions_2d"].item()
  del kp["S9"]
  np.savez_compressed(manual / "data_2d_h36m_gt.npz", positions_2d=kp,
                      metadata=METADATA)
  with pytest.raises(KeyError, match="'S9' is missing from the 2D"):
    _build("gt", manual, tmp_path / "data")
