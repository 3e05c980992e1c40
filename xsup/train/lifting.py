"""Lifting method: teacher and student training steps, evaluation, export.

`config.stage` picks the network:
  * `teacher`: loss = w * reprojection + invariance cycle (SPEC.md 2).
  * `student`: loss = w * distillation (frozen teacher depth) +
    equivariance cycle. Options refine the teacher's target
    (`LiftingTask.teacher_target`): per-pose anatomical orientation and
    left-right mirror averaging. The teacher comes from
    `config.teacher_checkpoint` (a teacher workdir or checkpoint directory)
    and enters the step as a separate, never donated argument.

With `config.model.num_hypotheses` K > 1 the student
(`student.HypothesisStudent`) gives K depth hypotheses per input, trained
with one of two distillations (`loss.hypothesis_distillation`):
"winner_takes_all" counts, per sample, only the hypothesis closest to the
target (`loss.wta_mirror_target`: also the target's depth mirror into its
own winner; `loss.wta_ordered_steps`: fixed roles before that step);
"fixed_roles" teaches hypothesis 0 the anatomically oriented target and
hypothesis 1 its depth mirror throughout. The equivariance cycle runs on
every hypothesis, matched to the closest re-lifted one (winner-takes-all). With
`hypotheses.prior_poses` set, a pose prior (`pose_prior.PosePrior`) trains
in the same step on real poses against their mirror images (least-squares
GAN losses; its parameters get no gradient from the student's losses and
vice versa). Evaluation and inference pick a hypothesis without ground
truth (`hypotheses.choice`, see `hypothesis_choice`); K = 1 is the
single-hypothesis student, unchanged.
"""

import functools
from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from xsup import metrics as metrics_lib
from xsup import skeleton
from xsup.data import lifting as lifting_data
from xsup.data import pipeline
from xsup.data import sources
from xsup.data.synthetic import poses as poses_lib
from xsup.losses import lifting as losses
from xsup.losses import xsup as xsup_losses
from xsup.models import precision
from xsup.models import student as student_lib
from xsup.models import teacher as teacher_lib
from xsup.train import hypothesis_choice
from xsup.train import loop
from xsup.train import state as state_lib

STAGES = ("teacher", "student")


def build_teacher(model_config: ml_collections.ConfigDict
                  ) -> teacher_lib.Teacher:
  return teacher_lib.Teacher(**teacher_kwargs(model_config))


def teacher_kwargs(model_config) -> Dict[str, Any]:
  return dict(num_joints=17, width=model_config.width,
              num_layers=model_config.num_layers,
              dict_size=model_config.dict_size,
              init_std=model_config.get("init_std", 0.01))


def student_kwargs(model_config) -> Dict[str, Any]:
  return dict(hidden=model_config.hidden, num_blocks=model_config.num_blocks,
              dropout=model_config.get("dropout"),
              reference_pooling=model_config.get("reference_pooling", False),
              reference_init=model_config.get("reference_init", False))


PRIOR_POSES = ("", "procedural", "teacher")
HYPOTHESIS_DISTILLATIONS = ("winner_takes_all", "fixed_roles")


def num_hypotheses(config: ml_collections.ConfigDict) -> int:
  """K of a student config (1 for the teacher and older configs)."""
  if config.stage != "student":
    return 1
  k = int(config.model.get("num_hypotheses", 1))
  if k < 1:
    raise ValueError(f"config.model.num_hypotheses must be >= 1, got {k}")
  return k


def prior_poses(config: ml_collections.ConfigDict) -> str:
  """`hypotheses.prior_poses` ("" = no pose prior), checked."""
  hyp = config.get("hypotheses")
  source = (hyp.get("prior_poses") or "") if hyp is not None else ""
  if source not in PRIOR_POSES:
    raise ValueError(f"config.hypotheses.prior_poses={source!r}; expected "
                     f"one of {PRIOR_POSES}")
  return source


