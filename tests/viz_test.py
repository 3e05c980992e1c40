"""Plot helpers draw what they should."""

import json

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from xsup import skeleton  # pylint: disable=g-import-not-at-top,wrong-import-position
from xsup import viz  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_skeleton_plots_draw_one_line_per_bone_with_side_colours():
  joints = np.random.default_rng(0).normal(size=(17, 3))
  fig = plt.figure()
  ax = fig.add_subplot(1, 2, 1, projection="3d")
  viz.plot_skeleton_3d(ax, joints)
  assert len(ax.lines) == len(skeleton.H36M17.bones) == 16
  colours = {line.get_color() for line in ax.lines}
  assert {"tab:blue", "tab:red"} <= colours
  ax2 = fig.add_subplot(1, 2, 2)
  viz.plot_skeleton_2d(ax2, joints[:, :2])
  np.testing.assert_allclose(ax2.lines[0].get_xydata(),
                             joints[[0, 1], :2])
  plt.close(fig)


def test_curves_from_metrics_jsonl(tmp_path):
  rows = [{"step": 1, "train/loss": 2.0}, {"step": 2, "train/loss": 1.0},
          {"step": 2, "eval/test/mpjpe": 50.0}]
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")
  read = viz.read_metrics(str(tmp_path))
  assert read == rows
  fig, ax = plt.subplots()
  viz.plot_curves(ax, read, ["train/loss"])
  np.testing.assert_allclose(ax.lines[0].get_xydata(), [[1, 2.0], [2, 1.0]])
  plt.close(fig)
