"""Export a (pruned, distilled) student to a TFLite / LiteRT flatbuffer, verified.

- `to_tflite(model, path, ...)` (in `convert`): converts, runs the file in
  LiteRT, compares it with Keras, times it, and only then puts it at `path`;
  the checks of its arguments and inputs are in `arguments`.
- `ExportReport` (in `report`): what was written and how it behaves.
- `LiteRTRunner` (in `litert`): a `.tflite` file run in LiteRT, float in and
  float out; LiteRT itself is imported only when a runner is made.
- `main` (in `cli`): the `r2kd-export` command, also
  `python -m r2kd_keras.export`.

Example:
>>> from r2kd_keras import export
>>> report = export.to_tflite(student, "student.tflite", verify=x_test)
>>> print(report)
"""

from r2kd_keras.export.arguments import INFERENCE_IO_TYPES
from r2kd_keras.export.arguments import QUANTIZE_MODES
from r2kd_keras.export.cli import main
from r2kd_keras.export.convert import to_tflite
from r2kd_keras.export.litert import LiteRTRunner
from r2kd_keras.export.report import ExportReport

__all__ = [
    "INFERENCE_IO_TYPES",
    "QUANTIZE_MODES",
    "ExportReport",
    "LiteRTRunner",
    "main",
    "to_tflite",
]
