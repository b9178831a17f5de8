"""Export a (pruned, distilled) student to a TFLite / LiteRT flatbuffer, verified.

`to_tflite` converts with `tf.lite.TFLiteConverter.from_keras_model`, writes
to a temporary file next to the target, runs that file in
`ai_edge_litert.interpreter.Interpreter` (default XNNPACK delegate), compares
it with Keras, times it, and only then renames it into place. A file that
does not load, allocate and run is never left at the target path.

Why `from_keras_model` (measured in `benchmarks/export.py`): on Keras 3 it
goes through the same `ExportArchive -> SavedModel` path as
`model.export(format="litert")`; both give the same outputs (max abs diff vs
Keras ~3e-6 on resnet8x4) and the same size within 8 bytes. It returns the
flatbuffer in memory, so the write stays atomic, and it keeps to the TFLite
builtin ops (`model.export` also enables `SELECT_TF_OPS`, i.e. TF ops that
the plain LiteRT runtime does not ship). `from_concrete_functions` converts
3-4x faster and is ~150 bytes smaller, but only through the path TensorFlow
logs as deprecated; given the model as `trackable_obj` (the non-deprecated
way) it left the variables unfrozen: the file gave NaN or failed at `invoke`.
"""

import contextlib
import gzip
import io
import os
import statistics
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from r2kd_keras.export import arguments
from r2kd_keras.export.litert import VERIFY_BATCH
from r2kd_keras.export.litert import LiteRTRunner
from r2kd_keras.export.report import ExportReport
from r2kd_keras.pruning import get_sparsity


