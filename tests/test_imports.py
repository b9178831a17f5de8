"""`import r2kd_keras` stays light: LiteRT and matplotlib load when used."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module", ["r2kd_keras", "r2kd_keras.train"])
def test_import_does_not_load_litert_or_matplotlib(module):
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('ai_edge_litert', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    assert result.stdout.strip() == "", f"import {module} loaded {result.stdout.strip()}"