def hypothesis_kwargs(config: ml_collections.ConfigDict) -> Dict[str, Any]:
  """Constructor arguments of the `HypothesisStudent` of a K > 1 config."""
  prior = None
  if prior_poses(config):
    prior = {k: config.hypotheses.prior[k]
             for k in config.hypotheses.prior.keys()}
  return dict(student_kwargs=student_kwargs(config.model),
              num_hypotheses=num_hypotheses(config), prior_kwargs=prior)


def make_optimizer(opt_config: ml_collections.ConfigDict,
                   steps_per_epoch: int, total_steps: int = 0
                   ) -> optax.GradientTransformation:
  """SGD (momentum) or Adam with L2 weight decay and a learning-rate schedule.

  `opt_config.schedule`: "step" (default; the paper's: x`decay_factor`
  every `decay_every_epochs`) or "cosine" (cosine decay to 0 over
  `total_steps`, which short runs need so that the BatchNorm running
  statistics catch up with the weights before the end).
  """
  schedule_name = opt_config.get("schedule", "step")
  if schedule_name == "step":
    schedule = optax.exponential_decay(
        opt_config.learning_rate,
        transition_steps=max(1, opt_config.decay_every_epochs *
                             steps_per_epoch),
        decay_rate=opt_config.decay_factor, staircase=True)
  elif schedule_name == "cosine":
    if total_steps <= 0:
      raise ValueError("optimizer.schedule='cosine' needs the run's total "
                       "number of steps")
    schedule = optax.cosine_decay_schedule(opt_config.learning_rate,
                                           total_steps)
  else:
    raise ValueError(f"Unknown optimizer.schedule {schedule_name!r}; known: "
                     "step, cosine")
  if opt_config.name == "sgd":
    return optax.chain(optax.add_decayed_weights(opt_config.weight_decay),
                       optax.sgd(schedule, momentum=opt_config.momentum))
  if opt_config.name == "adam":
    return optax.chain(optax.add_decayed_weights(opt_config.weight_decay),
                       optax.adam(schedule))
  raise ValueError(f"Unknown optimizer {opt_config.name!r}; known: sgd, adam")


def predict_3d(stage: str, model, variables, keypoints_2d: jax.Array
               ) -> jax.Array:
  """Pure inference: normalised 2D `[B, 17, 2]` -> 3D `[B, 17, 3]` (units).

  Both networks are read through their depth: the 3D pose is the input 2D
  lifted with the predicted depth, `[x (5 + d), y (5 + d), d]` (for the
  teacher, d is the depth of its camera-frame shape S R), root-relative.
  """
  keypoints_2d = keypoints_2d - keypoints_2d[:, :1]
  if stage == "teacher":
    depth = model.apply(variables, keypoints_2d, train=False)["camera"][
        ..., 2:3]
  else:
    depth = model.apply(variables, keypoints_2d, train=False)
  shape = losses.lift(keypoints_2d, depth)
  return shape - shape[:, :1]


def predict_hypotheses_3d(model: student_lib.HypothesisStudent, variables,
                          keypoints_2d: jax.Array) -> Dict[str, jax.Array]:
  """Pure inference of a multi-hypothesis student and its scores.

  Args:
    model: the `HypothesisStudent`.
    variables: its variables.
    keypoints_2d: `[B, 17, 2]` normalised 2D.
  Returns:
    "hypotheses": `[B, K, 17, 3]` root-relative 3D (units), in the model's
      order; "chirality": `[B, K]` unit-radius chirality scores; with a
      prior also "discriminator": `[B, K]` its scores.
  """
  keypoints_2d = keypoints_2d - keypoints_2d[:, :1]
  depth = model.apply(variables, keypoints_2d, train=False)
  shapes = losses.lift_hypotheses(keypoints_2d, depth)
  shapes = shapes - shapes[:, :, :1]
  out = {"hypotheses": shapes,
         "chirality": hypothesis_choice.chirality_scores(shapes)}
  if model.has_prior:
    flat = shapes.reshape((-1,) + shapes.shape[2:])
    out["discriminator"] = model.apply(
        variables, flat, method=student_lib.HypothesisStudent.prior_score
    ).reshape(shapes.shape[:2])
  return out


