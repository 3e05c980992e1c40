"""X-as-Supervision training: geometry, gradients, S1 -> S2, resume, eval,
export, and every reference config on tiny generated fixtures.

All runs use ResNet-18 at 64x64 with batch 2 and share their compiled
programs through a persistent compilation cache scoped to this module (the
step's hyperparameters are run-time inputs, so configs with the same shapes
and loss set compile once).
"""

import functools
import json
import os

import jax
from jax.experimental.compilation_cache import compilation_cache
import jax.numpy as jnp
import numpy as np
import pytest

import image_fixtures
from repo_configs import load_config
from xsup import export
from xsup import main as xsup_main
from xsup import skeleton
from xsup.data import pipeline
from xsup.data import sources
from xsup.data.synthetic import poses as poses_lib
from xsup.geometry import patch as patch_lib
from xsup.models import detector as detector_lib
from xsup.models import discriminator as discriminator_lib
from xsup.train import loop
from xsup.train import state as state_lib
from xsup.train import xsup as xsup_train

S = 64
REFERENCE_CONFIGS = ("h36m_multi_sur_s1.py", "h36m_multi_sur_s2.py",
                     "h36m_multi_synth_s1.py", "h36m_multi_synth_s2.py",
                     "mpi_multi_sur_s1.py", "mpi_multi_sur_s2.py",
                     "mpi_multi_synth_s2.py")


