"""The `r2kd-export` command (also `r2kd export`, `python -m r2kd_keras.export`):
a saved `.keras` student to a verified `.tflite` file."""

import argparse
import os

import keras
import numpy as np

from r2kd_keras.export.arguments import INFERENCE_IO_TYPES
from r2kd_keras.export.convert import to_tflite


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="r2kd-export",
        description="Export a saved Keras student (.keras) to a verified "
        ".tflite file for LiteRT, and print the export report.",
    )
    parser.add_argument("model", help="the saved student, a .keras file")
    parser.add_argument("output", help="the .tflite file to write")
    parser.add_argument(
        "--quantize",
        choices=["none", "dynamic", "float16", "int8"],
        default="none",
        help="weight / activation quantization (default: none)",
    )
    parser.add_argument(
        "--representative_data",
        help=".npy array of calibration inputs (required for --quantize int8), "
        "already preprocessed as the model expects",
    )
    parser.add_argument(
        "--verify", help=".npy array of inputs to compare LiteRT with Keras on"
    )
    parser.add_argument(
        "--verify_labels",
        help=".npy array of integer labels for --verify (reports accuracy)",
    )
    parser.add_argument(
        "--inference_io",
        choices=INFERENCE_IO_TYPES,
        default="float32",
        help="dtype of the model's input/output (int8 needs --quantize int8)",
    )
    parser.add_argument(
        "--no_sparsity",
        action="store_true",
        help="never store kernels in the TFLite sparse format",
    )
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--max_samples", type=int, default=500)
    return parser


def _load_array(parser, path, flag):
    if path is None:
        return None
    if not os.path.isfile(path):
        parser.error(f"{flag}: file not found: {path!r}")
    return np.load(path)


def main(argv=None):
    """Command-line entry `r2kd-export MODEL.keras OUT.tflite [options]`.

    Args:
        argv: the arguments (without the program name); `None` reads
            `sys.argv`.

    Returns:
        0 on success (errors exit with status 2 and a message).

    Example:
    >>> main(["student.keras", "student.tflite", "--quantize", "int8",
    ...       "--representative_data", "calib.npy", "--inference_io", "int8"])
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f"MODEL: file not found: {args.model!r}")
    representative = _load_array(
        parser, args.representative_data, "--representative_data"
    )
    verify = _load_array(parser, args.verify, "--verify")
    labels = _load_array(parser, args.verify_labels, "--verify_labels")
    if labels is not None:
        if verify is None:
            parser.error("--verify_labels needs --verify")
        verify = (verify, labels)
    try:
        model = keras.saving.load_model(args.model, compile=False)
        report = to_tflite(
            model,
            args.output,
            quantize=None if args.quantize == "none" else args.quantize,
            representative_data=representative,
            sparsity=not args.no_sparsity,
            verify=verify,
            inference_io=args.inference_io,
            num_threads=args.num_threads,
            max_samples=args.max_samples,
        )
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(report)
    return 0
