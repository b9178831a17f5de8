"""`python -m r2kd_keras.export MODEL.keras OUT.tflite ...`: the `r2kd-export` command."""

import sys

from r2kd_keras.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
