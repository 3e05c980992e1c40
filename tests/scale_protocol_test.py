"""The two scales of the lifting evaluation's "calibrate by scale" step."""

import json
import os

import numpy as np
import pytest

from xsup import config_defaults
from xsup import metrics
from xsup.geometry import alignment
from xsup.train import lifting as lifting_train
from xsup.train import loop


def _poses(num=5, seed=0):
  """`[N, 17, 3]` root-centred random poses (mm) with a clear depth spread."""
  rng = np.random.default_rng(seed)
  poses = rng.normal(size=(num, 17, 3)) * np.array([200.0, 300.0, 150.0])
  return poses - poses[:, :1]


def _mirror(poses):
  return poses * np.array([1.0, 1.0, -1.0])


def test_reflection_scale_recovers_the_true_scale_of_a_mirrored_pose():
  target = _poses()
  true_scale = 0.37
  pred = true_scale * _mirror(target)  # z negated, then scaled
  # Analytic values. With mean-centred T0 and P0 = s T0 M (M = diag(1,1,-1)),
  # cov = T0^T P0 = s (T0^T T0) M has singular values s * eig(T0^T T0) and
  # det(U V^T) = det(M) = -1. The orthogonal optimum takes all singular
  # values, scale = s tr(T0^T T0) / (s^2 |T0|^2) = 1 / s; the proper
  # rotation must flip the smallest one: s (l1 + l2 - l3) / (s^2 sum l).
  t0 = target - target.mean(1, keepdims=True)
  eig = np.sort(np.linalg.eigvalsh(np.einsum("nji,njk->nik", t0, t0)), -1)
  proper = (eig[:, 2] + eig[:, 1] - eig[:, 0]) / (true_scale * eig.sum(-1))

  scale_r, rot_r, _ = alignment.procrustes(pred, target,
                                           allow_reflection=True)
  np.testing.assert_allclose(np.asarray(scale_r), 1.0 / true_scale,
                             rtol=1e-5)
  np.testing.assert_allclose(np.linalg.det(np.asarray(rot_r)), -1.0,
                             atol=1e-5)
  scale_p, rot_p, _ = alignment.procrustes(pred, target)
  np.testing.assert_allclose(np.asarray(scale_p), proper, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.det(np.asarray(rot_p)), 1.0,
                             atol=1e-5)
  assert np.all(np.asarray(scale_p) < 0.95 / true_scale)

  # The metric step: the reflection protocol puts the mirrored prediction
  # at the true scale, the default one shrinks it by `proper * s`.
  calibrated = metrics.calibrate_scale(pred, target,
                                       scale_protocol="reflection")
  np.testing.assert_allclose(calibrated, _mirror(target), rtol=1e-5,
                             atol=1e-3)  # mm, float32 SVD
  errors = metrics.pose_errors(pred, target, calibrate=True)
  err = lambda p: np.linalg.norm(p - target, axis=-1).mean(-1)
  np.testing.assert_allclose(errors["mpjpe_scale_reflection"],
                             err(_mirror(target)), rtol=1e-5)
  np.testing.assert_allclose(
      errors["mpjpe_scale_rotation"],
      err(proper[:, None, None] * true_scale * _mirror(target)), rtol=1e-5)
  # The depth-flip tolerant variants both see the unmirrored copy, whose
  # best alignment is a proper rotation: both scales are exact there.
  for protocol in metrics.SCALE_PROTOCOLS:
    assert np.all(errors[f"mpjpe_flip_scale_{protocol}"] < 1e-3)
  np.testing.assert_array_equal(errors["mpjpe"],
                                errors["mpjpe_scale_rotation"])
  chosen = metrics.pose_errors(pred, target, calibrate=True,
                               scale_protocol="reflection")
  np.testing.assert_array_equal(chosen["mpjpe"],
                                errors["mpjpe_scale_reflection"])


def test_both_scales_agree_without_a_reflection():
  target = _poses(seed=1)
  pred = 2.5 * target + np.random.default_rng(2).normal(size=target.shape)
  errors = metrics.pose_errors(pred, target, calibrate=True)
  np.testing.assert_allclose(errors["mpjpe_scale_reflection"],
                             errors["mpjpe_scale_rotation"], rtol=1e-6)


def test_unknown_protocol_is_rejected():
  with pytest.raises(ValueError, match="scale_protocol"):
    metrics.pose_errors(_poses(), _poses(), calibrate=True,
                        scale_protocol="authors")


@pytest.mark.parametrize("protocol", ["rotation", "reflection"])
def test_lifting_evaluation_reports_both_scales(tmp_path, lifting_arrays,
                                                protocol):
  train, test = lifting_arrays
  config = config_defaults.lifting("teacher")
  config.model.width = 32
  config.model.num_layers = 1
  config.batch_size = 16
  config.total_steps = 1
  config.eval.scale_protocol = protocol
  task = lifting_train.LiftingTask(config, train_data=train,
                                   eval_data={"test": test})
  loop.train_and_evaluate(task, config, str(tmp_path))
  with open(os.path.join(tmp_path, "eval", "test_metrics.json")) as f:
    result = json.load(f)
  assert result["scale_protocol"] == protocol
  for key in ("mpjpe_scale_rotation", "mpjpe_scale_reflection",
              "mpjpe_flip_scale_rotation", "mpjpe_flip_scale_reflection"):
    assert np.isfinite(result[key]), key
    assert key in result["per_action"]["average"]
  assert result["mpjpe"] == result[f"mpjpe_scale_{protocol}"]
  assert result["mpjpe_flip"] == result[f"mpjpe_flip_scale_{protocol}"]
