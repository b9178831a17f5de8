"""`import r2kd_keras` stays light: LiteRT and matplotlib load when used.

TensorFlow itself may import matplotlib (Keras's plotting utilities do when it
is installed), so the test counts only what the package adds on top of
`import tensorflow, keras`.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
