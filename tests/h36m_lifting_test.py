"""Tests of the `h36m_lifting` TFDS builder on tiny VideoPose3D-format files."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xsup import config_defaults
from xsup import metrics
from xsup import skeleton
from xsup.data import lifting as lifting_data
from xsup.data import sources
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


# Other motion in VideoPose3D's format: made-up actions and subjects --------

# P1/P2 are filmed by 2 cameras each: the published extrinsics of two
# Human3.6M cameras (the reference for the 3D checks below) with made-up,
# distortion-free intrinsics.
CUSTOM_RIGS = {"P1": ("S1", (0, 2)), "P2": ("S5", (1, 3))}
CUSTOM_SEQUENCES = {"P1": {"Dancing 1": 3, "Cartwheel": 2, "Walking 2": 2},
                    "S9": {"Juggling": 2},
                    "P2": {"Dancing 2": 2}}
FOCAL, CENTRE = (1000.0, 990.0), (500.0, 480.0)


def _custom_cameras_json(subjects=("P1", "P2")):
  out = {}
  for subject in subjects:
    source, indices = CUSTOM_RIGS[subject]
    out[subject] = [{
        "id": f"{subject}-{i}", "center": list(CENTRE),
        "focal_length": list(FOCAL), "res_w": 1000, "res_h": 960,
        "orientation": list(h36m_cameras.EXTRINSICS[source][i].orientation),
        "translation": list(h36m_cameras.EXTRINSICS[source][i].translation),
    } for i in indices]
  return out


def _reference_cameras(subject):
  """The `Camera`s the file describes, built from the published tables."""
  if subject not in CUSTOM_RIGS:
    return CAMERAS_ALL[subject]
  source, indices = CUSTOM_RIGS[subject]
  return [h36m_cameras.camera(source, i)._replace(
      focal=np.array(FOCAL, np.float32), center=np.array(CENTRE, np.float32),
      radial=np.zeros(3, np.float32), tangential=np.zeros(2, np.float32))
          for i in indices]


CAMERAS_ALL = h36m_cameras.cameras()


def _write_custom(manual_dir, rng, sequences=None, cameras_json=None):
  """VideoPose3D-format files of `sequences`, 2D projected by each subject's
  reference cameras; returns (positions_3d, positions_2d)."""
  sequences = CUSTOM_SEQUENCES if sequences is None else sequences
  positions_3d, positions_2d = {}, {}
  for subject, seqs in sequences.items():
    cams = _reference_cameras(subject)
    positions_3d[subject], positions_2d[subject] = {}, {}
    for action, frames in seqs.items():
      world = _world_poses(rng, frames)
      positions_3d[subject][action] = world
      world17 = skeleton.convert(world, "h36m32", "h36m17")
      positions_2d[subject][action] = [
          np.array(_project(world17, [c] * frames)) for c in cams]
  manual_dir.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(manual_dir / "data_3d_h36m.npz",
                      positions_3d=positions_3d)
  np.savez_compressed(manual_dir / "data_2d_h36m_gt.npz",
                      positions_2d=positions_2d, metadata=METADATA)
  if cameras_json is not None:
    (manual_dir / "cams.json").write_text(json.dumps(cameras_json))
  return positions_3d, positions_2d


def _custom_config(**fields):
  base = dict(name="custom", keypoints="gt", cameras_file="cams.json",
              train_subjects=("P1",), test_subjects=("S9", "P2"))
  base.update(fields)
  return h36m_lifting.H36mLiftingConfig(**base)


def test_made_up_actions_and_subjects_with_a_cameras_file(tmp_path):
  manual = tmp_path / "manual"
  positions_3d, positions_2d = _write_custom(
      manual, np.random.default_rng(5), cameras_json=_custom_cameras_json())
  builder = _build(_custom_config(), manual, tmp_path / "data")
  train, test = _read(builder, "train"), _read(builder, "test")
  assert len(train) == 2 * (3 + 2 + 2)
  assert len(test) == 4 * 2 + 2 * 2  # S9: 4 published cameras; P2: 2.
  labels = {e["action"].decode() for e in train + test}
  # Made-up names are kept; the canonical take variant is grouped.
  assert labels == {"Dancing 1", "Cartwheel", "Walking", "Juggling",
                    "Dancing 2"}
  raw_name = {("P1", "Walking"): "Walking 2"}
  for ex in train + test:
    subject, action = ex["subject"].decode(), ex["action"].decode()
    raw = raw_name.get((subject, action), action)
    v, t = int(ex["camera"]), int(ex["frame"])
    cam = _reference_cameras(subject)[v]
    np.testing.assert_array_equal(ex["keypoints_2d"],
                                  positions_2d[subject][raw][v][t])
    np.testing.assert_allclose(ex["focal"], cam.focal)
    np.testing.assert_allclose(ex["center"], cam.center)
    world17 = skeleton.convert(positions_3d[subject][raw][t], "h36m32",
                               "h36m17")
    np.testing.assert_allclose(
        np.asarray(camera_lib.camera_to_world(ex["keypoints_3d"], cam.rot,
                                              cam.trans)), world17,
        atol=2e-5)
  # Per-action tables are over the actions present.
  kp = np.stack([e["keypoints_3d"] for e in test])
  table = metrics.summarize(metrics.pose_errors(kp, kp),
                            [e["action"] for e in test])["per_action"]
  assert set(table) == {"Juggling", "Dancing 2", "average"}


def test_the_lifting_loader_reads_overrides_of_the_h36m_config(tmp_path):
  manual = tmp_path / "manual"
  _write_custom(manual, np.random.default_rng(6),
                cameras_json=_custom_cameras_json())
  config = config_defaults.lifting_h36m("teacher", "gt")
  config.dataset.manual_dir = str(manual)
  config.dataset.data_dir = str(tmp_path / "data")
  config.dataset.builder_overrides.cameras_file = "cams.json"
  config.dataset.builder_overrides.train_subjects = ("P1",)
  config.dataset.builder_overrides.test_subjects = ("P2",)
  test = lifting_data.load(config.dataset, "test")
  assert set(test["subject"]) == {"P2"}
  assert len(test["pose_3d"]) == 2 * 2


def test_a_subject_without_cameras_fails_naming_it_and_the_file(tmp_path):
  manual = tmp_path / "manual"
  _write_custom(manual, np.random.default_rng(7),
                cameras_json=_custom_cameras_json(("P1",)))
  with pytest.raises(ValueError, match=r"'P2'.*cams\.json"):
    _build(_custom_config(), manual, tmp_path / "data")
  # Without a cameras file: the subject and what to do.
  with pytest.raises(ValueError, match=r"'P1'.*cameras_file"):
    _build(_custom_config(cameras_file=None, test_subjects=("S9",)), manual,
           tmp_path / "data2")


@pytest.mark.parametrize("entry,match", [
    ({"focal_length": [0.0, 1000.0]}, "focal_length.*positive"),
    ({"orientation": [1.0, 1.0, 0.0, 0.0]}, "unit quaternion"),
    ({"center": [500.0]}, "center.*2 finite numbers"),
    ({"skew": 0.0}, "unknown fields.*skew"),
])
def test_bad_cameras_file_fields_are_named(tmp_path, entry, match):
  cams = _custom_cameras_json(("P1",))
  cams["P1"][1].update(entry)
  path = tmp_path / "cams.json"
  path.write_text(json.dumps(cams))
  with pytest.raises(ValueError, match=r"cams\.json: subject 'P1' camera 1.*"
                     + match):
    h36m_cameras.load_cameras_file(str(path))
  cams = _custom_cameras_json(("P1",))
  del cams["P1"][1]["res_w"]
  path.write_text(json.dumps(cams))
  with pytest.raises(ValueError, match="missing field 'res_w'"):
    h36m_cameras.load_cameras_file(str(path))


def test_bad_input_values_name_file_subject_action_camera_frame(tmp_path):
  manual = tmp_path / "manual"
  rng = np.random.default_rng(8)
  positions_3d, positions_2d = _write_custom(
      manual, rng, cameras_json=_custom_cameras_json())
  positions_2d["P1"]["Cartwheel"][1][1, 4] = np.nan
  np.savez_compressed(manual / "data_2d_h36m_gt.npz",
                      positions_2d=positions_2d, metadata=METADATA)
  with pytest.raises(ValueError, match=r"data_2d_h36m_gt\.npz: non-finite 2D "
                     r"keypoints at subject 'P1' action 'Cartwheel' camera 1 "
                     r"frame 1"):
    _build(_custom_config(), manual, tmp_path / "d1")
  positions_2d["P1"]["Cartwheel"][1][1, 4] = 0.0
  positions_3d["P2"]["Dancing 2"][1, 7, 2] = np.inf
  np.savez_compressed(manual / "data_2d_h36m_gt.npz",
                      positions_2d=positions_2d, metadata=METADATA)
  np.savez_compressed(manual / "data_3d_h36m.npz", positions_3d=positions_3d)
  with pytest.raises(ValueError, match=r"data_3d_h36m\.npz: non-finite mocap "
                     r"at subject 'P2' action 'Dancing 2' frame 1"):
    _build(_custom_config(), manual, tmp_path / "d2")
  # A camera looking the wrong way (orientation of the opposite camera).
  positions_3d["P2"]["Dancing 2"][1, 7, 2] = 0.5
  np.savez_compressed(manual / "data_3d_h36m.npz", positions_3d=positions_3d)
  cams = _custom_cameras_json()
  cams["P1"][0]["translation"] = [-t for t in cams["P1"][0]["translation"]]
  (manual / "cams.json").write_text(json.dumps(cams))
  with pytest.raises(ValueError, match=r"joints behind camera 0 at subject "
                     r"'P1' action 'Dancing 1' frame 0.*cams\.json"):
    _build(_custom_config(), manual, tmp_path / "d3")


def test_prepare_names_the_example_of_a_non_finite_value():
  raw = {"keypoints_2d": np.zeros((4, 17, 2), np.float32) + 100.0,
         "keypoints_3d": np.ones((4, 17, 3), np.float32),
         "focal": np.ones((4, 2), np.float32) * 1000.0,
         "subject": np.array(["P1", "P1", "P2", "P2"]),
         "action": np.array(["Dancing 1", "Dancing 1", "Cartwheel", "Jump"]),
         "camera": np.array([0, 1, 0, 1], np.int32),
         "frame": np.array([0, 0, 5, 9], np.int32)}
  raw["keypoints_3d"][2, 3, 0] = np.nan
  with pytest.raises(ValueError, match=r"src: non-finite keypoints_3d in 1 "
                     r"examples; first: example 2, subject 'P2', action "
                     r"'Cartwheel', camera 0, frame 5"):
    lifting_data.prepare(raw, source="src")


def test_a_changed_cameras_file_outside_manual_dir_prepares_again(tmp_path):
  manual = tmp_path / "manual"
  _write_custom(manual, np.random.default_rng(9))
  cams_path = tmp_path / "calibration" / "cams.json"
  cams_path.parent.mkdir()
  cams = _custom_cameras_json()
  cams_path.write_text(json.dumps(cams))
  config = _custom_config(cameras_file=str(cams_path))
  load = lambda: sources.load_split("h36m_lifting", "train", config,
                                    data_dir=str(tmp_path / "data"),
                                    manual_dir=str(manual))
  before = load()
  # A corrected camera position (10 cm along x): new camera-frame joints.
  cams["P1"][0]["translation"][0] += 100.0
  cams_path.write_text(json.dumps(cams))
  after = load()
  first = (before["camera"] == 0) & (before["subject"] == "P1")
  assert np.abs(after["keypoints_3d"][first] -
                before["keypoints_3d"][first]).max() > 0.01
