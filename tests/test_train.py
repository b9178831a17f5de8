"""r2kd_keras.train: the config and its one table of flags (docs/runner.md
generated from it), the lists of names it derives from the library, the
names kept importable, teacher loading, student building, the resume guard
of run_config.json, and one in-process distillation run on 2 replicas (large)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import train
from r2kd_keras.models import get_model


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


def test_plot_curves_writes_a_png(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n"
                        "0,0.5,1.2,0.4,1.4\n1,0.6,1.0,0.5,1.1\n")
    train.plot_curves(str(csv_path), str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.large  # the same path as a subprocess: test_tinyimagenet_mirrored_two_cpu_replicas
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


def test_run_with_2_4_structure_exports_a_2_4_student(tmp_path):
    from tests.test_examples import write_fashion_mnist

    data = write_fashion_mnist(str(tmp_path / "data"), train=128, test=32)
    config = train.TrainConfig(
        dataset="fashion_mnist", data_dir=data, student="resnet8", distillation="none",
        epochs=1, batch_size=16, steps_per_epoch=4, export="dynamic",
        student_sparsity=0.5, prune_structure="2:4",
        output_dir=str(tmp_path / "run"), verbose=0)
    results = train.run(config)  # no teacher: the structure is the student's
    summary = results["students"]["none"]
    assert os.path.getsize(tmp_path / "run" / "student.tflite") > 0
    assert summary["export"]["top1_agreement"] >= 0.9
    # 2:4 zeros weights in place: the network keeps every parameter.
    assert summary["params"] == summary["params_before_pruning"] == get_model(
        "resnet8", 10, (32, 32, 3)).count_params()
    student = train.pruning.finalize(keras.saving.load_model(tmp_path / "run" / "last.keras"))
    groups = [
        np.moveaxis(kernel.numpy(), -2, -1).reshape(-1, 4)
        for layer in student.layers for kernel in train.pruning.prunable_kernels(layer)
        if kernel.shape[-2] % 4 == 0
    ]
    assert len(groups) >= 5
    # Every group of 4 consecutive input weights holds at least 2 zeros.
    assert all(((g == 0).sum(axis=1) >= 2).all() for g in groups)


def test_table_shows_zeros_or_the_share_of_parameters_cut():
    row = {"accuracy": 0.5, "export": None}
    results = {"config": {"student": "keras:MobileNetV3Small", "teacher": "t"},
               "teacher": None, "students": {
                   "r2kd": dict(row, sparsity=0.0, params=405_306,
                                params_before_pruning=1_532_018),
                   "kd": dict(row, sparsity=0.4962, params=1_532_018,
                              params_before_pruning=1_532_018)}}
    lines = train.format_table(results).splitlines()
    # 1 - 405,306 / 1,532,018 = 0.7354: filter pruning made it a smaller network.
    assert "| keras:MobileNetV3Small R2KD | 50.00 | 0.74 cut | - | - |" in lines
    assert "| keras:MobileNetV3Small KD | 50.00 | 0.50 | - | - |" in lines


# ------------------------------------------------------- one table per fact
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docs_flag_list_is_the_generated_table():
    with open(os.path.join(REPO, "docs", "runner.md")) as f:
        text = f.read()
    start = text.index("<!-- flag table: generated by r2kd_keras.train.flag_table() -->\n")
    end = text.index("<!-- end of flag table -->")
    listed = text[start:end].split("\n", 1)[1]
    assert listed == train.flag_table(), (
        "docs/runner.md's flag list is stale; paste the output of "
        "`python -c 'from r2kd_keras import train; print(train.flag_table())'`.")


def test_every_field_has_a_flag_with_the_config_choices():
    import dataclasses

    from absl import flags

    from r2kd_keras import augment, data
    from r2kd_keras.distiller import DISTILLATION_METHODS

    train.define_flags()
    fields = {f.name: f for f in dataclasses.fields(train.TrainConfig)}
    assert set(fields) <= set(flags.FLAGS)
    for name, source in [("dataset", data.dataset_names()),
                         ("augment", augment.AUGMENTER_NAMES),
                         ("distillation", DISTILLATION_METHODS),
                         ("export", tuple(train.EXPORTS)),
                         ("strategy", train.STRATEGIES)]:
        assert tuple(flags.FLAGS[name].parser.enum_values) == tuple(source), name
        assert flags.FLAGS[name].help.endswith(fields[name].metadata["help"])
    assert "augmix" in train.AUGMENTS
    train.TrainConfig(augment="augmix").validate()


def test_every_augmenter_name_builds():
    from r2kd_keras import augment

    for name in augment.AUGMENTER_NAMES:
        built = augment.make_augmenter(name, 10, 32, seed=0)
        assert (built is None) == (name == "none"), name
    with pytest.raises(ValueError, match="augmenter name='cutmax'; use one of none, .*augmix"):
        augment.make_augmenter("cutmax", 10, 32)


def test_a_registered_dataset_is_a_choice_of_the_runner(monkeypatch):
    from r2kd_keras.data import registry

    images = np.zeros((8, 32, 32, 3), np.float32)
    labels = np.arange(8) % 2
    seen = {}

    def load(request):
        seen["request"] = request
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(request.batch_size)
        return ds, ds, "info"

    monkeypatch.setitem(registry._LOADERS, "two_class", (load, "Two classes."))
    config = train.TrainConfig(dataset="two_class", batch_size=4, val_subset=4,
                               data_dir="/d", seed=3).validate()
    train_ds, val_ds, info = train.load_data(config)
    assert info == "info" and len(list(val_ds)) == 1
    assert (seen["request"].data_dir, seen["request"].seed) == ("/d", 3)
    assert "two_class" in train.flag_table()
    with pytest.raises(ValueError, match="dataset='mnist' is not known; use one of "
                                         "fashion_mnist, cifar100"):
        registry.load_dataset("mnist")


def test_names_of_the_single_module_runner_stay_importable():
    from r2kd_keras import callbacks, distribute, optimizers, precision

    for module, names in [
        (optimizers, ["L2SGD", "step_decay", "milestone_epochs", "scaled_learning_rate",
                      "REFERENCE_BATCH", "REFERENCE_EPOCHS"]),
        (distribute, ["make_strategy", "is_chief", "check_batch"]),
        (callbacks, ["StudentCheckpoint", "MetricsCSV", "ScalarSummaries", "Throughput",
                     "TrainingInterrupted"]),
        (precision, ["student_policy"]),
    ]:
        for name in names:
            assert getattr(train, name) is getattr(module, name), name
    assert train.WorkerBackupAndRestore is callbacks.AtomicBackupAndRestore
    for name in ["run", "TrainConfig", "define_flags", "config_from_flags", "main",
                 "load_data", "build_student", "teacher_stage", "export_student",
                 "train_stage", "evaluate", "make_optimizer", "steps_per_epoch_of",
                 "load_teacher", "plot_curves", "format_table", "R2KDDistiller",
                 "pruning", "_logical_cpus"]:
        assert callable(getattr(train, name)) or name == "pruning", name


def test_export_student_finalizes_only_a_model_still_wrapped(monkeypatch):
    import dataclasses

    from r2kd_keras import pruning
    from r2kd_keras.train import stages

    @dataclasses.dataclass
    class Report:
        path: str

    exported, finalized = [], []
    real_finalize = pruning.finalize
    monkeypatch.setattr(pruning, "finalize",
                        lambda model: finalized.append(model) or real_finalize(model))
    monkeypatch.setattr(stages.export_lib, "to_tflite",
                        lambda model, path, **kwargs: exported.append(model) or Report(path))
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    # The runner passes the model it already finalized: exported as it is.
    assert stages.export_student(plain, "dynamic", "s.tflite", None) == {"path": "s.tflite"}
    assert exported == [plain] and finalized == []
    wrapped = pruning.prune_low_magnitude(plain)
    stages.export_student(wrapped, "dynamic", "s.tflite", None)
    assert finalized == [wrapped] and not pruning.pruning_wrappers(exported[-1])


def test_dkd_warmup_follows_the_run_length():
    from r2kd_keras.train import stages

    config = train.TrainConfig(epochs=24)
    # mdistiller's 20 of 240 epochs, at 24 epochs: 20 * 24 / 240.
    assert stages._method_kwargs(config, "dkd", 24)["loss_kwargs"] == {"warmup_epochs": 2.0}
    fixed = train.TrainConfig(dkd_warmup_epochs=5.0)
    assert stages._method_kwargs(fixed, "dkd", 24)["loss_kwargs"] == {"warmup_epochs": 5.0}
    soft = stages._method_kwargs(train.TrainConfig(rank_mode="soft"), "r2kd", 24)
    assert soft["rank_mode"] == "soft" and "loss_kwargs" not in soft


# ------------------------------------------------------------- resume guard
def _prepared(tmp_path, methods=None, **change):
    config = train.TrainConfig(output_dir=str(tmp_path / "run"), **change)
    train.prepare_output_dir(config, methods or {"r2kd": "cutmix"})
    return config


def test_a_run_with_other_settings_is_refused_listing_the_flags(tmp_path):
    config = _prepared(tmp_path, epochs=4)
    with open(os.path.join(config.output_dir, "run_config.json")) as f:
        stored = json.load(f)
    assert stored["settings"]["epochs"] == 4 and "verbose" not in stored["settings"]
    (tmp_path / "run" / "backup").mkdir()  # a run that has started
    (tmp_path / "run" / "teacher.keras").write_bytes(b"")

    message = (r"holds a run with other settings: --epochs: 4 \(stored\) -> 8 \(now\); "
               r"--student: 'resnet8x4' \(stored\) -> 'resnet8' \(now\)\. Run the same "
               r"command as before to resume it, pass --overwrite .* --teacher_weights "
               rf"{tmp_path}/run/teacher.keras")
    with pytest.raises(ValueError, match=message):
        _prepared(tmp_path, epochs=8, student="resnet8")
    with pytest.raises(ValueError, match=r"methods: \{'r2kd': 'cutmix'\} \(stored\)"):
        _prepared(tmp_path, methods={"kd": "none"}, epochs=4)
    # The same settings resume; flags that cannot change results may differ.
    _prepared(tmp_path, epochs=4, verbose=0)

    # --overwrite deletes the run's outputs only, then stores the new settings.
    (tmp_path / "run" / "notes.txt").write_text("mine")
    _prepared(tmp_path, epochs=8, overwrite=True)
    assert sorted(os.listdir(tmp_path / "run")) == ["notes.txt", "run_config.json"]
    with open(os.path.join(config.output_dir, "run_config.json")) as f:
        assert json.load(f)["settings"]["epochs"] == 8


def test_a_run_stored_before_a_setting_existed_resumes_at_its_default(tmp_path):
    config = _prepared(tmp_path, epochs=4)
    path = os.path.join(config.output_dir, "run_config.json")
    with open(path) as f:
        stored = json.load(f)
    del stored["settings"]["label_noise"]  # as written before the field existed
    with open(path, "w") as f:
        json.dump(stored, f)
    (tmp_path / "run" / "backup").mkdir()
    _prepared(tmp_path, epochs=4)  # the new setting at its default: resumes
    with open(path, "w") as f:
        json.dump(stored, f)
    with pytest.raises(ValueError, match=r"--label_noise: 0\.0 \(stored\) -> 0\.2 \(now\)"):
        _prepared(tmp_path, epochs=4, label_noise=0.2)


def test_settings_of_a_run_that_wrote_nothing_are_replaced(tmp_path):
    _prepared(tmp_path, epochs=4)
    config = _prepared(tmp_path, epochs=8)  # nothing to resume: no refusal
    with open(os.path.join(config.output_dir, "run_config.json")) as f:
        assert json.load(f)["settings"]["epochs"] == 8


def test_outputs_without_run_config_are_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("epoch\n0\n")
    with pytest.raises(ValueError, match=r"holds outputs \(metrics.csv\) but no "
                                         "run_config.json"):
        _prepared(tmp_path)