@pytest.fixture(scope="module", autouse=True)
def shared_compilation_cache(tmp_path_factory):
  """Identical programs (init, steps, prediction) compile once here.

  The "rbg" PRNG compiles parameter initialisation several times faster on
  CPU than threefry; nothing tested here depends on the generator.
  """
  settings = {"jax_compilation_cache_dir": str(
                  tmp_path_factory.mktemp("jax_cache")),
              "jax_persistent_cache_min_compile_time_secs": 0.0,
              "jax_persistent_cache_min_entry_size_bytes": 0,
              "jax_default_prng_impl": "rbg"}
  old = {name: getattr(jax.config, name) for name in settings}
  for name, value in settings.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()
  yield
  for name, value in old.items():
    jax.config.update(name, value)
  compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  """`synthetic_multiview` config `tiny` prepared once for the module."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  sources.prepare("synthetic_multiview", "tiny", data_dir)
  return data_dir


@pytest.fixture(scope="module")
def tiny_splits(tiny_dir):
  return {split: sources.load_split("synthetic_multiview", split, "tiny",
                                    tiny_dir)
          for split in ("synthetic", "train", "test")}


def tiny_config(stage: str, data_dir: str):
  config = load_config(f"synthetic_multi_{stage}.py", "tiny")
  config.dataset.data_dir = data_dir
  config.synthetic.data_dir = data_dir
  return config


def array_task(config, splits):
  return xsup_train.XSupTask(
      config, train_data={"target": splits["train"],
                          "synthetic": splits["synthetic"]},
      eval_data={"test": splits["test"]})


def initial_state(task):
  """The state the loop starts from (same key and program as the loop)."""
  init_key, _ = jax.random.split(jax.random.PRNGKey(task.config.seed))
  state, _, _ = state_lib.create_sharded(task.init_state, init_key,
                                         task.mesh)
  return state


def assert_trees_close(a, b, **kwargs):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), **kwargs), a, b)


def trees_differ(a, b) -> bool:
  return any(not np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ---------------------------------------------------------------------------
# Geometry and host-side sampling.


def test_patch_coordinates_round_trip_to_camera(tiny_splits):
  np.testing.assert_allclose(patch_lib.patch_units_to_mm(2000.0, 256),
                             [1000.0, 1000.0, 2000.0], rtol=1e-6)
  np.testing.assert_allclose(
      patch_lib.normalise_patch_joints(
          np.array([[[32.0, 16.0]]]), np.array([[500.0]]), S,
          np.array([2000.0])), [[[0.0, -0.5, 0.25]]])
  for split in ("synthetic", "test"):
    raw = tiny_splits[split]
    joints, rect = xsup_train.synthetic_joints(raw, S, 2000.0)
    cam = raw["joints_3d_camera"]
    n = cam.shape[0] * cam.shape[1]
    back = patch_lib.patch_to_camera(
        joints.reshape(n, 18, 3), raw["affine"].reshape(n, 2, 3),
        raw["focal"].reshape(n, 2), raw["center"].reshape(n, 2),
        cam[..., 0, 2].reshape(n), rect.reshape(n), S)
    np.testing.assert_allclose(back, cam.reshape(n, 18, 3), atol=0.05)
    # The patch spans rect mm at the pelvis: x * rect / 2 is the metric
    # offset to the pelvis there.
    offset = (joints[..., 3, 0] - joints[..., 0, 0]) * rect / 2
    expected = ((cam[..., 3, 0] / cam[..., 3, 2] - cam[..., 0, 0] /
                 cam[..., 0, 2]) * cam[..., 0, 2])
    np.testing.assert_allclose(offset, expected, rtol=1e-3, atol=0.5)


def test_real_poses_are_level_camera_views_of_the_prior():
  world = poses_lib.sample_poses_h36m18(np.random.default_rng(3), 16)
  real = xsup_train.sample_real_poses(np.random.default_rng(3), 16, (0, 0))
  rel = (world - world[:, :1]) / 1000.0
  np.testing.assert_allclose(real, np.stack(
      [rel[..., 0], -rel[..., 2], rel[..., 1]], -1), atol=1e-5)
  tilted = xsup_train.sample_real_poses(np.random.default_rng(3), 16,
                                        (30, 30))
  np.testing.assert_allclose(np.linalg.norm(tilted, axis=-1),
                             np.linalg.norm(real, axis=-1), atol=1e-5)
  c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
  np.testing.assert_allclose(tilted[..., 1], c * real[..., 1] -
                             s * real[..., 2], atol=1e-5)
  assert np.mean(real[:, 10, 1]) < -0.3  # Head above the pelvis (y down).


def test_learning_rate_milestones_and_view_sums():
  lr = lambda step, ms: float(xsup_train.milestone_learning_rate(
      jnp.float32(2e-4), jnp.int32(step), jnp.asarray(ms, jnp.int32),
      jnp.float32(0.1)))
  assert lr(9, [10]) == pytest.approx(2e-4)
  assert lr(10, [10]) == pytest.approx(2e-5)
  assert lr(25, [10, 20]) == pytest.approx(2e-6)
  assert lr(25, []) == pytest.approx(2e-4)
  # Entry i belongs to view i % 2: means 2 (0, 2, 4) + 3 (1, 3, 5).
  total = xsup_train.sum_over_groups(jnp.mean, 2, jnp.arange(6.0))
  assert float(total) == pytest.approx(5.0)
  with pytest.raises(ValueError, match="view groups"):
    xsup_train.sum_over_groups(jnp.mean, 4, jnp.arange(6.0))


# ---------------------------------------------------------------------------
# Gradients of the adversarial terms.


def test_adversarial_gradients_flow_only_where_they_should():
  disc = discriminator_lib.build_discriminator("simple_gcn", input_dim=8,
                                               hidden_dim=8, output_dim=8)
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.normal(size=(4, 18, 3)) * 0.3, jnp.float32)
  fake = jnp.asarray(rng.normal(size=(4, 3, 18, 3)) * 0.3, jnp.float32)
  key = jax.random.PRNGKey(0)
  params = disc.init(key, real)["params"]

  @jax.jit
  def everything(p, f):
    d_loss = lambda p, f: xsup_train.discriminator_objective(
        disc, p, real, f, key, 2)[0]
    g_loss = lambda p, f: xsup_train.generator_objective(disc, p, f, key, 2)
    score = lambda x: disc.apply({"params": p}, x)[:, 0]
    return (jax.grad(d_loss, argnums=(0, 1))(p, f),
            jax.grad(g_loss, argnums=(0, 1))(p, f), d_loss(p, f),
            g_loss(p, f), score(real), score(f.reshape(12, 18, 3)))

  d_grads, g_grads, d_value, g_value, real_s, fake_s = everything(params,
                                                                  fake)
  # The discriminator loss trains the discriminator only (fakes detached).
  assert float(state_lib.tree_norm(d_grads[0])) > 0
  assert not np.any(np.asarray(d_grads[1]))
  # The generator loss reaches the predictions, never the discriminator.
  assert float(jnp.linalg.norm(g_grads[1])) > 0
  assert float(state_lib.tree_norm(g_grads[0])) == 0.0
  # Values: sum over the 2 views (entries v, v + 2) of the LSGAN terms.
  fake_s = np.asarray(fake_s).reshape(4, 3)
  real_s = np.asarray(real_s)
  expected_g = sum(np.mean(np.min((fake_s[v::2] - 1) ** 2, -1))
                   for v in range(2))
  expected_d = sum(0.5 * np.mean((real_s[v::2] - 1) ** 2) +
                   0.5 * np.mean(np.min(fake_s[v::2] ** 2, -1))
                   for v in range(2))
  assert float(g_value) == pytest.approx(expected_g, rel=1e-4)
  assert float(d_value) == pytest.approx(expected_d, rel=1e-4)


def test_generator_objective_reaches_detector_outputs_only(tiny_splits,
                                                           tiny_dir):
  config = tiny_config("s2", tiny_dir)
  config.loss.mask = 0.0  # No conv nets: a fast check of the wiring.
  config.loss.physique = 0.0
  task = array_task(config, tiny_splits)
  batch = jax.tree.map(jnp.asarray, task.batch_at(0))
  ns = batch["synthetic_image"].shape[0]
  nt = batch["target_image"].shape[0]
  joints = jnp.asarray(np.random.default_rng(1).uniform(
      -0.5, 0.5, (ns + nt, 3, 18, 3)), jnp.float32)
  key = jax.random.PRNGKey(0)
  disc_params = task.discriminator.init(
      {"params": key, "dropout": key}, jnp.zeros((2, 18, 3)))["params"]
  hparams = task.step_extras()["hparams"]

  @jax.jit
  def gradients(j, d):
    def term(name, j, d):
      _, (_, terms) = task._generator_loss(  # pylint: disable=protected-access
          {}, j, ns, {}, d, batch, key, hparams)
      return terms[name]
    return {name: jax.grad(functools.partial(term, name), argnums=(0, 1))(
        j, d) for name in ("generator", "synthetic", "symmetry")}

  grads = gradients(joints, disc_params)
  for name, (g_joints, g_disc) in grads.items():
    # No term of the detector's objective reaches the discriminator.
    assert float(state_lib.tree_norm(g_disc)) == 0.0, name
  g_joints = grads["generator"][0]
  assert float(jnp.abs(g_joints[ns:]).sum()) > 0  # target predictions
  assert not np.any(np.asarray(g_joints[:ns]))  # synthetic ones untouched
  g_joints = grads["synthetic"][0]
  assert float(jnp.abs(g_joints[:ns]).sum()) > 0
  assert not np.any(np.asarray(g_joints[ns:]))
  g_joints = grads["symmetry"][0]
  assert float(jnp.abs(g_joints[ns:]).sum()) > 0


# ---------------------------------------------------------------------------
# Evaluation on hand-made predictions.


def test_evaluation_of_exact_swapped_and_multi_hypothesis_predictions(
    tiny_splits, tiny_dir):
  task = array_task(tiny_config("s2", tiny_dir), tiny_splits)
  data = tiny_splits["test"]
  gt, _ = xsup_train.synthetic_joints(data, S, 2000.0)  # [N, V, 18, 3]
  n, v = gt.shape[:2]
  flat = gt.reshape(n * v, 18, 3)
  score = lambda pred: task.score_split(
      pred.reshape((n, v) + pred.shape[1:]), data)

  exact = score(np.repeat(flat[:, None], 3, axis=1))
  for key in ("confident/mpjpe", "confident/n_mpjpe", "confident/p_mpjpe",
              "best/mpjpe", "best/p_mpjpe", "mpjpe_2d",
              "triangulated/mpjpe", "triangulated/p_mpjpe"):
    assert exact[key] < 0.5, key
  assert exact["ambiguity_ratio"] == 0.0
  assert exact["baseline/p_mpjpe"] > 10.0
  assert exact["num_samples"] == n and exact["num_views"] == v
  assert "average" in exact["per_action"]

  mirrored = flat[:, skeleton.H36M18.flip_permutation]
  swapped = score(np.repeat(mirrored[:, None], 3, axis=1))
  assert swapped["ambiguity_ratio"] == 1.0
  assert swapped["mpjpe_2d"] < 0.01 and swapped["mpjpe_2d_noswap"] > 1.0
  assert swapped["confident/mpjpe"] < 0.5
  assert swapped["noswap/confident/mpjpe"] > 10.0

  wrong = flat.copy()
  wrong[:, 1:, 2] += 0.1  # 200+ mm too deep, except the pelvis
  hypotheses = score(np.stack([wrong, flat, wrong], axis=1))
  assert hypotheses["best/mpjpe"] < 0.5
  assert hypotheses["confident/mpjpe"] > 100.0


# ---------------------------------------------------------------------------
# S1 -> S2 through the command-line entry point.


def s2_finetune_config(tiny_dir, s1_dir):
  """S2 from the S1 run: 3 steps, a checkpoint at step 2."""
  config = tiny_config("s2", tiny_dir)
  config.init_checkpoint = s1_dir
  config.total_steps = 3
  config.eval_every_steps = 100
  return config


@pytest.fixture(scope="module")
def s1_s2(tmp_path_factory, tiny_dir):
  root = tmp_path_factory.mktemp("runs")
  s1_dir, s2_dir = str(root / "s1"), str(root / "s2")
  s1 = tiny_config("s1", tiny_dir)
  s1_state = jax.device_get(xsup_main.execute(s1, s1_dir, "train"))
  s2 = s2_finetune_config(tiny_dir, s1_dir)
  s2_state = jax.device_get(xsup_main.execute(s2, s2_dir, "finetune"))
  return {"s1": (s1, s1_dir, s1_state), "s2": (s2, s2_dir, s2_state)}


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_s1_trains_synthetic_supervision_only(s1_s2):
  config, workdir, state = s1_s2["s1"]
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))
  train = [r for r in _records(workdir) if "train/loss" in r]
  assert [r["step"] for r in train] == [1, 2]
  for r in train:
    assert r["train/synthetic"] > 0 and r["train/grad_norm/detector"] > 0
    for term in ("mask", "physique", "symmetry", "generator",
                 "discriminator"):
      assert r[f"train/{term}"] == 0.0
    assert r["train/loss"] == pytest.approx(3.0 * r["train/synthetic"],
                                            rel=1e-5)
  # The discriminator is never updated in S1: it is still its init.
  start = jax.device_get(initial_state(xsup_main.get_task(config)))
  assert_trees_close(state.params["discriminator"],
                     start.params["discriminator"], rtol=0, atol=0)
  assert trees_differ(state.params["detector"], start.params["detector"])


def test_s2_starts_from_s1_and_updates_both_networks(s1_s2):
  _, _, s1_state = s1_s2["s1"]
  config, workdir, s2_state = s1_s2["s2"]
  task = xsup_main.get_task(config)
  fresh = initial_state(task)
  restored, step = loop.load_checkpoint_tree(config.init_checkpoint)
  assert step == 2
  start = jax.device_get(task.init_from_checkpoint(fresh, restored))
  fresh = jax.device_get(fresh)
  assert_trees_close(start.params["detector"], s1_state.params["detector"],
                     rtol=0, atol=0)
  assert_trees_close(start.batch_stats, s1_state.batch_stats, rtol=0,
                     atol=0)
  assert_trees_close(start.params["discriminator"],
                     fresh.params["discriminator"], rtol=0, atol=0)
  assert_trees_close(start.opt_state, fresh.opt_state, rtol=0, atol=0)
  assert int(start.step) == 0
  # The S2 steps moved the detector and the discriminator.
  assert int(s2_state.step) == 3
  assert trees_differ(s2_state.params["detector"],
                      start.params["detector"])
  assert trees_differ(s2_state.params["discriminator"],
                      start.params["discriminator"])
  train = [r for r in _records(workdir) if "train/loss" in r]
  for r in train:
    for term in ("synthetic", "mask", "physique", "symmetry", "generator",
                 "discriminator", "grad_norm/detector", "grad_norm/physique",
                 "grad_norm/discriminator"):
      assert np.isfinite(r[f"train/{term}"]) and r[f"train/{term}"] > 0, term
    assert r["train/lr"] == pytest.approx(config.optimizer.generator_lr)


def test_eval_files_and_export(s1_s2):
  config, workdir, state = s1_s2["s2"]
  with open(os.path.join(workdir, "eval", "test_metrics.json")) as f:
    metrics = json.load(f)
  for key in ("confident/mpjpe", "confident/n_mpjpe", "confident/p_mpjpe",
              "best/mpjpe", "best/n_mpjpe", "best/p_mpjpe", "mpjpe_2d",
              "ambiguity_ratio", "baseline/p_mpjpe", "triangulated/mpjpe",
              "triangulated/p_mpjpe", "noswap/confident/mpjpe"):
    assert np.isfinite(metrics[key]), key
  assert metrics["num_samples"] == 2 and metrics["step"] == 3
  assert 0.0 <= metrics["ambiguity_ratio"] <= 1.0
  assert "confident/p_mpjpe" in metrics["per_action"]["average"]
  directory = xsup_main.execute(config, workdir, "export")
  model, variables = export.load_model(directory)
  assert isinstance(model, detector_lib.IntegralDetector)
  assert (model.resnet_depth, model.depth_dim, model.num_hypo) == (18, 32, 3)
  assert_trees_close(variables, {"params": state.params["detector"],
                                 "batch_stats": state.batch_stats[
                                     "detector"]}, rtol=0, atol=0)


# ---------------------------------------------------------------------------
# Resume after a crash (both optimisers' states).


def test_resume_after_crash_matches_uninterrupted_run(tmp_path, s1_s2):
  config, _, full = s1_s2["s2"]
  workdir = str(tmp_path / "crash")
  task = xsup_main.get_task(config)
  original = task.train_batches

  def crashing(start):
    for i, batch in enumerate(original(start)):
      if start + i >= 2:
        raise KeyboardInterrupt("simulated crash")
      yield batch

  task.train_batches = crashing
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(task, config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
  # The workdir's checkpoint wins over config.init_checkpoint on restart.
  resumed = jax.device_get(xsup_main.execute(config, workdir, "finetune"))
  assert int(resumed.step) == 3
  for part in ("params", "batch_stats", "opt_state"):
    assert_trees_close(getattr(full, part), getattr(resumed, part),
                       rtol=1e-6, atol=1e-7)
  train = [r for r in _records(workdir) if "train/loss" in r]
  assert [r["step"] for r in train] == [1, 2, 3]


# ---------------------------------------------------------------------------
# Configs.


def test_reference_configs_hold_the_published_values():
  # file: (synthetic, symmetry, adversarial, lr, epochs, milestone epoch)
  expected = {
      "h36m_multi_sur_s1.py": (3.0, 0.0, 0.0, 2e-4, 50, 40),
      "h36m_multi_sur_s2.py": (3.0, 0.1, 0.5, 1e-4, 15, 40),
      "h36m_multi_synth_s1.py": (1.0, 0.0, 0.0, 2e-4, 50, 40),
      "h36m_multi_synth_s2.py": (1.0, 0.1, 0.5, 1e-4, 15, 40),
      "mpi_multi_sur_s1.py": (1.0, 0.0, 0.0, 2e-4, 80, 70),
      "mpi_multi_sur_s2.py": (3.0, 0.05, 1.0, 1e-4, 10, 40),
      "mpi_multi_synth_s2.py": (1.0, 0.05, 1.0, 1e-4, 15, 40),
  }
  for name, (syn, sym, adv, lr, epochs, milestone) in expected.items():
    c = load_config(name)
    s2 = c.stage == "s2"
    assert c.loss.synthetic == syn, name
    assert c.loss.symmetry_bone * c.loss.symmetry * s2 == sym, name
    assert c.loss.discriminator * s2 == adv and c.loss.generator == adv
    assert c.loss.mask == c.loss.physique == (0.02 if s2 else 0.0), name
    assert c.optimizer.generator_lr == c.optimizer.discriminator_lr == lr
    assert (c.optimizer.b1, c.optimizer.b2) == (0.5, 0.999)
    assert c.num_epochs == epochs and c.batch_size == 32, name
    assert c.optimizer.milestones_epochs == (milestone,), name
    assert c.model.resnet_depth == 50 and c.dataset.config == "patch256"
    assert (c.model.depth_dim, c.model.num_hypo) == (64, 3)
    kind = "surreal" if "_sur_" in name else "synth"
    assert c.synthetic.config == f"{kind}_256", name
  with pytest.raises(ValueError, match="Unknown variant"):
    load_config("h36m_multi_sur_s1.py", "huge")


@pytest.fixture(scope="module")
def reference_dirs(tmp_path_factory):
  manual = image_fixtures.write_reference_fixtures(
      tmp_path_factory.mktemp("reference_data"))
  return manual, str(tmp_path_factory.mktemp("reference_tfds"))


@pytest.mark.parametrize("name", REFERENCE_CONFIGS)
def test_reference_config_trains_two_steps_on_a_fixture(name, tmp_path,
                                                        reference_dirs):
  manual, data_dir = reference_dirs
  config = load_config(name, "tiny")
  for part in (config.dataset, config.synthetic):
    part.manual_dir = manual
    part.data_dir = data_dir
  workdir = str(tmp_path / "run")
  state = xsup_main.execute(config, workdir, "train")
  assert int(state.step) == 2
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))
  for split in config.dataset.eval_splits:
    with open(os.path.join(workdir, "eval", f"{split}_metrics.json")) as f:
      metrics = json.load(f)
    assert metrics["num_samples"] > 0
    assert np.isfinite(metrics["confident/mpjpe"])
    assert np.isfinite(metrics["best/p_mpjpe"])
    if config.dataset.eval_protocol == "mpi_inf_3dhp":
      for key in ("confident/pck150", "best/auc", "confident/pa_pck150"):
        assert 0.0 <= metrics[key] <= 1.0, (split, key)
  records = [r for r in _records(workdir) if "train/loss" in r]
  assert records[-1]["train/synthetic"] > 0
  if config.stage == "s2":
    assert records[-1]["train/generator"] > 0


def test_bad_settings_fail_clearly(tiny_splits, tiny_dir):
  config = tiny_config("s1", tiny_dir)
  config.stage = "s3"
  with pytest.raises(ValueError, match="config.stage"):
    xsup_train.XSupTask(config)
  config = tiny_config("s1", tiny_dir)
  config.dataset.builder_overrides["no_such_field"] = 1
  with pytest.raises(ValueError, match="no_such_field"):
    xsup_train.builder_config(config.dataset)
  bad = dict(tiny_splits["train"])
  del bad["mask"]
  task = xsup_train.XSupTask(tiny_config("s1", tiny_dir),
                             train_data={"target": bad})
  with pytest.raises(ValueError, match="missing features.*mask"):
    _ = task.target_source
  config = tiny_config("s1", tiny_dir)
  config.model.resnet_width = 32
  config.model.pretrained_backbone = "resnet18.npz"
  task = array_task(config, tiny_splits)
  with pytest.raises(ValueError, match="width 64"):
    task.init_state(jax.random.PRNGKey(0))
