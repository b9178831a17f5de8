"""`import r2kd_keras` stays light: LiteRT and matplotlib load when used.

TensorFlow itself may import matplotlib (Keras's plotting utilities do when it
is installed), so the test counts only what the package adds on top of
`import tensorflow, keras`.
"""

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_importing_then_computing_prints_no_native_log_lines():
    # TensorFlow prints native lines (absl format: "E0000 00:00:... file.cc:52]")
    # when it first probes the devices, e.g. "failed call to cuInit" where the
    # CUDA libraries are installed without a GPU; the package keeps them aside.
    code = ("import r2kd_keras, tensorflow as tf\n"
            "tf.config.set_logical_device_configuration(\n"
            "    tf.config.list_physical_devices('CPU')[0],\n"
            "    [tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "print(int(tf.constant(1) + 1), len(tf.config.list_logical_devices('CPU')))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(env, PYTHONPATH=REPO), timeout=120, check=True)
    # The runtime is still unconfigured after the import: 2 logical devices.
    assert result.stdout.split() == ["2", "2"]
    native = [line for line in result.stderr.splitlines()
              if re.match(r"[IWEF]\d{4} \d\d:\d\d:", line)]
    assert native == []
    assert "rebuild TensorFlow" not in result.stderr


@pytest.mark.parametrize("module", ["r2kd_keras", "r2kd_keras.train"])
def test_import_does_not_load_litert_or_matplotlib(module):
    code = (
        "import sys\n"
        "import keras, tensorflow\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "added = set(sys.modules) - before\n"
        "heavy = sorted(m for m in ('ai_edge_litert', 'matplotlib') if m in added)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    line = [l for l in result.stdout.splitlines() if l.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", f"import {module} loaded {line[6:]}"


@pytest.mark.parametrize(
    "module, names",
    [
        ("r2kd_keras.export", ["to_tflite", "ExportReport", "LiteRTRunner", "main",
                               "QUANTIZE_MODES", "INFERENCE_IO_TYPES"]),
        ("r2kd_keras.models.torch_checkpoint", ["load_torch_checkpoint", "read_torch_checkpoint",
                                                "TorchCheckpointReport", "TorchCheckpointError",
                                                "UnsafeCheckpointError"]),
        ("r2kd_keras.models", ["load_torch_checkpoint"]),
    ],
)
def test_public_names_keep_their_import_paths(module, names):
    # The modules became packages; what users and docs import stays where it was.
    imported = __import__(module, fromlist=names)
    for name in names:
        assert getattr(imported, name) is not None, f"{module}.{name}"


def test_split_modules_keep_their_old_import_paths():
    from r2kd_keras import augment
    from r2kd_keras import autoaugment
    from r2kd_keras import distiller
    from r2kd_keras import methods
    from r2kd_keras import precision
    from r2kd_keras.augment import autoaugment as augment_autoaugment
    from r2kd_keras.augment import cutmix
    from r2kd_keras.augment import cutout
    from r2kd_keras.augment import factory
    from r2kd_keras.augment import second_view
    from r2kd_keras.pruning import filter_wrapper
    from r2kd_keras.pruning import filters
    from r2kd_keras.pruning import shrinking

    for name in ("OPS", "POLICIES", "AutoAugment", "apply_op", "magnitude"):
        assert getattr(autoaugment, name) is getattr(augment_autoaugment, name), name
    assert augment.AutoAugment is augment_autoaugment.AutoAugment
    assert augment.SecondView is second_view.SecondView
    assert augment.Cutout is cutout.Cutout
    assert (augment.ReferenceCutMix, augment.CutMixPick) == (cutmix.ReferenceCutMix,
                                                             cutmix.CutMixPick)
    assert augment.make_augmenter is factory.make_augmenter
    assert augment.AUGMENTER_NAMES is factory.AUGMENTER_NAMES
    assert filters.PruneFilters is filter_wrapper.PruneFilters
    assert (filters.shrink, filters.finalize) == (shrinking.shrink, shrinking.finalize)
    for name in ("TEACHER_DTYPES", "resolve_teacher_dtype", "reduced_precision_copy"):
        assert getattr(distiller, name) is getattr(precision, name), name
    assert distiller.DISTILLATION_METHODS is methods.METHOD_NAMES
