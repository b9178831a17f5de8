"""Method objects: recipe defaults, terms against the numpy references, DKD's
warm-up against a hand computation, config round trips, bad settings."""

import keras
import numpy as np
import pytest

from r2kd_keras import methods
from tests.test_losses import np_dist, np_dkd, np_kd, np_rank, np_value

RNG = np.random.default_rng(0)
ZS = (RNG.normal(size=(16, 10)) * 3).astype("float32")
ZT = (RNG.normal(size=(16, 10)) * 3).astype("float32")
Y = RNG.integers(0, 10, size=16)
ONE_HOT = np.eye(10, dtype="float32")[Y]


def test_one_list_of_names_and_the_recipe_defaults():
    assert methods.METHOD_NAMES == ("r2kd", "kd", "dist", "dkd", "none")
    made = {name: methods.get_method(name) for name in methods.METHOD_NAMES}
    assert [type(m).__name__ for m in made.values()] == [
        "R2KD", "KD", "DIST", "DKD", "CrossEntropyOnly"]
    assert {name: m.ce_weight for name, m in made.items()} == {
        "r2kd": 1.0, "kd": 0.1, "dist": 1.0, "dkd": 1.0, "none": 1.0}
    assert made["kd"].distillation_weight == 0.9
    assert (made["r2kd"].value_weight, made["r2kd"].rank_weight) == (2.0, 2.0)
    assert (made["dist"].beta, made["dist"].gamma) == (2.0, 2.0)
    assert (made["dkd"].alpha, made["dkd"].beta, made["dkd"].temperature) == (1.0, 8.0, 4.0)
    assert made["r2kd"].term_names == ("value_loss", "rank_loss")
    assert made["none"].term_names == () and not made["none"].uses_teacher


@pytest.mark.parametrize(
    "method, expected",
    [
        (methods.R2KD(temperature=2.0, value_weight=3.0, rank_weight=0.5),
         {"value_loss": 3.0 * np_value(ZS, ZT, 2.0), "rank_loss": 0.5 * np_rank(ZS, ZT, 2.0)}),
        (methods.KD(), {"distill_loss": 0.9 * np_kd(ZS, ZT)}),
        (methods.DIST(beta=1.0, gamma=3.0, distillation_weight=2.0),
         {"distill_loss": 2.0 * np_dist(ZS, ZT, beta=1.0, gamma=3.0)}),
        (methods.DKD(beta=6.0, warmup_epochs=0), {"distill_loss": np_dkd(ZS, ZT, Y, beta=6.0)}),
        (methods.CrossEntropyOnly(), {}),
    ],
    ids=["r2kd", "kd", "dist", "dkd", "none"],
)
def test_terms_equal_the_numpy_references(method, expected):
    terms = method.loss_terms(ZS, ZT, ONE_HOT)
    assert tuple(terms) == method.term_names
    for name, value in expected.items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-4, err_msg=name)


def test_dkd_epoch_warmup_equals_mdistillers_factor_at_every_step():
    # mdistiller: min(epoch / W, 1), epoch counted from 1, constant in an epoch.
    # With S = 3 steps per epoch and W = 2: steps 0-2 are epoch 1 (1/2),
    # steps 3.. are epoch 2 and later (1).
    dkd = methods.DKD(warmup_epochs=2)
    factors = [float(dkd.warmup_factor(step, 3)) for step in range(7)]
    np.testing.assert_allclose(factors, [0.5, 0.5, 0.5, 1, 1, 1, 1])
    # A warm-up shrunk to 1.5 epochs: epoch 1 gets 1/1.5.
    shrunk = methods.DKD(warmup_epochs=1.5)
    np.testing.assert_allclose([float(shrunk.warmup_factor(s, 2)) for s in range(4)],
                               [2 / 3, 2 / 3, 1, 1], rtol=1e-6)
    # Steps per epoch not known yet: the first epoch's factor.
    assert float(methods.DKD().warmup_factor(57, 0)) == pytest.approx(1 / 20)
    assert methods.DKD().needs_steps_per_epoch


def test_dkd_step_warmup_is_a_per_step_ramp_meeting_the_epoch_one_at_epoch_ends():
    steps = methods.DKD(warmup_steps=6)  # = 2 epochs of 3 steps
    epochs = methods.DKD(warmup_epochs=2)
    ramp = [float(steps.warmup_factor(s)) for s in range(8)]
    np.testing.assert_allclose(ramp, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1], rtol=1e-6)
    for last_step_of_epoch in (2, 5):
        assert ramp[last_step_of_epoch] == pytest.approx(
            float(epochs.warmup_factor(last_step_of_epoch, 3)))
    assert not steps.needs_steps_per_epoch
    assert float(methods.DKD(warmup_steps=0).warmup_factor(0)) == 1.0
    terms = steps.loss_terms(ZS, ZT, ONE_HOT, step=1)
    np.testing.assert_allclose(float(terms["distill_loss"]), np_dkd(ZS, ZT, Y) / 3, rtol=1e-4)


@pytest.mark.parametrize("name", methods.METHOD_NAMES)
def test_config_and_keras_serialisation_round_trip(name):
    method = methods.get_method(name)
    changed = methods.get_method(method, ce_weight=0.5)
    assert changed.ce_weight == 0.5 and changed is not method
    assert methods.get_method(method) is method
    clone = type(changed).from_config(changed.get_config())
    assert clone == changed and clone.get_config() == changed.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(changed))
    assert type(restored) is type(changed) and restored == changed


def test_get_method_overrides_and_repr():
    method = methods.get_method("dkd", beta=6.0, warmup_steps=100)
    assert (method.beta, method.warmup_steps, method.warmup_epochs) == (6.0, 100, None)
    assert repr(methods.get_method("kd", temperature=2.0)) == (
        "KD(temperature=2.0, distillation_weight=0.9, ce_weight=0.1)")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: methods.get_method("crd"), r"`method` must be one of \('r2kd'.* received: 'crd'"),
        (lambda: methods.get_method(3), r"`method` must be one of .* received: 3"),
        (lambda: methods.get_method("kd", beta=1.0), r"KD takes the arguments .* unknown arguments \['beta'\]"),
        (lambda: methods.R2KD(rank_mode="fuzzy"), "`rank_mode` must be one of .* received: 'fuzzy'"),
        (lambda: methods.R2KD(value_weight=-1), r"`value_weight` must be a number in \[0.0, inf\], received: -1"),
        (lambda: methods.KD(temperature=0), "`temperature` must be a positive number, received: 0"),
        (lambda: methods.DIST(gamma="2"), "`gamma` .* received: '2'"),
        (lambda: methods.DKD(warmup_epochs=5, warmup_steps=10),
         "one of `warmup_epochs` or `warmup_steps`; received warmup_epochs=5 and warmup_steps=10"),
        (lambda: methods.DKD(warmup_steps=-1), "`warmup_steps` .* received: -1"),
        (lambda: methods.CrossEntropyOnly(ce_weight=-0.5), "`ce_weight` .* received: -0.5"),
    ],
)
def test_bad_settings_name_the_argument_and_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
