"""Pruning schedules with the step semantics of `tfmot.sparsity.keras`.

A schedule is called with the wrapper's pruning step (tfmot's numbering: the
`optimizer.iterations` of the batch, 0 on the first batch) and returns
`(should_prune, sparsity)`. Masks are recomputed only on steps where
`should_prune` is true: `step` in [`begin_step`, `end_step`] (no upper bound
when `end_step == -1`) and `(step - begin_step) % frequency == 0`. Before
`begin_step` nothing is pruned; after `end_step` the masks stay as they are.
"""

import numbers

import keras


def _check_step_args(begin_step, end_step, frequency, allow_open_end):
    for name, value in (("begin_step", begin_step), ("end_step", end_step),
                        ("frequency", frequency)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an int, received: {value!r}")
    if begin_step < 0:
        raise ValueError(f"`begin_step` must be >= 0, received: {begin_step}")
    if end_step == -1 and not allow_open_end:
        raise ValueError(
            "`end_step` must be a step >= `begin_step` for this schedule "
            "(-1, prune forever, is only for ConstantSparsity), received: -1"
        )
    if end_step != -1 and end_step < begin_step:
        raise ValueError(
            f"`end_step` must be -1 or >= `begin_step` ({begin_step}), "
            f"received: {end_step}"
        )
    if frequency <= 0:
        raise ValueError(f"`frequency` must be > 0, received: {frequency}")


def check_sparsity(name, value):
    """Raises unless `value` is a real number in [0, 1).

    Args:
        name: the argument's name, for the message.
        value: the value received.

    Example:
    >>> check_sparsity("target_sparsity", 0.5)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a float in [0, 1), received: {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"`{name}` must be in [0, 1) (a fraction of weights set to zero), "
            f"received: {value}"
        )


class PruningSchedule:
    """Base class: when to update the masks, and to which sparsity.

    Subclasses implement `sparsity(step)` (a float64 scalar tensor) and
    `get_config()`, and set `begin_step`, `end_step` and `frequency`.

    Example:
    >>> should_prune, sparsity = ConstantSparsity(0.5, 0)(100)
    """

    def _should_prune(self, step):
        step = keras.ops.cast(step, "int64")
        in_range = keras.ops.logical_and(
            step >= self.begin_step,
            keras.ops.logical_or(step <= self.end_step, self.end_step < 0),
        )
        on_turn = keras.ops.equal(
            keras.ops.mod(step - self.begin_step, self.frequency), 0
        )
        return keras.ops.logical_and(in_range, on_turn)

    def sparsity(self, step):
        raise NotImplementedError

    def __call__(self, step):
        """Returns `(should_prune, sparsity)` tensors for `step` (int or tensor)."""
        return self._should_prune(step), self.sparsity(step)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps in [begin, end].

    Args:
        target_sparsity: float in [0, 1), the fraction of weights to zero.
        begin_step: int >= 0, first step at which masks are updated.
        end_step: int >= `begin_step`, last such step; -1 (default) for no end.
        frequency: int > 0, masks are updated every `frequency` steps.

    Example:
    >>> schedule = ConstantSparsity(0.8, begin_step=0, frequency=10)
    >>> model = prune_low_magnitude(model, pruning_schedule=schedule)
    """

    def __init__(self, target_sparsity, begin_step, end_step=-1, frequency=100):
        check_sparsity("target_sparsity", target_sparsity)
        _check_step_args(begin_step, end_step, frequency, allow_open_end=True)
        self.target_sparsity = float(target_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def sparsity(self, step):
        return keras.ops.convert_to_tensor(self.target_sparsity, "float64")

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package="r2kd_keras")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` (Zhu & Gupta).

    `s(step) = final + (initial - final) * (1 - p) ** power` with
    `p = clip((step - begin_step) / (end_step - begin_step), 0, 1)`, so the
    value at `end_step` is exactly `final_sparsity`. Masks are updated every
    `frequency` steps in [begin_step, end_step]; choose `end_step - begin_step`
    a multiple of `frequency` so the last update lands on `end_step`.

    Args:
        initial_sparsity: float in [0, 1), sparsity at `begin_step`.
        final_sparsity: float in [0, 1), sparsity from `end_step` on.
        begin_step: int >= 0.
        end_step: int > `begin_step`.
        power: exponent of the decay (3 in tfmot and the paper).
        frequency: int > 0.

    Example:
    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000)
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step,
                 power=3, frequency=100):
        check_sparsity("initial_sparsity", initial_sparsity)
        check_sparsity("final_sparsity", final_sparsity)
        _check_step_args(begin_step, end_step, frequency, allow_open_end=False)
        if end_step == begin_step:
            raise ValueError(
                "`end_step` must be > `begin_step` for PolynomialDecay (the decay "
                f"needs a non-empty interval), received: end_step={end_step}, "
                f"begin_step={begin_step}. Use ConstantSparsity for a single step."
            )
        self.initial_sparsity = float(initial_sparsity)
        self.final_sparsity = float(final_sparsity)
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.power = power
        self.frequency = int(frequency)

    def sparsity(self, step):
        elapsed = keras.ops.cast(step, "float64") - self.begin_step
        progress = keras.ops.clip(elapsed / (self.end_step - self.begin_step), 0.0, 1.0)
        remaining = keras.ops.power(1.0 - progress, float(self.power))
        return self.final_sparsity + (
            self.initial_sparsity - self.final_sparsity
        ) * remaining

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }
