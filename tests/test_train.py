"""r2kd_keras.train: the recipe's learning-rate rules and optimizer against
hand formulas (PyTorch SGD and MultiStepLR), strategies and their errors,
teacher loading, and one in-process distillation stage on 2 replicas."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import train
from r2kd_keras.models import get_model


# ------------------------------------------------------------ learning rate
def test_linear_scaling_rule():
    assert train.scaled_learning_rate(0.05, 64) == pytest.approx(0.05)
    assert train.scaled_learning_rate(0.05, 256) == pytest.approx(0.2)
    assert train.scaled_learning_rate(0.01, 32) == pytest.approx(0.005)


@pytest.mark.parametrize("epochs, expected", [
    (240, [150, 180, 210]),  # the reference
    (24, [15, 18, 21]),
    (4, [2, 3, 4]),  # 2.5 -> 2 (round half to even), 3.0, 3.5 -> 4
    (1, [1, 1, 1]),  # never before the second epoch
])
def test_milestones_scale_with_epochs(epochs, expected):
    assert train.milestone_epochs(epochs) == expected


def _multistep_lr(base, epoch, milestones, gamma=0.1):
    # torch.optim.lr_scheduler.MultiStepLR stepped once per epoch.
    return base * gamma ** sum(epoch >= m for m in milestones)


def test_step_decay_matches_multistep_lr_per_step():
    steps_per_epoch = 7
    schedule = train.step_decay(0.05, 240, steps_per_epoch)
    for epoch in (0, 149, 150, 179, 180, 209, 210, 239):
        for step_in_epoch in (0, steps_per_epoch - 1):
            iteration = epoch * steps_per_epoch + step_in_epoch
            expected = _multistep_lr(0.05, epoch, (150, 180, 210))
            assert float(schedule(iteration)) == pytest.approx(expected, rel=1e-6), (
                epoch, step_in_epoch)


# ---------------------------------------------------------------- optimizer
def _torch_sgd(w, grads, lr, momentum, weight_decay):
    # torch.optim.SGD (dampening 0, no nesterov): d = g + wd * w;
    # buf = d on the first step, momentum * buf + d after; w -= lr * buf.
    buf = None
    for g in grads:
        d = g + weight_decay * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def _keras_steps(optimizer, w0, grads):
    variable = keras.Variable(w0)
    for g in grads:
        optimizer.apply([tf.constant(g)], [variable])
    return keras.ops.convert_to_numpy(variable)


def test_l2sgd_is_pytorch_sgd_and_keras_weight_decay_is_not():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5,)).astype("float32")
    grads = [rng.normal(size=(5,)).astype("float32") for _ in range(3)]
    expected = _torch_sgd(w0, grads, lr=0.1, momentum=0.9, weight_decay=0.05)

    ours = _keras_steps(train.L2SGD(0.1, momentum=0.9, l2=0.05), w0, grads)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)

    # Keras's `weight_decay` is decoupled: w <- w - lr * wd * w, then the
    # momentum step on the raw gradient (its velocity starts at zero).
    w, velocity = w0.copy(), np.zeros_like(w0)
    for g in grads:
        w = w - 0.1 * 0.05 * w
        velocity = 0.9 * velocity - 0.1 * g
        w = w + velocity
    keras_decoupled = _keras_steps(
        keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.05), w0, grads)
    np.testing.assert_allclose(keras_decoupled, w, rtol=1e-5)
    assert np.abs(keras_decoupled - expected).max() > 1e-3


def test_l2sgd_config_round_trip():
    optimizer = train.L2SGD(train.step_decay(0.1, 10, 5), momentum=0.8, l2=1e-3)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, train.L2SGD)
    assert (clone.l2, clone.momentum) == (1e-3, 0.8)


def test_make_optimizer_scales_lr_with_the_global_batch():
    config = train.TrainConfig(lr=0.05, batch_size=256, epochs=240)
    optimizer = train.make_optimizer(config, steps_per_epoch=10)
    assert float(optimizer.learning_rate) == pytest.approx(0.2)
    assert optimizer.l2 == pytest.approx(5e-4) and optimizer.momentum == 0.9


def _one_step_weights(strategy, x, y):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        runner = train.R2KDDistiller(model, None, distillation="none")
        runner.compile(optimizer=train.L2SGD(0.5, momentum=0.9, l2=0.1),
                       metrics=["accuracy"], jit_compile=False)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    runner.fit(ds, epochs=2, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


def test_l2_term_counts_once_under_mirrored_strategy(mirrored_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")
    single = _one_step_weights(tf.distribute.get_strategy(), x, y)
    mirrored = _one_step_weights(mirrored_strategy, x, y)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- strategies
def test_default_strategy_and_batch_checks(mirrored_strategy):
    assert train.make_strategy("default").num_replicas_in_sync == 1
    assert train.check_batch(64, mirrored_strategy) == 32
    with pytest.raises(ValueError, match=r"batch_size=7 .* not divisible by the 2 replicas"):
        train.check_batch(7, mirrored_strategy)
    assert train.is_chief(mirrored_strategy)


def test_strategy_errors(monkeypatch):
    with pytest.raises(ValueError, match="strategy='gpu' is not known"):
        train.make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        train.make_strategy("multiworker")


def test_logical_cpus_reuses_initialised_devices():
    # conftest already made 2 logical CPUs; asking for 3 afterwards cannot work.
    assert len(train._logical_cpus(2)) == 2
    with pytest.raises(ValueError, match="cpu_replicas=3 needs 3 logical CPU"):
        train._logical_cpus(3)


# ------------------------------------------------------------------- config
@pytest.mark.parametrize("change, message", [
    ({"student": "resnet9"}, "student='resnet9' is not a model of the zoo"),
    ({"teacher": "ResNet56"}, "teacher='ResNet56' is not a model of the zoo"),
    ({"dataset": "mnist"}, "dataset='mnist' is not known"),
    ({"strategy": "horovod"}, "strategy='horovod' is not known"),
    ({"student_sparsity": 1.0}, r"student_sparsity=1.0 must be in \[0, 1\)"),
    ({"batch_size": 0}, "batch_size=0 must be a positive int"),
])
def test_config_validation(change, message):
    with pytest.raises(ValueError, match=message):
        train.TrainConfig(**change).validate()


def test_missing_teacher_weights_file(tmp_path):
    missing = str(tmp_path / "t.keras")
    with pytest.raises(FileNotFoundError, match="teacher_weights=.*does not exist"):
        train.TrainConfig(teacher_weights=missing).validate()


# ------------------------------------------------------------------ teacher
@pytest.fixture(scope="module")
def saved_teacher(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("teacher") / "resnet8.keras")
    model = get_model("resnet8", 10, (32, 32, 3))
    model.save(path)
    return path, model


def test_load_teacher_restores_the_weights(saved_teacher):
    path, model = saved_teacher
    loaded = train.load_teacher(path, "resnet8", 10, (32, 32, 3))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, classes", [("resnet8", 100), ("resnet14", 10)])
def test_load_teacher_that_does_not_fit(saved_teacher, name, classes):
    path, _ = saved_teacher
    with pytest.raises(ValueError, match=rf"do not fit teacher='{name}' with {classes} classes"):
        train.load_teacher(path, name, classes, (32, 32, 3))


# -------------------------------------------------------------- build parts
def test_student_pruning_schedules_reach_the_target():
    config = train.TrainConfig(student="resnet8", student_sparsity=0.6,
                               prune_schedule="polynomial")
    student = train.build_student(config, 10, (32, 32, 3), total_steps=40)
    wrappers = train.pruning.pruning_wrappers(student)
    assert wrappers
    schedule = wrappers[0].pruning_schedule
    # Cubic decay ends at 75% of the 40 steps (frequency 4 divides 28 -> 28).
    assert float(schedule(28)[1]) == pytest.approx(0.6)
    assert float(schedule(0)[1]) == pytest.approx(0.0)


def test_mixed_precision_student_keeps_float32_elsewhere():
    config = train.TrainConfig(student="resnet8", mixed_precision=True)
    student = train.build_student(config, 10, (32, 32, 3), total_steps=10)
    assert student.layers[1].dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_scalar_summaries_write_tensorboard_scalars(tmp_path):
    callback = train.ScalarSummaries(str(tmp_path))
    callback.on_epoch_end(0, {"loss": 1.5, "val_accuracy": 0.25})
    callback.on_train_end()
    seen = {}
    for run in ("train", "validation"):
        (event_file,) = os.listdir(tmp_path / run)
        for record in tf.data.TFRecordDataset(str(tmp_path / run / event_file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                seen[(run, value.tag)] = float(tf.make_ndarray(value.tensor))
    assert seen == {("train", "epoch_loss"): 1.5,
                    ("validation", "epoch_accuracy"): 0.25}


def test_plot_curves_writes_a_png(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                        "0,0.5,1.2,0.4,1.4\n1,0.6,1.0,0.5,1.1\n")
    train.plot_curves(str(csv_path), str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_in_process_on_two_replicas(mirrored_strategy, tmp_path):
    from tests.test_examples import write_fashion_mnist

    data = write_fashion_mnist(str(tmp_path / "data"), train=128, test=32)
    config = train.TrainConfig(
        dataset="fashion_mnist", data_dir=data, teacher="resnet8", student="resnet8",
        teacher_epochs=1, epochs=2, batch_size=16, steps_per_epoch=3, export="none",
        output_dir=str(tmp_path / "run"), verbose=0)
    results = train.run(config, strategy=mirrored_strategy)
    assert results["replicas"] == 2
    assert results["students"]["r2kd"]["steps"] == 6
    with open(tmp_path / "run" / "results.json") as f:
        assert json.load(f)["students"]["r2kd"]["steps"] == 6
    with open(tmp_path / "run" / "best.json") as f:
        best = json.load(f)
    assert best["epoch"] in (0, 1)
