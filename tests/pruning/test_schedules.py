"""Schedules against values worked out by hand from tfmot's documented rules:
prune when begin <= step <= end (end -1: no end) and (step - begin) % frequency
== 0; PolynomialDecay s = final + (initial - final) * (1 - p)**power,
p = clip((step - begin) / (end - begin), 0, 1)."""

import keras
import numpy as np
import pytest

from r2kd_keras.pruning import ConstantSparsity
from r2kd_keras.pruning import PolynomialDecay


def _evaluate(schedule, step):
    should_prune, sparsity = schedule(step)
    return bool(keras.ops.convert_to_numpy(should_prune)), float(
        keras.ops.convert_to_numpy(sparsity)
    )


@pytest.mark.parametrize(
    "step, should_prune",
    [(0, False), (9, False), (10, True), (15, False), (20, True), (40, True),
     (41, False), (50, False)],
)
def test_constant_sparsity_window(step, should_prune):
    schedule = ConstantSparsity(0.6, begin_step=10, end_step=40, frequency=10)
    assert _evaluate(schedule, step) == (should_prune, pytest.approx(0.6))


@pytest.mark.parametrize(
    "step, should_prune",
    [(0, True), (1, False), (99, False), (100, True), (250, False), (10**6, True)],
)
def test_constant_sparsity_defaults_prune_forever_every_100(step, should_prune):
    assert _evaluate(ConstantSparsity(0.5, 0), step)[0] is should_prune


@pytest.mark.parametrize(
    "step, should_prune, sparsity",
    [
        (0, False, 0.1),  # before begin: initial value, no update
        (100, True, 0.1),
        (150, True, 0.3640625),  # 0.9 - 0.8 * 0.875**3
        (300, True, 0.8),  # 0.9 - 0.8 * 0.5**3
        (325, False, 0.8330078125),  # 0.9 - 0.8 * 0.4375**3, not a turn
        (500, True, 0.9),  # end_step reaches the final value, and updates
        (550, False, 0.9),  # after end: no more updates
    ],
)
def test_polynomial_decay_grid(step, should_prune, sparsity):
    schedule = PolynomialDecay(0.1, 0.9, begin_step=100, end_step=500, frequency=50)
    assert _evaluate(schedule, step) == (should_prune, pytest.approx(sparsity, abs=1e-7))


def test_polynomial_decay_power_one_is_linear():
    schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=10, power=1, frequency=1)
    values = [_evaluate(schedule, step)[1] for step in range(11)]
    np.testing.assert_allclose(values, np.linspace(0.0, 0.5, 11), atol=1e-7)


def test_schedule_accepts_a_tensor_step():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=4, frequency=2)
    assert _evaluate(schedule, keras.ops.convert_to_tensor(2, "int64")) == (
        True, pytest.approx(0.7)  # 0.8 - 0.8 * 0.5**3
    )


@pytest.mark.parametrize(
    "schedule",
    [ConstantSparsity(0.7, 3, 30, 3), PolynomialDecay(0.2, 0.8, 5, 105, 2, 10)],
)
def test_schedules_serialise(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    assert config["registered_name"] == f"r2kd_keras>{type(schedule).__name__}"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    for step in (0, 10, 55, 200):
        assert _evaluate(restored, step) == _evaluate(schedule, step)


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda: ConstantSparsity(1.0, 0), ["target_sparsity", "1.0"]),
        (lambda: ConstantSparsity(-0.1, 0), ["target_sparsity", "-0.1"]),
        (lambda: PolynomialDecay(0.0, 1.2, 0, 10), ["final_sparsity", "1.2"]),
        (lambda: PolynomialDecay(1.0, 0.5, 0, 10), ["initial_sparsity", "1.0"]),
        (lambda: ConstantSparsity(0.5, 10, end_step=5), ["end_step", "5"]),
        (lambda: PolynomialDecay(0.0, 0.5, 10, 5), ["end_step", "5"]),
        (lambda: PolynomialDecay(0.0, 0.5, 0, -1), ["end_step", "-1"]),
        (lambda: PolynomialDecay(0.0, 0.5, 7, 7), ["end_step", "7"]),
        (lambda: ConstantSparsity(0.5, -1), ["begin_step", "-1"]),
        (lambda: ConstantSparsity(0.5, 0, frequency=0), ["frequency", "0"]),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, names):
    with pytest.raises(ValueError) as error:
        make()
    for name in names:
        assert name in str(error.value)


def test_non_numeric_sparsity_raises_type_error():
    with pytest.raises(TypeError, match="target_sparsity"):
        ConstantSparsity("0.5", 0)