class LiftingTask(loop.Task):
  """Teacher or student training on any lifting builder."""

  def __init__(self, config: ml_collections.ConfigDict, mesh=None,
               train_data: pipeline.Batch = None,
               eval_data: Dict[str, pipeline.Batch] = None):
    """Args: config; mesh (default: all devices); prepared arrays to use
    instead of loading `config.dataset` (train split / split -> arrays)."""
    if config.stage not in STAGES:
      raise ValueError(f"config.stage={config.stage!r}; expected one of "
                       f"{STAGES}")
    self.config = config
    self.mesh = mesh if mesh is not None else loop.make_mesh(config)
    self.stage = config.stage
    self.num_hypotheses = num_hypotheses(config)
    self.prior_poses = prior_poses(config) if self.stage == "student" else ""
    if self.stage == "teacher":
      model = build_teacher(config.model)
    elif self.num_hypotheses > 1:
      model = student_lib.HypothesisStudent(**hypothesis_kwargs(config))
      hypothesis_choice.check_choice(config.hypotheses.choice)
      _ = self.wta_ordered_steps, self.hypothesis_distillation  # Checked.
    else:
      if self.prior_poses:
        raise ValueError("config.hypotheses.prior_poses needs a "
                         "multi-hypothesis student "
                         "(config.model.num_hypotheses > 1)")
      model = student_lib.Student(**student_kwargs(config.model))
    self.model = precision.with_compute_dtype(
        model, precision.compute_dtype(config.model.get("dtype", "float32")))
    self._train = train_data
    self._eval_sets = dict(eval_data or {})
    self._teacher = None

  # Data ---------------------------------------------------------------
  @property
  def train_data(self) -> pipeline.Batch:
    if self._train is None:
      self._train = lifting_data.load(self.config.dataset,
                                      self.config.dataset.train_split)
    return self._train

  def eval_data(self, split: str) -> pipeline.Batch:
    if split not in self._eval_sets:
      self._eval_sets[split] = lifting_data.load(self.config.dataset, split)
    return self._eval_sets[split]

  @functools.cached_property
  def train_batch_fn(self) -> pipeline.SourceBatches:
    """The picklable batch of each global step: `keypoints_2d` rows of the
    in-memory training split (`pipeline.GlobalBatchSampler` order)."""
    dataset = self.config.dataset
    source = sources.ArraySource(
        {"keypoints_2d": self.train_data["keypoints_2d"]},
        f"{dataset.name}/{dataset.get('config') or 'default'} split "
        f"{dataset.train_split!r} (normalised 2D)")
    return pipeline.SourceBatches(
        source, pipeline.GlobalBatchSampler(len(source),
                                            self.config.batch_size,
                                            seed=self.config.seed))

  @property
  def steps_per_epoch(self) -> int:
    return self.train_batch_fn.sampler.steps_per_epoch

  def batch_at(self, step: int) -> pipeline.Batch:
    """Process-local batch of global step `step` (deterministic)."""
    return self.train_batch_fn(step)

  def train_batches(self, start_step: int) -> pipeline.StepIterator:
    return pipeline.training_iterator(
        self.train_batch_fn, self.train_batch_fn.source, start_step,
        self.config.get("data_workers"), self.config.get("data_prefetch", 2))

  # State --------------------------------------------------------------
  @functools.cached_property
  def optimizer(self) -> optax.GradientTransformation:
    return make_optimizer(self.config.optimizer, self.steps_per_epoch,
                          loop.total_steps(self.config, self))

  def init_state(self, key: jax.Array) -> state_lib.TrainState:
    dummy = jnp.zeros((2, 17, 2), jnp.float32)
    if self.num_hypotheses > 1:
      variables = self.model.init(
          key, dummy, train=False,
          method=student_lib.HypothesisStudent.init_all)
    else:
      variables = self.model.init(key, dummy, train=False)
    params = variables["params"]
    return state_lib.TrainState(
        step=jnp.zeros((), jnp.int32), params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=self.optimizer.init(params))

  # Teacher (frozen) for the student stage --------------------------------
  @property
  def teacher(self) -> Tuple[teacher_lib.Teacher, Dict[str, Any]]:
    if self._teacher is None:
      path = self.config.get("teacher_checkpoint")
      if not path:
        raise ValueError("The student stage needs config.teacher_checkpoint "
                         "(a trained teacher workdir)")
      restored, _ = loop.load_checkpoint_tree(path)
      model = build_teacher(self.config.teacher_model)
      variables = {"params": restored["params"],
                   "batch_stats": restored["batch_stats"]}
      # Fail early and clearly if the architectures do not match.
      expected = jax.eval_shape(
          functools.partial(model.init, train=False), jax.random.PRNGKey(0),
          jnp.zeros((2, 17, 2)))
      got = jax.tree.map(lambda x: x.shape, variables)
      want = jax.tree.map(lambda x: x.shape, expected)
      if got != want:
        raise ValueError(f"Teacher checkpoint {path!r} does not match "
                         "config.teacher_model (width/num_layers/dict_size)")
      variables = jax.device_put(variables, state_lib.replicated(self.mesh))
      self._teacher = (model, variables)
    return self._teacher

  # Steps --------------------------------------------------------------
  def _teacher_loss(self, params, batch_stats, keypoints_2d, key, epoch):
    cfg = self.config.loss
    variables = {"params": params, "batch_stats": batch_stats}
    out, updates = self.model.apply(variables, keypoints_2d, train=True,
                                    mutable=["batch_stats"])
    centred = keypoints_2d - keypoints_2d[:, :1]
    reproj = losses.reprojection_loss(out["camera"], centred)
    align = epoch < cfg.align_root_epochs
    rotated_2d, target = jax.lax.cond(
        align,
        lambda c: losses.invariance_cycle(key, c, cfg.cycle_samples, True),
        lambda c: losses.invariance_cycle(key, c, cfg.cycle_samples, False),
        out["canonical"])
    cycle_vars = ({"params": params, "batch_stats": updates["batch_stats"]}
                  if cfg.get("reference_bn_updates") else variables)
    re_out, cycle_updates = self.model.apply(
        cycle_vars, rotated_2d, train=True, mutable=["batch_stats"],
        method=teacher_lib.Teacher.canonical_only)
    cycle = losses.mpjpe_loss(re_out["canonical"], target)
    total = cfg.reprojection_weight * reproj + cycle
    new_stats = (cycle_updates["batch_stats"]
                 if cfg.get("reference_bn_updates") else updates["batch_stats"])
    return total, (new_stats, {"loss": total, "reprojection": reproj,
                               "cycle": cycle})

  def _student_loss(self, params, batch_stats, keypoints_2d, key,
                    teacher_depth):
    cfg = self.config.loss
    variables = {"params": params, "batch_stats": batch_stats}
    depth, updates = self.model.apply(variables, keypoints_2d, train=True,
                                      mutable=["batch_stats"])
    distill = losses.distillation_loss(depth, teacher_depth)
    shape_3d = losses.lift(keypoints_2d, depth)
    rotated_2d, rotated_3d = losses.equivariance_cycle(key, shape_3d,
                                                       cfg.cycle_samples)
    re_depth, _ = self.model.apply(
        {"params": params, "batch_stats": updates["batch_stats"]},
        rotated_2d, train=True, mutable=["batch_stats"])
    cycle = losses.mpjpe_loss(losses.lift(rotated_2d, re_depth), rotated_3d)
    total = cfg.distillation_weight * distill + cycle
    return total, (updates["batch_stats"], {"loss": total,
                                            "distillation": distill,
                                            "cycle": cycle})

  def _hypothesis_loss(self, params, batch_stats, keypoints_2d, key,
                       teacher_depth, prior_real, step=None):
    """Distillation + winner-takes-all cycle (+ the pose prior's loss).

    The distillation is winner-takes-all, or gives hypotheses 0 and 1 fixed
    roles (`losses.ordered_mirror_distillation_loss`) with
    `loss.hypothesis_distillation="fixed_roles"` or before
    `loss.wta_ordered_steps` (with `loss.wta_mirror_target`).
    """
    cfg = self.config.loss
    variables = {"params": params, "batch_stats": batch_stats}
    hyps, updates = self.model.apply(variables, keypoints_2d, train=True,
                                     mutable=["batch_stats"])
    distill_errors = losses.per_sample_mpjpe(hyps, teacher_depth[:, None])
    if self.hypothesis_distillation == "fixed_roles":
      distill = losses.ordered_mirror_distillation_loss(hyps, keypoints_2d,
                                                        teacher_depth)
    else:
      distill = losses.wta_distillation_loss(
          hyps, teacher_depth,
          with_mirror=cfg.get("wta_mirror_target", False))
      ordered_steps = self.wta_ordered_steps
      if ordered_steps > 0:
        ordered = losses.ordered_mirror_distillation_loss(
            hyps, keypoints_2d, teacher_depth)
        distill = jnp.where(step < ordered_steps, ordered, distill)
    shapes = losses.lift_hypotheses(keypoints_2d, hyps)  # [B, K, J, 3]
    flat = shapes.reshape((-1,) + shapes.shape[2:])
    rotated_2d, rotated_3d = losses.equivariance_cycle(key, flat,
                                                       cfg.cycle_samples)
    re_hyps, _ = self.model.apply(
        {"params": params, "batch_stats": updates["batch_stats"]},
        rotated_2d, train=True, mutable=["batch_stats"])
    cycle = losses.wta_cycle_loss(
        losses.lift_hypotheses(rotated_2d, re_hyps), rotated_3d)
    total = cfg.distillation_weight * distill + cycle
    rel = jax.lax.stop_gradient(shapes - shapes[:, :, :1])
    spread = jnp.mean(jnp.linalg.norm(rel[:, :, None] - rel[:, None],
                                      axis=-1))
    step_metrics = {
        "distillation": distill, "cycle": cycle,
        "hypothesis_spread": spread * self.num_hypotheses /
                             (self.num_hypotheses - 1),
        "winner0_rate": jnp.mean(jnp.argmin(distill_errors, axis=1) == 0)}
    if prior_real is not None:
      # Real poses against their mirror images (x negated): the prior
      # learns which of a depth-mirror pair a real body would be.
      real = jax.lax.stop_gradient(prior_real)
      fake = real * jnp.array([-1.0, 1.0, 1.0], real.dtype)
      score = functools.partial(
          self.model.apply, variables, train=True,
          method=student_lib.HypothesisStudent.prior_score,
          rngs={"dropout": jax.random.fold_in(key, 1)})
      s_real, s_fake = score(real), score(fake)
      prior_loss = xsup_losses.lsgan_discriminator_loss(s_real[:, None],
                                                        s_fake[:, None])
      total = total + self.config.hypotheses.prior_weight * prior_loss
      step_metrics.update(prior=prior_loss,
                          prior_accuracy=jnp.mean(s_real > s_fake))
    step_metrics["loss"] = total
    return total, (updates["batch_stats"], step_metrics)

  @property
  def hypothesis_distillation(self) -> str:
    """`loss.hypothesis_distillation`, checked (default winner-takes-all)."""
    mode = self.config.loss.get("hypothesis_distillation",
                                "winner_takes_all")
    if mode not in HYPOTHESIS_DISTILLATIONS:
      raise ValueError(f"config.loss.hypothesis_distillation={mode!r}; "
                       f"expected one of {HYPOTHESIS_DISTILLATIONS}")
    return mode

  @property
  def wta_ordered_steps(self) -> int:
    """`loss.wta_ordered_steps`, checked (0: winner-takes-all throughout)."""
    steps = int(self.config.loss.get("wta_ordered_steps", 0) or 0)
    if steps < 0:
      raise ValueError(f"config.loss.wta_ordered_steps must be >= 0, got "
                       f"{steps}")
    if steps and not self.config.loss.get("wta_mirror_target", False):
      raise ValueError("config.loss.wta_ordered_steps needs "
                       "config.loss.wta_mirror_target=True (the ordered "
                       "warm-up distils the target and its mirror)")
    return steps

  def prior_real_poses(self, key: jax.Array, keypoints_2d: jax.Array,
                       teacher_depth: jax.Array,
                       prior_bank: Any = None) -> Any:
    """Real poses `[B, 17, 3]` for the pose prior, or None without one.

    `procedural`: random poses of `prior_bank` (`[M, 17, 3]`, the sampler
    of `xsup.data.synthetic.poses`); `teacher`: the batch lifted with the
    teacher's depth, anatomically oriented
    (`losses.orient_depth_by_chirality`).
    """
    if self.prior_poses == "procedural":
      if prior_bank is None:
        raise ValueError("The procedural pose prior needs prior_bank "
                         "(step_extras)")
      idx = jax.random.randint(jax.random.fold_in(key, 2),
                               (keypoints_2d.shape[0],), 0,
                               prior_bank.shape[0])
      return prior_bank[idx]
    if self.prior_poses == "teacher":
      oriented = losses.orient_depth_by_chirality(keypoints_2d,
                                                  teacher_depth)
      return losses.lift(keypoints_2d, oriented)
    return None

  @functools.cached_property
  def prior_bank(self) -> np.ndarray:
    """`[M, 17, 3]` procedural poses (mm, world frame) of the pose prior."""
    hyp = self.config.hypotheses
    rng = np.random.default_rng(hyp.prior_bank_seed)
    return poses_lib.sample_poses(rng, hyp.prior_bank_size)

  def teacher_target(self, teacher_variables, keypoints_2d: jax.Array
                     ) -> jax.Array:
    """The frozen teacher's depth `[B, 17, 1]` the student distils.

    `loss.orient_teacher_depth`: mirror each pose's relative depth to the
    anatomical orientation (`losses.orient_depth_by_chirality`), for
    teachers that flip depth between inputs. `loss.mirror_average_teacher`:
    average the depth with the teacher's depth of the left-right mirrored
    input (joints swapped back), a symmetry every lifter should have,
    which averages out the teacher's left-right asymmetric errors. Both
    default to off (the published target).
    """
    cfg = self.config.loss
    model = build_teacher(self.config.teacher_model)
    orient = cfg.get("orient_teacher_depth", False)

    def teacher_depth(inputs):
      return model.apply(teacher_variables, inputs, train=False)["camera"][
          ..., 2:3]

    def oriented(depth):
      if not orient:
        return depth
      return losses.orient_depth_by_chirality(keypoints_2d, depth)

    target = oriented(teacher_depth(keypoints_2d))
    if cfg.get("mirror_average_teacher", False):
      mirrored = skeleton.flip_left_right(keypoints_2d, skeleton.H36M17)
      perm = skeleton.H36M17.flip_permutation  # Swaps the joints back.
      target = 0.5 * (target + oriented(teacher_depth(mirrored)[:, perm]))
    return jax.lax.stop_gradient(target)

  def step_extras(self) -> Dict[str, Any]:
    if self.stage != "student":
      return {}
    extras = {"teacher_variables": self.teacher[1]}
    if self.prior_poses == "procedural":
      extras["prior_bank"] = jax.device_put(
          jnp.asarray(self.prior_bank, jnp.float32),
          state_lib.replicated(self.mesh))
    return extras

  def train_step(self, state, batch, key, teacher_variables=None,
                 prior_bank=None):
    keypoints_2d = batch["keypoints_2d"]
    if self.stage == "teacher":
      epoch = state.step // self.steps_per_epoch
      loss_fn = functools.partial(self._teacher_loss,
                                  keypoints_2d=keypoints_2d, key=key,
                                  epoch=epoch)
    elif self.num_hypotheses > 1:
      teacher_depth = self.teacher_target(teacher_variables, keypoints_2d)
      loss_fn = functools.partial(
          self._hypothesis_loss, keypoints_2d=keypoints_2d, key=key,
          teacher_depth=teacher_depth, step=state.step,
          prior_real=self.prior_real_poses(key, keypoints_2d, teacher_depth,
                                           prior_bank))
    else:
      teacher_depth = self.teacher_target(teacher_variables, keypoints_2d)
      loss_fn = functools.partial(self._student_loss,
                                  keypoints_2d=keypoints_2d, key=key,
                                  teacher_depth=teacher_depth)
    grads, (new_stats, step_metrics) = jax.grad(loss_fn, has_aux=True)(
        state.params, state.batch_stats)
    updates, opt_state = self.optimizer.update(grads, state.opt_state,
                                               state.params)
    params = optax.apply_updates(state.params, updates)
    step_metrics.update(grad_norm=state_lib.tree_norm(grads),
                        param_norm=state_lib.tree_norm(params),
                        update_norm=state_lib.tree_norm(updates))
    return state.replace(step=state.step + 1, params=params,
                         batch_stats=new_stats, opt_state=opt_state), \
        loop.mean_metrics(step_metrics)

  # Evaluation ---------------------------------------------------------
  @functools.cached_property
  def _predict(self):
    return jax.jit(functools.partial(predict_3d, self.stage, self.model))

  def predict(self, variables, keypoints_2d: np.ndarray,
              batch_size: int = 4096) -> np.ndarray:
    """Normalised 2D `[N, 17, 2]` -> root-relative 3D `[N, 17, 3]` (units).

    Single-hypothesis networks; a multi-hypothesis student predicts with
    `predict_hypotheses`.
    """
    if self.num_hypotheses > 1:
      raise ValueError("LiftingTask.predict: this student has "
                       f"{self.num_hypotheses} hypotheses; use "
                       "predict_hypotheses")
    return loop.run_chunked(self._predict, variables, keypoints_2d,
                            batch_size)

  @functools.cached_property
  def _predict_hypotheses(self):
    return jax.jit(functools.partial(predict_hypotheses_3d, self.model))

  def predict_hypotheses(self, variables, keypoints_2d: np.ndarray,
                         batch_size: int = 4096) -> Dict[str, np.ndarray]:
    """Normalised 2D `[N, 17, 2]` -> `predict_hypotheses_3d` outputs (numpy,
    the model's hypothesis order)."""
    return loop.run_chunked(self._predict_hypotheses, variables,
                            keypoints_2d, batch_size)

  def choose_hypotheses(self, outputs: Dict[str, np.ndarray],
                        data: pipeline.Batch, choice: str,
                        source: str = "data") -> np.ndarray:
    """The chosen hypothesis `[N]` of `predict_hypotheses` outputs under
    `choice` (`hypothesis_choice.CHOICES`), as configured in
    `config.hypotheses`."""
    hyp = self.config.hypotheses
    segments = None
    if choice == "temporal":
      segments = hypothesis_choice.sequence_segments(
          data, hyp.temporal_max_gap, source=source)
    scores = {k: v for k, v in outputs.items() if k != "hypotheses"}
    return hypothesis_choice.choose(
        choice, outputs["hypotheses"], scores, segments,
        temporal_unary=hyp.temporal_unary,
        temporal_weight=hyp.temporal_weight)

  def evaluate_hypotheses(self, variables, data: pipeline.Batch,
                          source: str = "data") -> Dict[str, Any]:
    """Evaluation of a multi-hypothesis student on one prepared split.

    The top-level metrics (`mpjpe`, ..., their `_flip` variants) are those
    of the hypothesis chosen without ground truth (`hypotheses.choice`);
    `metrics.hypothesis_errors` adds `confident/` (the same, and its
    `ambiguity` rate), `best/` (the oracle over hypotheses) and, for every
    other choice this model and split allow, `choice_<name>/` entries.
    Averages per action as `metrics.summarize`.
    """
    protocol = self.config.get("eval", {}).get("scale_protocol", "rotation")
    outputs = self.predict_hypotheses(variables, data["keypoints_2d"])
    per_hyp = metrics_lib.per_hypothesis_errors(
        outputs["hypotheses"], data["pose_3d"], calibrate=True,
        scale_protocol=protocol)
    configured = self.config.hypotheses.choice
    chosen = self.choose_hypotheses(outputs, data, configured, source)
    confident = metrics_lib.hypothesis_errors(per_hyp, chosen)
    errors = {name: confident[f"confident/{name}"] for name in per_hyp}
    errors.update(confident)
    available = ["chirality"]
    if "discriminator" in outputs:
      available.append("discriminator")
    if "frame" in data:
      available.append("temporal")
    for choice in available:
      if choice == configured:
        continue
      other = metrics_lib.hypothesis_errors(
          per_hyp, self.choose_hypotheses(outputs, data, choice, source),
          prefix=f"choice_{choice}", with_best=False)
      errors.update({k: v for k, v in other.items()
                     if k.rsplit("/", 1)[1] in ("mpjpe", "p_mpjpe",
                                                "p_mpjpe_flip", "ambiguity")})
    return dict(metrics_lib.summarize(errors, data.get("action")),
                scale_protocol=protocol)

  def evaluate(self, state) -> Dict[str, Dict[str, Any]]:
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    results = {}
    protocol = self.config.get("eval", {}).get("scale_protocol", "rotation")
    for split in self.config.dataset.eval_splits:
      data = self.eval_data(split)
      if self.num_hypotheses > 1:
        results[_split_name(split)] = self.evaluate_hypotheses(
            variables, data, source=f"{self.config.dataset.name}[{split}]")
        continue
      pred = self.predict(variables, data["keypoints_2d"])
      errors = metrics_lib.pose_errors(pred, data["pose_3d"], calibrate=True,
                                       scale_protocol=protocol)
      results[_split_name(split)] = dict(metrics_lib.summarize(
          errors, data.get("action")), scale_protocol=protocol)
    return results

  def baseline_metrics(self) -> Dict[str, Dict[str, Any]]:
    """The flat baseline (`flat_baseline`) of each evaluation split."""
    return {_split_name(s): dict(flat_baseline(self.eval_data(s)),
                                 name="flat pose, zero depth")
            for s in self.config.dataset.eval_splits}

  def export_spec(self, state):
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    if self.stage == "teacher":
      return "teacher", teacher_kwargs(self.config.model), variables
    if self.num_hypotheses > 1:
      return "hypothesis_student", hypothesis_kwargs(self.config), variables
    return "student", student_kwargs(self.config.model), variables

  def export_metadata(self) -> Dict[str, Any]:
    """Input of `predict_3d`: H36M-17 2D keypoints, normalised by
    `camera.normalize_2d_lifting` (its defaults); `norm_scale` is the
    training split's scale, which inference may reuse."""
    meta = {"input": "keypoints_2d", "skeleton": "h36m17",
            "norm_scale": float(self.train_data["norm_scale"][0])}
    if self.num_hypotheses > 1:
      hyp = self.config.hypotheses
      meta["hypotheses"] = {
          "num_hypotheses": self.num_hypotheses, "choice": hyp.choice,
          "temporal_unary": hyp.temporal_unary,
          "temporal_weight": float(hyp.temporal_weight)}
    return meta


def _split_name(split: str) -> str:
  return split.replace("+", "_").replace("[", "_").replace("]", "").replace(
      ":", "-").replace("%", "pct")


def flat_baseline(data: pipeline.Batch) -> Dict[str, Any]:
  """Errors of the flat prediction: the 2D input with zero relative depth."""
  flat = np.concatenate([data["keypoints_2d"] - data["keypoints_2d"][:, :1],
                         np.zeros_like(data["keypoints_2d"][..., :1])], -1)
  return metrics_lib.summarize(metrics_lib.pose_errors(
      flat, data["pose_3d"], calibrate=True))


def get_task(config: ml_collections.ConfigDict) -> LiftingTask:
  return LiftingTask(config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  return loop.train_and_evaluate(get_task(config), config, workdir)