def to_tflite(
    model,
    path,
    quantize=None,
    representative_data=None,
    sparsity=True,
    verify=None,
    inference_io="float32",
    num_threads=1,
    max_samples=500,
    latency_runs=50,
):
    """Convert a student to a `.tflite` file that is checked to run in LiteRT.

    The model may be a plain `keras.Model`, a student wrapped for pruning
    (stripped with `r2kd_keras.pruning.strip_pruning`), or anything with a
    `.student` model, such as `R2KDDistiller` (its student is exported).

    Args:
        model: the model to export (see above). Its input must have a fixed
            shape apart from the batch dimension.
        path: target file; must end in `.tflite`, its directory must exist
            and be writable. An existing file is replaced only on success.
        quantize: `None` (float32), `"dynamic"` (int8 weights, float
            activations), `"float16"` (float16 weights) or `"int8"` (full
            integer, needs `representative_data`).
        representative_data: calibration inputs for `"int8"`, in the model's
            input range: a numpy array of images, an `(x, y)` tuple of arrays,
            a `tf.data.Dataset` of `x` or `(x, y)` (batched or not), or a
            generator / generator function of those.
        sparsity: if True, store kernels in the TFLite sparse format where
            the resulting file runs under XNNPACK (float32 and float16 do;
            dynamic-range and int8 sparse kernels fail to prepare, so those
            fall back to the dense format, noted in the report).
        verify: inputs to compare LiteRT with Keras on, same forms as
            `representative_data`; with labels, accuracy is reported too.
        inference_io: `"float32"`, or `"int8"` for int8 input and output
            tensors (only with `quantize="int8"`); verification then quantizes
            inputs and dequantizes outputs with the file's scale / zero point.
        num_threads: LiteRT threads for verification and timing.
        max_samples: at most this many images are read from
            `representative_data` and from `verify`.
        latency_runs: number of timed single-image invocations.

    Returns:
        An `ExportReport`.

    Example:
    >>> report = to_tflite(student, "student_int8.tflite", quantize="int8",
    ...                    representative_data=x_train[:300], verify=(x_test, y_test),
    ...                    inference_io="int8")
    >>> print(report)
    """
    arguments.check_options(quantize, representative_data, inference_io)
    arguments.check_positive_ints(
        num_threads=num_threads, max_samples=max_samples, latency_runs=latency_runs
    )
    path = arguments.check_path(path)
    model = arguments.student_of(model)
    input_shape = arguments.fixed_input_shape(model)
    calibration, _ = (
        arguments.collect(representative_data, "representative_data", input_shape, max_samples)
        if quantize == "int8"
        else (None, None)
    )
    verify_x, verify_y = (
        arguments.collect(verify, "verify", input_shape, max_samples)
        if verify is not None
        else (None, None)
    )
    weight_sparsity = _weight_sparsity(model)

    tmp_path = _reserve_temp_file(path)
    try:
        sparse_encoding, notes = _convert_runnable(
            model,
            tmp_path,
            quantize=quantize,
            calibration=calibration,
            inference_io=inference_io,
            sparse=sparsity and weight_sparsity > 0,
            probe=calibration[:1] if calibration is not None else verify_x,
            num_threads=num_threads,
        )
        runner = LiteRTRunner(tmp_path, num_threads)
        comparison = _compare(model, runner, verify_x, verify_y)
        if sparse_encoding:
            latency_ms, dense_latency_ms = _sparse_and_dense_latency(
                model, runner, latency_runs, num_threads,
                quantize=quantize, calibration=calibration, inference_io=inference_io,
            )
        else:
            latency_ms = runner.latency_ms(latency_runs)
            dense_latency_ms = None
        raw = _read(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return ExportReport(
        path=path,
        bytes_raw=len(raw),
        bytes_gzip=len(gzip.compress(raw, compresslevel=9)),
        weight_sparsity=weight_sparsity,
        quantize=quantize or "none",
        sparse_encoding=sparse_encoding,
        inference_io=inference_io,
        input_scale=runner.input_scale,
        input_zero_point=runner.input_zero_point,
        latency_ms=latency_ms,
        num_threads=num_threads,
        notes=tuple(notes),
        dense_latency_ms=dense_latency_ms,
        **comparison,
    )


def _sparse_and_dense_latency(model, runner, runs, num_threads, **options):
    """Latency of the sparse file and of the model stored dense, timed in
    alternating rounds (the machine's load drifts), medians of the rounds."""
    dense_path = _reserve_temp_file(runner.path + ".dense.tflite")
    try:
        _write_converted(model, dense_path, sparse=False, **options)
        dense = LiteRTRunner(dense_path, num_threads)
        rounds = min(5, runs)
        per_round = max(1, runs // rounds)
        sparse_ms, dense_ms = [], []
        for _ in range(rounds):
            sparse_ms.append(runner.latency_ms(per_round))
            dense_ms.append(dense.latency_ms(per_round))
    finally:
        os.remove(dense_path)
    return statistics.median(sparse_ms), statistics.median(dense_ms)


def _weight_sparsity(model):
    try:
        return get_sparsity(model)["total"]
    except ValueError:
        # get_sparsity refuses a model without Conv/Dense kernels: none are zero.
        return 0.0


def _reserve_temp_file(path):
    """Creates the temporary file up front: the writability check that
    `os.access` cannot give (it says yes to root on read-only mounts)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp_path = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as error:
        raise PermissionError(
            f"Cannot write to the directory of `path` {path!r}: {error}"
        ) from error
    os.close(fd)
    # mkstemp creates 0600; the exported model is meant to be shared.
    os.chmod(tmp_path, 0o644)
    return tmp_path


def _convert(model, quantize, calibration, inference_io, sparse):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = [] if quantize is None else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = lambda: (
            [calibration[i : i + 1]] for i in range(len(calibration))
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if inference_io == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    # On Keras 3 the converter saves through keras' ExportArchive, which
    # prints every endpoint signature to stdout.
    # The int8 warning "Statistics for quantized inputs were expected" is
    # about TF1's quantized_input_stats; calibration sets the input range.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        return converter.convert()


def _convert_runnable(model, tmp_path, probe, num_threads, sparse, **options):
    """Converts into `tmp_path` and checks that the file runs in LiteRT.

    The sparse format is tried first when asked for; if it does not convert,
    prepare or run, the dense format is written instead.

    Returns:
        `(sparse_encoding, notes)`.
    """
    notes = []
    if sparse:
        try:
            _write_converted(model, tmp_path, sparse=True, **options)
            LiteRTRunner(tmp_path, num_threads).smoke_test(probe)
            return True, notes
        except (RuntimeError, ValueError) as error:
            notes.append(
                "sparse encoding dropped: LiteRT/XNNPACK cannot run it with "
                f"quantize={options['quantize']!r} "
                f"({str(error).splitlines()[0][:120]})"
            )
    _write_converted(model, tmp_path, sparse=False, **options)
    try:
        LiteRTRunner(tmp_path, num_threads).smoke_test(probe)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(
            "The converted model does not run in LiteRT; nothing was "
            f"written. LiteRT said: {error}"
        ) from error
    return False, notes


def _write_converted(model, tmp_path, **options):
    with open(tmp_path, "wb") as f:
        f.write(_convert(model, **options))


def _compare(model, runner, x, y):
    """LiteRT vs Keras on `x`: the `ExportReport` fields they determine."""
    if x is None:
        return dict(
            num_verify=0,
            max_abs_diff=None,
            top1_agreement=None,
            accuracy_keras=None,
            accuracy_litert=None,
        )
    expected = np.asarray(model.predict(x, batch_size=VERIFY_BATCH, verbose=0))
    got = runner(x).reshape(expected.shape)
    top_expected, top_got = expected.argmax(-1), got.argmax(-1)
    return dict(
        num_verify=len(x),
        max_abs_diff=float(np.max(np.abs(got - expected))),
        top1_agreement=float(np.mean(top_expected == top_got)),
        accuracy_keras=None if y is None else float(np.mean(top_expected == y)),
        accuracy_litert=None if y is None else float(np.mean(top_got == y)),
    )


def _read(path):
    with open(path, "rb") as f:
        return f.read()

