"""Distillation methods as objects: R2KD and the KD / DIST / DKD / CE-only
baselines, each with its recipe defaults (mdistiller's CIFAR-100 configs).

A method knows the weight of the student's cross-entropy, computes its
distillation terms from `(student_logits, target_logits, one_hot_labels)` with
the pure functions of `r2kd_keras.losses`, and names what it logs.
`R2KDDistiller(student, teacher, method=...)` takes one, or its name.

Example:
>>> from r2kd_keras import methods
>>> methods.METHOD_NAMES
('r2kd', 'kd', 'dist', 'dkd', 'none')
>>> method = methods.get_method("dkd", beta=6.0)
>>> distiller = R2KDDistiller(student, teacher, method=method)
"""

import inspect

import keras
from keras import ops

from r2kd_keras import losses
from r2kd_keras.losses import r2kd as r2kd_lib
from r2kd_keras.validation import check_choice
from r2kd_keras.validation import check_positive
from r2kd_keras.validation import check_range

# mdistiller's DKD warm-up on CIFAR-100 (240 epochs).
DKD_WARMUP_EPOCHS = 20


class DistillationMethod:
    """Base of the methods: the student's CE weight and no distillation term.

    Subclasses set `name` (the string shortcut), `term_names` (the logged
    terms, in the order `loss_terms` returns them) and `uses_teacher`, and
    store every constructor argument under its own name, which is what
    `get_config` returns.

    Args:
        ce_weight: weight of the student's cross-entropy with the labels.
    """

    name = None
    term_names = ()
    uses_teacher = True
    # A warm-up counted in epochs needs the fit's steps per epoch.
    needs_steps_per_epoch = False
    # Arguments that `R2KDDistiller(loss_kwargs=...)` used to carry.
    legacy_loss_kwargs = ()

    def __init__(self, ce_weight=1.0):
        check_range("ce_weight", ce_weight, 0.0)
        self.ce_weight = float(ce_weight)

    @classmethod
    def argument_names(cls):
        """The constructor's argument names (the keys of `get_config`)."""
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def loss_terms(self, student_logits, target_logits, labels, step=0.0, steps_per_epoch=0.0):
        """The weighted distillation terms for one view, by name.

        Args:
            student_logits: `(batch, classes)` float32 logits of the student.
            target_logits: `(batch, classes)` float32 (blended) teacher logits.
            labels: `(batch, classes)` one-hot float labels.
            step: the optimizer's step count before this update (0-based).
            steps_per_epoch: steps in one epoch of the current fit; 0 if unknown.

        Returns:
            A dict `{name: scalar}` with the keys `term_names`.
        """
        return {}

    def get_config(self):
        return {name: getattr(self, name) for name in self.argument_names()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


@keras.saving.register_keras_serializable(package="r2kd_keras")
class CrossEntropyOnly(DistillationMethod):
    """The student alone: cross-entropy with the labels, no teacher.

    With an augmenter, `R2KDDistiller` applies the CE to the augmented view
    too, with the augmenter's (mixed) labels.

    Args:
        ce_weight: weight of the cross-entropy (1).

    Example:
    >>> R2KDDistiller(student, None, method=CrossEntropyOnly())
    """

    name = "none"
    uses_teacher = False


class _TeacherMethod(DistillationMethod):
    """A method with a teacher and a softmax temperature."""

    def __init__(self, temperature=4.0, ce_weight=1.0):
        super().__init__(ce_weight)
        check_positive("temperature", temperature)
        self.temperature = float(temperature)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class R2KD(_TeacherMethod):
    """R2KD (Kim et al., TKDE 2024): correlation-value and rank terms.

    Terms per view: `value_loss = value_weight * correlation_value_loss` and
    `rank_loss = rank_weight * spearman_rank_loss` (see `r2kd_keras.losses`).

    Args:
        temperature: softmax temperature `tau` (4).
        value_weight: weight of the value term (2, the paper's).
        rank_weight: weight of the rank term (2, the paper's).
        rank_mode: `"exact"` (the reference: logged, passes no gradient) or
            `"soft"` (differentiable soft ranks that train the student).
        rank_sharpness: slope of the soft ranks (`"soft"` only; 10).
        ce_weight: weight of the student's cross-entropy (1).

    Example:
    >>> R2KDDistiller(student, teacher, method=R2KD(rank_mode="soft"))
    """

    name = "r2kd"
    term_names = ("value_loss", "rank_loss")

    def __init__(
        self, temperature=r2kd_lib.TEMPERATURE, value_weight=r2kd_lib.VALUE_WEIGHT,
        rank_weight=r2kd_lib.RANK_WEIGHT, rank_mode="exact",
        rank_sharpness=r2kd_lib.RANK_SHARPNESS,
        ce_weight=1.0,
    ):
        super().__init__(temperature, ce_weight)
        check_range("value_weight", value_weight, 0.0)
        check_range("rank_weight", rank_weight, 0.0)
        check_choice("rank_mode", rank_mode, losses.RANK_MODES)
        check_range("rank_sharpness", rank_sharpness, 0.0)
        self.value_weight = float(value_weight)
        self.rank_weight = float(rank_weight)
        self.rank_mode = rank_mode
        self.rank_sharpness = float(rank_sharpness)

    def loss_terms(self, student_logits, target_logits, labels, step=0.0, steps_per_epoch=0.0):
        tau = self.temperature
        return {
            "value_loss": self.value_weight
            * losses.correlation_value_loss(student_logits, target_logits, tau),
            "rank_loss": self.rank_weight * losses.spearman_rank_loss(
                student_logits, target_logits, tau, self.rank_mode, self.rank_sharpness
            ),
        }


class _Baseline(_TeacherMethod):
    """A baseline with one term, `distill_loss = distillation_weight * term`."""

    term_names = ("distill_loss",)

    def __init__(self, temperature=4.0, distillation_weight=1.0, ce_weight=1.0):
        super().__init__(temperature, ce_weight)
        check_range("distillation_weight", distillation_weight, 0.0)
        self.distillation_weight = float(distillation_weight)

    def term(self, student_logits, target_logits, labels, step, steps_per_epoch):
        raise NotImplementedError

    def loss_terms(self, student_logits, target_logits, labels, step=0.0, steps_per_epoch=0.0):
        term = self.term(student_logits, target_logits, labels, step, steps_per_epoch)
        return {"distill_loss": self.distillation_weight * term}


@keras.saving.register_keras_serializable(package="r2kd_keras")
class KD(_Baseline):
    """Hinton's KD: `tau^2 KL(p_t || p_s)` (`losses.kd_loss`).

    Args:
        temperature: softmax temperature (4).
        distillation_weight: weight of the KD term (0.9, mdistiller's).
        ce_weight: weight of the student's cross-entropy (0.1, mdistiller's).

    Example:
    >>> R2KDDistiller(student, teacher, method=KD(temperature=2.0))
    """

    name = "kd"

    def __init__(self, temperature=4.0, distillation_weight=0.9, ce_weight=0.1):
        super().__init__(temperature, distillation_weight, ce_weight)

    def term(self, student_logits, target_logits, labels, step, steps_per_epoch):
        return losses.kd_loss(student_logits, target_logits, self.temperature)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class DIST(_Baseline):
    """DIST (Huang et al., 2022): Pearson distances (`losses.dist_loss`).

    Args:
        temperature: softmax temperature (4).
        beta: weight of the inter-class (per-sample) term (2).
        gamma: weight of the intra-class (per-class) term (2).
        distillation_weight: weight of the DIST term (1).
        ce_weight: weight of the student's cross-entropy (1).

    Example:
    >>> R2KDDistiller(student, teacher, method=DIST(beta=1.0, gamma=1.0))
    """

    name = "dist"
    legacy_loss_kwargs = ("beta", "gamma")

    def __init__(
        self, temperature=4.0, beta=2.0, gamma=2.0, distillation_weight=1.0, ce_weight=1.0
    ):
        super().__init__(temperature, distillation_weight, ce_weight)
        check_range("beta", beta, 0.0)
        check_range("gamma", gamma, 0.0)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def term(self, student_logits, target_logits, labels, step, steps_per_epoch):
        return losses.dist_loss(
            student_logits, target_logits, self.temperature, self.beta, self.gamma
        )


@keras.saving.register_keras_serializable(package="r2kd_keras")
class DKD(_Baseline):
    """Decoupled KD (Zhao et al., 2022) with its linear warm-up.

    `distill_loss = distillation_weight * w(t) * losses.dkd_loss(...)`, the
    labels marking the target class, `t` the optimizer's step count before
    the update (`optimizer.iterations`, 0-based, as an LR schedule reads it).
    Counting from the optimizer keeps the warm-up right across several `fit`
    calls and after `BackupAndRestore` resumes mid-run.

    mdistiller multiplies the loss by `min(e / W, 1)`, `e` the epoch counted
    from 1, constant within an epoch, `W = 20` on CIFAR-100:

    - `warmup_epochs=W` (default 20): `w(t) = min((floor(t / S) + 1) / W, 1)`
      with `S` the steps per epoch of the fit, i.e. step `t` lies in epoch
      `floor(t / S) + 1` and the factor equals mdistiller's at every step.
      `R2KDDistiller.fit` reads `S` from the fit's callback parameters
      (`params["steps"]`); when Keras cannot know it (a dataset of unknown
      length) it is counted over the first epoch, which meanwhile gets the
      first epoch's factor `1 / W`. Keras 3.15 then also counts one extra
      optimizer step at the end of every such epoch, so the epoch derived
      from the steps runs ahead by `1 / S` epoch per epoch: give the dataset
      a known length (`repeat()` and `steps_per_epoch`) or use
      `warmup_steps` where that matters. `W` may be fractional (a warm-up
      shrunk with a shorter schedule).
    - `warmup_steps=N`: a per-step ramp `w(t) = min((t + 1) / N, 1)`. With
      `N = W * S` it equals mdistiller's factor `e / W` at the last step of
      every epoch `e` and is below it by less than `1 / W` inside the epoch.

    Give one of the two; 0 turns the warm-up off.

    Args:
        temperature: softmax temperature (4).
        alpha: weight of the target-class term TCKD (1).
        beta: weight of the non-target term NCKD (8).
        warmup_epochs: warm-up length in epochs (None: 20 unless
            `warmup_steps` is given).
        warmup_steps: warm-up length in optimizer steps.
        distillation_weight: weight of the DKD term (1).
        ce_weight: weight of the student's cross-entropy (1).

    Example:
    >>> DKD(beta=6.0, warmup_steps=20 * steps_per_epoch)
    """

    name = "dkd"
    legacy_loss_kwargs = ("alpha", "beta", "warmup_epochs", "warmup_steps")

    def __init__(
        self, temperature=4.0, alpha=1.0, beta=8.0, warmup_epochs=None, warmup_steps=None,
        distillation_weight=1.0, ce_weight=1.0,
    ):
        super().__init__(temperature, distillation_weight, ce_weight)
        check_range("alpha", alpha, 0.0)
        check_range("beta", beta, 0.0)
        if warmup_epochs is not None and warmup_steps is not None:
            raise ValueError(
                "Give DKD one of `warmup_epochs` or `warmup_steps`; received "
                f"warmup_epochs={warmup_epochs!r} and warmup_steps={warmup_steps!r}."
            )
        if warmup_epochs is not None:
            check_range("warmup_epochs", warmup_epochs, 0.0)
        if warmup_steps is not None:
            check_range("warmup_steps", warmup_steps, 0.0)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.warmup_epochs = warmup_epochs
        self.warmup_steps = warmup_steps
        # None of both is the recipe: 20 epochs.
        self._epochs = None if warmup_steps is not None else (
            DKD_WARMUP_EPOCHS if warmup_epochs is None else warmup_epochs
        )

    @property
    def needs_steps_per_epoch(self):
        return bool(self._epochs)

    def warmup_factor(self, step, steps_per_epoch=0.0):
        """`w(t)` of the class docstring for `step = t`.

        Args:
            step: the optimizer's step count before the update.
            steps_per_epoch: `S` (warm-up in epochs only); 0: unknown, the
                first epoch's factor is used.

        Returns:
            A float32 scalar in (0, 1].
        """
        step = ops.cast(step, "float32")
        if self.warmup_steps is not None:
            if not self.warmup_steps:
                return ops.ones(())
            return ops.minimum((step + 1.0) / float(self.warmup_steps), 1.0)
        if not self._epochs:
            return ops.ones(())
        steps_per_epoch = ops.cast(steps_per_epoch, "float32")
        epoch = ops.where(
            steps_per_epoch > 0,
            ops.floor(step / ops.maximum(steps_per_epoch, 1.0)) + 1.0,
            1.0,
        )
        return ops.minimum(epoch / float(self._epochs), 1.0)

    def term(self, student_logits, target_logits, labels, step, steps_per_epoch):
        return self.warmup_factor(step, steps_per_epoch) * losses.dkd_loss(
            student_logits, target_logits, labels, self.temperature, self.alpha, self.beta
        )


_METHODS = {cls.name: cls for cls in (R2KD, KD, DIST, DKD, CrossEntropyOnly)}
# The method names, for flags and validation; "none" is the student alone.
METHOD_NAMES = tuple(_METHODS)


def method_class(name):
    """The class of the method called `name` (one of `METHOD_NAMES`)."""
    check_choice("method", name, METHOD_NAMES)
    return _METHODS[name]


def get_method(name_or_object, **overrides):
    """A method object from its name or an object, with settings changed.

    Args:
        name_or_object: one of `METHOD_NAMES`, or a `DistillationMethod`.
        **overrides: constructor arguments of the method, e.g. `beta=6.0`.

    Returns:
        A `DistillationMethod` (a new one if `overrides` are given; the
        object itself otherwise).

    Example:
    >>> get_method("kd", temperature=2.0)
    KD(temperature=2.0, distillation_weight=0.9, ce_weight=0.1)
    >>> get_method(R2KD(), rank_mode="soft").rank_mode
    'soft'
    """
    if isinstance(name_or_object, DistillationMethod):
        cls, config = type(name_or_object), name_or_object.get_config()
        if not overrides:
            return name_or_object
    elif isinstance(name_or_object, str):
        cls, config = method_class(name_or_object), {}
    else:
        raise ValueError(
            f"`method` must be one of {METHOD_NAMES} or a DistillationMethod "
            f"(e.g. methods.R2KD()), received: {name_or_object!r}"
        )
    unknown = sorted(set(overrides) - set(cls.argument_names()))
    if unknown:
        raise ValueError(
            f"{cls.__name__} takes the arguments {list(cls.argument_names())}; "
            f"received unknown arguments {unknown}."
        )
    return cls(**{**config, **overrides})
