"""R2KDDistiller: the step against a hand-built reference, distributed
equivalence, labels, validation, serialisation, resume, NaN handling."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import R2KDDistiller
from r2kd_keras import methods
from r2kd_keras import prune_teacher
from r2kd_keras.precision import reduced_precision_copy
from tests.test_losses import np_dkd, np_dist, np_kd, np_rank, np_softmax, np_value

NUM_CLASSES = 5
SHAPE = (8, 8, 3)


def small_cnn(width, seed, batch_norm=False, num_classes=NUM_CLASSES):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(SHAPE)
    h = keras.layers.Conv2D(width, 3, padding="same")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(h))


def flip(images):
    """A deterministic second view, so replicas and one device agree."""
    return images[:, :, ::-1]


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32,) + SHAPE).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=32)
    return x, y


@pytest.fixture(scope="module")
def teacher():
    return small_cnn(16, seed=1, batch_norm=True)


def one_step(strategy, teacher, x, y, lr=0.1, initial_epoch=0, **kwargs):
    with strategy.scope():
        student = small_cnn(4, seed=2)
        distiller = R2KDDistiller(student, teacher, **kwargs)
        distiller.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9),
                          metrics=["accuracy"])
    history = distiller.fit(x, y, batch_size=len(x), epochs=initial_epoch + 1,
                            initial_epoch=initial_epoch, verbose=0, shuffle=False)
    return distiller, {k: v[0] for k, v in history.history.items()}


def np_logits(model, x):
    return np.asarray(model(x, training=False), np.float64)


def np_ce(z, y):
    p = np_softmax(z, 1.0)
    return -np.mean(np.log(p[np.arange(len(y)), y]))


def test_logged_losses_equal_the_formula_computed_independently(batch, teacher):
    x, y = batch
    student0 = small_cnn(4, seed=2)
    pruned = prune_teacher(teacher, 0.1)
    blend = lambda v: 0.7 * np_logits(teacher, v) + 0.3 * np_logits(pruned, v)
    zs, zs_aug = np_logits(student0, x), np_logits(student0, flip(x))
    expected_value = 2 * (np_value(zs, blend(x)) + np_value(zs_aug, blend(flip(x))))
    expected_rank = 2 * (np_rank(zs, blend(x)) + np_rank(zs_aug, blend(flip(x))))
    expected_ce = np_ce(zs, y)

    _, logs = one_step(tf.distribute.get_strategy(), teacher, x, y, augmenter=flip)
    np.testing.assert_allclose(logs["value_loss"], expected_value, rtol=1e-4)
    np.testing.assert_allclose(logs["rank_loss"], expected_rank, rtol=1e-4)
    np.testing.assert_allclose(logs["ce_loss"], expected_ce, rtol=1e-4)
    np.testing.assert_allclose(
        logs["loss"], expected_value + expected_rank + expected_ce, rtol=1e-4
    )


def test_step_applies_sgd_to_the_gradient_of_the_stated_loss(batch, teacher):
    x, y = batch
    lr = 0.05
    student = small_cnn(4, seed=2)
    pruned = prune_teacher(teacher, 0.1)
    target = lambda v: 0.7 * teacher(v, training=False) + 0.3 * pruned(v, training=False)
    from r2kd_keras import losses

    with tf.GradientTape() as tape:
        total = 0.0
        for view in (x, flip(x)):
            z = student(view, training=True)
            total += losses.r2kd_loss(z, target(view))
        total += tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, student(x, training=True), from_logits=True))
    grads = tape.gradient(total, student.trainable_variables)
    expected = [w.numpy() - lr * g.numpy() for w, g in zip(student.trainable_variables, grads)]

    distiller, _ = one_step(tf.distribute.get_strategy(), teacher, x, y, lr=lr, augmenter=flip)
    for got, want in zip(distiller.student.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["r2kd", "kd", "dist", "dkd", "none"])
def test_mirrored_step_equals_one_device_step_with_the_same_global_batch(
    batch, teacher, method, mirrored_strategy
):
    x, y = batch
    kwargs = {"augmenter": flip, "distillation": method}
    if method == "r2kd":
        kwargs["rank_mode"] = "soft"  # so the rank term moves the weights too
    if method == "dkd":
        # Epoch 1 of a 1-epoch warm-up: the DKD term at full strength.
        kwargs.update(loss_kwargs={"warmup_epochs": 1}, initial_epoch=1)
    single, single_logs = one_step(tf.distribute.get_strategy(), teacher, x, y, **kwargs)
    mirrored, mirrored_logs = one_step(mirrored_strategy, teacher, x, y, **kwargs)
    for a, b in zip(single.student.get_weights(), mirrored.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for key, value in single_logs.items():
        np.testing.assert_allclose(mirrored_logs[key], value, rtol=1e-4, err_msg=key)
    moved = [np.abs(a - b).max() for a, b in
             zip(single.student.get_weights(), small_cnn(4, seed=2).get_weights())]
    assert max(moved) > 1e-4


def test_mirrored_column_term_sees_the_global_batch(batch, teacher, mirrored_strategy):
    # Each replica holds 16 of the 32 samples; the per-class term over all 32
    # differs from the mean of the two halves' terms, which is what a
    # distiller that did not gather logits would log.
    x, y = batch
    tau = 0.5
    student = small_cnn(4, seed=2)
    zs, zt = np_logits(student, x), np_logits(teacher, x)
    global_value = 2 * np_value(zs, zt, tau)
    per_replica_value = np.mean(
        [2 * np_value(zs[s], zt[s], tau) for s in (slice(0, 16), slice(16, 32))]
    )
    # At least 10x the tolerance of the check below, so it can tell them apart.
    assert abs(global_value - per_replica_value) > 1e-3 * global_value
    _, logs = one_step(
        mirrored_strategy, teacher, x, y, teacher_prune_rate=0.0, temperature=tau,
    )
    np.testing.assert_allclose(logs["value_loss"], global_value, rtol=1e-4)


def test_baseline_losses_are_logged_with_recipe_weights(batch, teacher):
    x, y = batch
    student0 = small_cnn(4, seed=2)
    zs, zt = np_logits(student0, x), np_logits(teacher, x)
    expected = {
        "kd": (0.1 * np_ce(zs, y), 0.9 * np_kd(zs, zt)),
        "dist": (np_ce(zs, y), np_dist(zs, zt)),
        # Warm-up factor min(epoch / 20, 1), epochs counted from 1 (mdistiller).
        "dkd": (np_ce(zs, y), np_dkd(zs, zt, y) / 20),
    }
    for method, (ce, distill) in expected.items():
        _, logs = one_step(tf.distribute.get_strategy(), teacher, x, y,
                           distillation=method, teacher_prune_rate=0.0)
        np.testing.assert_allclose(logs["ce_loss"], ce, rtol=1e-4, err_msg=method)
        np.testing.assert_allclose(logs["distill_loss"], distill, rtol=1e-4, atol=1e-7,
                                   err_msg=method)


def test_dkd_warmup_follows_the_epoch(batch, teacher):
    x, y = batch
    student = small_cnn(4, seed=2)
    distiller = R2KDDistiller(student, teacher, distillation="dkd",
                              teacher_prune_rate=0.0, loss_kwargs={"warmup_epochs": 4})
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    history = distiller.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False)
    zs, zt = np_logits(student, x), np_logits(teacher, x)
    full = np_dkd(zs, zt, y)
    np.testing.assert_allclose(history.history["distill_loss"],
                               [full / 4, full / 2, 3 * full / 4],
                               rtol=1e-4, atol=1e-7)


def test_sparse_and_one_hot_labels_give_the_same_step(batch, teacher):
    x, y = batch
    sparse, sparse_logs = one_step(tf.distribute.get_strategy(), teacher, x, y)
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[y]
    dense, dense_logs = one_step(tf.distribute.get_strategy(), teacher, x, one_hot)
    for a, b in zip(sparse.student.get_weights(), dense.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert sparse_logs["accuracy"] == pytest.approx(dense_logs["accuracy"])


def test_fit_evaluate_predict_on_a_tf_data_pipeline(batch, teacher):
    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).prefetch(2)
    student = small_cnn(4, seed=2)
    distiller = R2KDDistiller(student, teacher, augmenter=keras.layers.RandomFlip(seed=1))
    distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = distiller.fit(ds, validation_data=ds, epochs=2, verbose=0)
    # Keras's "shuffle=True ... will be ignored" warning is not raised.
    assert not [w for w in caught if "shuffle" in str(w.message)]
    assert set(history.history) >= {
        "loss", "ce_loss", "value_loss", "rank_loss", "accuracy",
        "val_loss", "val_ce_loss", "val_value_loss", "val_accuracy",
    }
    assert history.history["loss"][1] < history.history["loss"][0]
    predictions = distiller.predict(x, verbose=0)
    np.testing.assert_allclose(predictions, student.predict(x, verbose=0), rtol=1e-5)
    results = distiller.evaluate(ds, return_dict=True, verbose=0)
    accuracy = np.mean(np.argmax(predictions, -1) == y)
    assert results["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_keras_image_layers_get_the_dict_and_mixed_labels(batch, teacher):
    # With distillation="none", CE also covers A(x) with the layer's labels.
    x, y = batch
    mixup = keras.layers.MixUp(alpha=0.2, seed=3)
    _, logs = one_step(tf.distribute.get_strategy(), None, x, y,
                       distillation="none", augmenter=mixup)
    student0 = small_cnn(4, seed=2)
    assert logs["ce_loss"] > np_ce(np_logits(student0, x), y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"teacher": "big"}, "`teacher` must be a keras.Model, received: str"),
        ({"teacher": small_cnn(8, 3, num_classes=7)},
         r"outputs differ: student outputs shape \(None, 5\).*\(None, 7\)"),
        ({"teacher_weight": 1.5}, r"`teacher_weight` must be a number in \[0.0, 1.0\], received: 1.5"),
        ({"teacher_prune_rate": 1.0}, r"`teacher_prune_rate` .*\[0.0, 1.0\), received: 1.0"),
        ({"value_weight": -1}, "`value_weight` .* received: -1"),
        ({"distillation": "crd"}, "`distillation` must be one of .* received: 'crd'"),
        ({"temperature": 0}, "`temperature` must be a positive number, received: 0"),
        ({"rank_mode": "fuzzy"}, "`rank_mode` must be one of .* received: 'fuzzy'"),
        ({"teacher": None}, "`teacher` is None"),
        ({"teacher_dtype": "int8"}, "`teacher_dtype` must be one of .* received: 'int8'"),
    ],
)
def test_construction_errors_name_the_argument_and_value(teacher, kwargs, match):
    arguments = {"student": small_cnn(4, 2), "teacher": teacher, **kwargs}
    with pytest.raises(ValueError, match=match):
        R2KDDistiller(**arguments)


def test_unbuilt_teacher_is_refused():
    unbuilt = keras.Sequential([keras.layers.Dense(NUM_CLASSES)], name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt' is not built"):
        R2KDDistiller(small_cnn(4, 2), unbuilt)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.full((32,), 7), r"\[0, 5\).*label >= 5.*shape \(32,\)"),
        (np.full((32,), -1), r"negative label.*shape \(32,\)"),
        (np.zeros((32, 3), "float32"), r"received labels of shape \(32, 3\)"),
    ],
)
def test_bad_labels_raise_a_message_with_the_shape(batch, teacher, labels, match):
    x, _ = batch
    distiller = R2KDDistiller(small_cnn(4, 2), teacher)
    distiller.compile(optimizer="sgd")
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=match):
        distiller.fit(x, labels, batch_size=32, epochs=1, verbose=0)


def test_a_student_cloned_from_a_frozen_teacher_is_refused(batch, teacher):
    # The trap of fine-tuning several students from one model: the first
    # distiller freezes it, and clones of it are frozen too.
    x, y = batch
    first = small_cnn(4, 2)
    R2KDDistiller(small_cnn(4, 2), first)
    assert not first.trainable
    clone = keras.models.clone_model(first)
    distiller = R2KDDistiller(clone, teacher)
    distiller.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"has no trainable weights.*layer.trainable = True"):
        distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for layer in clone.layers:
        layer.trainable = True
    before = [w.copy() for w in clone.get_weights()]
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert any(np.any(b != a) for b, a in zip(before, clone.get_weights()))


def test_one_nan_pixel_stops_training_with_a_clear_error(batch, teacher):
    # One NaN pixel: on AVX-512 hosts oneDNN's ReLU/max-pool turn it into a
    # number, so the loss stays finite and only the input check catches it.
    x, y = batch
    x = x.copy()
    x[0, 0, 0, 0] = np.nan
    distiller = R2KDDistiller(small_cnn(4, 2), teacher)
    distiller.compile(optimizer="sgd")
    with pytest.raises(tf.errors.InvalidArgumentError, match="the images are not finite"):
        distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_config_round_trip_and_saving(tmp_path, batch, teacher):
    x, y = batch
    distiller, _ = one_step(tf.distribute.get_strategy(), teacher, x, y,
                            distillation="dkd", temperature=2.0, teacher_weight=0.6,
                            loss_kwargs={"beta": 6.0})
    models = ("student", "teacher", "pruned_teacher")
    settings = lambda d: {k: v for k, v in d.get_config().items() if k not in models}
    clone = R2KDDistiller.from_config(distiller.get_config())
    assert settings(clone) == settings(distiller)
    assert clone.loss_kwargs == {"beta": 6.0} and clone.teacher_weight == 0.6

    student_path = os.path.join(tmp_path, "student.keras")
    distiller.student.save(student_path)
    reloaded = keras.saving.load_model(student_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0),
                               distiller.predict(x, verbose=0), rtol=1e-6)

    distiller_path = os.path.join(tmp_path, "distiller.keras")
    distiller.save(distiller_path)
    restored = keras.saving.load_model(distiller_path)
    assert isinstance(restored, R2KDDistiller) and settings(restored) == settings(distiller)
    for a, b in zip(distiller.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_teachers_stay_frozen_and_in_inference_mode(batch, teacher):
    x, y = batch
    before = [w.copy() for w in teacher.get_weights()]
    distiller, _ = one_step(tf.distribute.get_strategy(), teacher, x, y, augmenter=flip)
    pruned_before = prune_teacher(teacher, 0.1).get_weights()
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # BatchNorm moving stats included
    for a, b in zip(pruned_before, distiller.pruned_teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_reference_mode_runs_the_pruned_teacher_in_training_mode(batch, teacher):
    x, y = batch
    distiller, logs = one_step(tf.distribute.get_strategy(), teacher, x, y,
                               augmenter=flip, pruned_teacher_training=True)
    fresh = prune_teacher(teacher, 0.1)
    moving = lambda m: [w.numpy() for w in m.non_trainable_weights if "moving" in w.path]
    changed = [np.abs(a - b).max() for a, b in
               zip(moving(fresh), moving(distiller.pruned_teacher))]
    assert changed and min(changed) > 0  # moving averages were updated
    # Its targets used batch statistics, so the value term differs from the
    # inference-mode default on the same batch.
    _, default_logs = one_step(tf.distribute.get_strategy(), teacher, x, y, augmenter=flip)
    assert abs(logs["value_loss"] - default_logs["value_loss"]) > 1e-4
    for a, b in zip(fresh.trainable_weights, distiller.pruned_teacher.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # kernels not trained


def test_bfloat16_teacher_targets_stay_close_to_float32(batch, teacher):
    x, _ = batch
    fast = reduced_precision_copy(teacher, "bfloat16")
    exact = np_logits(teacher, x)
    approx = np.asarray(fast(x, training=False))
    assert approx.dtype == np.float32 or fast.outputs[0].dtype == "float32"
    assert np.abs(approx - exact).max() < 0.05
    assert np.mean(approx.argmax(-1) == exact.argmax(-1)) >= 0.9
    conv = next(l for l in fast.layers if isinstance(l, keras.layers.Conv2D))
    assert conv.compute_dtype == "bfloat16"


def test_backup_and_restore_resumes_a_killed_fit(tmp_path, batch, teacher):
    x, y = batch
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    backup = os.path.join(tmp_path, "backup")

    def make():
        distiller = R2KDDistiller(small_cnn(4, 2), teacher)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        return distiller

    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 10:  # mid epoch 3
                raise KeyboardInterrupt

    reference = make()
    reference.fit(ds, epochs=4, verbose=0)

    interrupted = make()
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(ds, epochs=4, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup), Kill()])
    resumed = make()
    resumed.fit(ds, epochs=4, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert int(resumed.optimizer.iterations.numpy()) == 16
    for a, b in zip(reference.student.get_weights(), resumed.student.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------ method objects
def test_a_method_object_equals_the_legacy_arguments(batch, teacher):
    x, y = batch
    legacy = R2KDDistiller(small_cnn(4, 2), teacher, distillation="dist", temperature=2.0,
                           loss_kwargs={"beta": 1.0}, teacher_prune_rate=0.0)
    assert legacy.method == methods.DIST(temperature=2.0, beta=1.0)
    assert legacy.distillation == "dist" and legacy.loss_kwargs == {"beta": 1.0}
    _, logs = one_step(tf.distribute.get_strategy(), teacher, x, y, teacher_prune_rate=0.0,
                       method=methods.DIST(temperature=2.0, beta=1.0, ce_weight=0.5))
    student0 = small_cnn(4, seed=2)
    zs = np_logits(student0, x)
    expected = np_dist(zs, np_logits(teacher, x), 2.0, beta=1.0)
    np.testing.assert_allclose(logs["distill_loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(logs["ce_loss"], 0.5 * np_ce(zs, y), rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": methods.KD(), "temperature": 2.0},
         r"Give the settings to the method object.*\['temperature'\]"),
        ({"method": "kd", "distillation": "dist"},
         "old name of `method`; give one, received method='kd' and distillation='dist'"),
        ({"method": "crd"}, "`method` must be one of .* received: 'crd'"),
        ({"loss_kwargs": {"gama": 1.0}, "distillation": "dist"}, r"unknown arguments \['gama'\]"),
    ],
)
def test_method_given_twice_or_unknown_is_refused(teacher, kwargs, match):
    with pytest.raises(ValueError, match=match):
        R2KDDistiller(small_cnn(4, 2), teacher, **kwargs)


def test_dkd_warmup_counts_optimizer_steps_as_worked_by_hand(batch, teacher):
    # 32 samples in batches of 16: S = 2 steps per epoch; the student is
    # frozen (lr 0). warmup_epochs=2: steps 0-1 are epoch 1 (factor 1/2),
    # steps 2-3 epoch 2 (factor 1), also when that epoch is a second `fit`
    # (Keras counts its epochs from 0 again). The first fit's dataset has
    # an unknown length, so S is measured over its first epoch.
    x, y = batch
    student0 = small_cnn(4, seed=2)
    zs, zt = np_logits(student0, x), np_logits(teacher, x)
    d0, d1 = np_dkd(zs[:16], zt[:16], y[:16]), np_dkd(zs[16:], zt[16:], y[16:])
    distiller = R2KDDistiller(small_cnn(4, seed=2), teacher, teacher_prune_rate=0.0,
                              method=methods.DKD(warmup_epochs=2))
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    unknown = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).filter(lambda a, b: True)
    assert unknown.cardinality() == tf.data.UNKNOWN_CARDINALITY
    first = distiller.fit(unknown, epochs=1, verbose=0).history["distill_loss"]
    assert float(distiller.steps_per_epoch.numpy()) == 2.0
    second = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0,
                           shuffle=False).history["distill_loss"]
    np.testing.assert_allclose(first + second, [(d0 + d1) / 4, (d0 + d1) / 2], rtol=1e-4)


# ------------------------------------------------------------------- labels
@pytest.mark.parametrize(
    "distributed", [False, pytest.param(True, marks=pytest.mark.large)],
    ids=["one_device", "mirrored"])
def test_labels_may_change_form_between_calls(batch, teacher, distributed, mirrored_strategy):
    # Used to fail in the compiled accuracy ("Dimensions must be equal").
    x, y = batch
    one_hot = np.eye(NUM_CLASSES, dtype="float32")[y]
    strategy = mirrored_strategy if distributed else tf.distribute.get_strategy()
    with strategy.scope():
        distiller = R2KDDistiller(small_cnn(4, 2), teacher, teacher_prune_rate=0.0)
        distiller.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"])
    expected = np.mean(np.argmax(np_logits(distiller.student, x), -1) == y)
    first, then = (one_hot, y) if distributed else (y, one_hot)
    history = distiller.fit(x, first, batch_size=32, epochs=1, verbose=0)
    assert history.history["accuracy"][0] == pytest.approx(expected)
    history = distiller.fit(x, then, batch_size=32, epochs=1, verbose=0)
    assert history.history["accuracy"][0] == pytest.approx(expected)


# ----------------------------------------------------------------- numerics
def _with_last_bias(model, bias):
    weights = model.get_weights()
    weights[-1] = np.asarray(bias, "float32")
    model.set_weights(weights)
    return model


@pytest.mark.parametrize(
    "fault, match",
    [
        ("images", "R2KDDistiller: the images are not finite"),
        ("teacher", "R2KDDistiller: the logits of the teacher are not finite"),
        ("student", "R2KDDistiller: the logits of the student are not finite"),
        ("loss", r"loss is NaN or Inf \(only the loss: its inputs are finite\)"),
    ],
)
def test_not_finite_loss_names_what_was_not_finite(batch, teacher, fault, match):
    x, y = batch
    x = x.copy()
    student = small_cnn(4, 2)
    if fault == "images":
        x[3, 0, 0, 0] = np.inf
    elif fault == "teacher":
        teacher = _with_last_bias(small_cnn(16, 1), [np.nan] + [0.0] * (NUM_CLASSES - 1))
    elif fault == "student":
        _with_last_bias(student, [np.nan] + [0.0] * (NUM_CLASSES - 1))
    else:
        # Finite logits 6e38 apart: log-softmax overflows, CE is +inf.
        _with_last_bias(student, [3e38, -3e38] + [0.0] * (NUM_CLASSES - 2))
        y = np.ones_like(y)
    distiller = R2KDDistiller(student, teacher, teacher_prune_rate=0.0)
    # Eager but for one case, to save tracing time; the graph path picks the
    # message with the same ops.
    distiller.compile(optimizer="sgd", run_eagerly=fault != "images")
    with pytest.raises(tf.errors.InvalidArgumentError, match=match) as raised:
        distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert "Lower the learning rate or check the data" in str(raised.value)
    assert "BackupAndRestore" in str(raised.value)


# ---------------------------------------------------------- probabilities
def mobilenet(**kwargs):
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10, **kwargs)


def test_a_softmax_model_is_refused_unless_allowed():
    softmax, logits = mobilenet(), mobilenet(classifier_activation=None)
    advice = r"classifier_activation=None.*remove its final activation.*allow_probabilities=True"
    with pytest.raises(ValueError, match=(
            r"The teacher 'MobileNetV3Small' outputs probabilities, not logits "
            r"\(its final layer 'predictions' applies softmax\)\. .*" + advice)):
        R2KDDistiller(logits, softmax, teacher_prune_rate=0.0)
    with pytest.raises(ValueError, match="The student 'MobileNetV3Small' outputs probabilities"):
        R2KDDistiller(softmax, logits, teacher_prune_rate=0.0)
    sigmoid = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    with pytest.raises(ValueError, match="'dense.*' applies sigmoid"):
        R2KDDistiller(sigmoid, None, method="none")
    assert R2KDDistiller(logits, softmax, teacher_prune_rate=0.0, allow_probabilities=True)
    assert R2KDDistiller(mobilenet(classifier_activation=None), logits, teacher_prune_rate=0.0)


class _HiddenSoftmax(keras.layers.Layer):
    """A softmax the construction check cannot see."""

    def call(self, logits):
        return keras.ops.softmax(logits)


def test_probabilities_on_the_first_batch_are_refused_unless_allowed(batch, teacher):
    x, y = batch
    inputs = keras.Input(SHAPE)
    probabilities = keras.Model(inputs, _HiddenSoftmax()(teacher(inputs)))
    distiller = R2KDDistiller(small_cnn(4, 2), probabilities, teacher_prune_rate=0.0)
    # Eager: the same assertion without tracing; fit maps it to the ValueError.
    distiller.compile(optimizer="sgd", run_eagerly=True)
    with pytest.raises(ValueError, match=(
            r"The teacher outputs probabilities, not logits \(on the first batch, every row "
            r"is in \[0, 1\] and sums to 1\).*allow_probabilities=True")):
        distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    allowed = R2KDDistiller(small_cnn(4, 2), probabilities, teacher_prune_rate=0.0,
                            allow_probabilities=True)
    allowed.compile(optimizer="sgd", run_eagerly=True)
    assert np.isfinite(allowed.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"][0])


def test_a_method_object_survives_the_config_round_trip(teacher):
    method = methods.DKD(beta=6.0, warmup_steps=40, ce_weight=0.5)
    distiller = R2KDDistiller(small_cnn(4, 2), teacher, method=method, teacher_prune_rate=0.0)
    config = distiller.get_config()
    assert not {"distillation", "temperature", "loss_kwargs"} & set(config)
    clone = R2KDDistiller.from_config(config)
    assert clone.method == method and clone.method is not method
