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

The command-line entry `r2kd-export` (also `python -m r2kd_keras.export`)
exports a saved `.keras` student.
"""

import argparse
import contextlib
import dataclasses
import gzip
import io
import os
import statistics
import sys
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from r2kd_keras import labels as labels_lib
from r2kd_keras.pruning import get_sparsity
from r2kd_keras.pruning import pruning_wrappers
from r2kd_keras.pruning import strip_pruning

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")
INFERENCE_IO_TYPES = ("float32", "int8")

_VERIFY_BATCH = 64
_LATENCY_WARMUP = 5


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What `to_tflite` wrote and how the written file behaves in LiteRT.

    Args:
        path: the `.tflite` file written.
        bytes_raw: file size in bytes.
        bytes_gzip: size of the file gzip-compressed (level 9), which is what
            zeros from pruning save in an app download.
        weight_sparsity: fraction of exact zeros over all Conv / Dense kernels
            of the exported Keras model.
        quantize: `"none"`, `"dynamic"`, `"float16"` or `"int8"`.
        sparse_encoding: whether the file stores kernels in the TFLite sparse
            format (`Optimize.EXPERIMENTAL_SPARSITY`).
        inference_io: dtype of the model's input and output, `"float32"` or
            `"int8"`.
        input_scale: input quantization scale for int8 io, else `None`
            (`real = scale * (q - zero_point)`).
        input_zero_point: input zero point for int8 io, else `None`.
        num_verify: number of images compared with Keras (0 without `verify`).
        max_abs_diff: max |LiteRT - Keras| over the (dequantized) outputs on
            `verify`, or `None`.
        top1_agreement: fraction of `verify` images on which LiteRT and Keras
            give the same arg-max, or `None`.
        accuracy_keras: top-1 accuracy of the Keras model when `verify` has
            labels, else `None`.
        accuracy_litert: top-1 accuracy of the exported file, likewise.
        latency_ms: median LiteRT latency of one image (batch 1), in ms.
        num_threads: LiteRT threads used for the timing.
        notes: decisions taken during export, in words.
        dense_latency_ms: for a sparse-encoded file, the latency of the same
            model converted with dense storage, timed in alternation with
            `latency_ms` (whether LiteRT runs the sparse file faster); else
            `None`.

    Example:
    >>> report = to_tflite(student, "student.tflite", verify=x_test)
    >>> print(report)
    >>> print(ExportReport.markdown_header())
    >>> print(report.markdown_row())
    """

    path: str
    bytes_raw: int
    bytes_gzip: int
    weight_sparsity: float
    quantize: str
    sparse_encoding: bool
    inference_io: str
    input_scale: float | None
    input_zero_point: int | None
    num_verify: int
    max_abs_diff: float | None
    top1_agreement: float | None
    accuracy_keras: float | None
    accuracy_litert: float | None
    latency_ms: float
    num_threads: int
    notes: tuple = ()
    dense_latency_ms: float | None = None

    _COLUMNS = (
        ("file", lambda r: os.path.basename(r.path)),
        ("quantize", lambda r: r.quantize),
        ("io", lambda r: r.inference_io),
        ("sparse enc.", lambda r: "yes" if r.sparse_encoding else "no"),
        ("weight sparsity", lambda r: f"{r.weight_sparsity:.1%}"),
        ("bytes raw", lambda r: f"{r.bytes_raw:,}"),
        ("bytes gzip", lambda r: f"{r.bytes_gzip:,}"),
        ("max abs diff", lambda r: _fmt(r.max_abs_diff, ".2e")),
        ("top-1 agree", lambda r: _fmt(r.top1_agreement, ".1%")),
        ("acc Keras", lambda r: _fmt(r.accuracy_keras, ".1%")),
        ("acc LiteRT", lambda r: _fmt(r.accuracy_litert, ".1%")),
        ("ms / image", lambda r: f"{r.latency_ms:.3f}"),
        ("ms dense enc.", lambda r: _fmt(r.dense_latency_ms, ".3f")),
    )

    @classmethod
    def markdown_header(cls):
        """The markdown table header (two lines) matching `markdown_row`.

        Example:
        >>> print("\n".join([ExportReport.markdown_header()] +
        ...                  [r.markdown_row() for r in reports]))
        """
        names = [name for name, _ in cls._COLUMNS]
        return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)

    def markdown_row(self):
        """This report as one markdown table row (see `markdown_header`).

        Example:
        >>> report.markdown_row()
        '| student.tflite | int8 | int8 | no | 80.0% | ... |'
        """
        return "| " + " | ".join(cell(self) for _, cell in self._COLUMNS) + " |"

    def __str__(self):
        lines = [
            f"LiteRT model: {self.path}",
            f"  size: {self.bytes_raw:,} bytes raw, {self.bytes_gzip:,} gzip",
            f"  weight sparsity: {self.weight_sparsity:.1%} zeros in Conv/Dense "
            f"kernels; sparse encoding: {'yes' if self.sparse_encoding else 'no'}",
            f"  quantization: {self.quantize}, io {self.inference_io}",
        ]
        if self.input_scale is not None:
            lines.append(
                f"  input scale {self.input_scale:.6g}, "
                f"zero point {self.input_zero_point}"
            )
        if self.num_verify:
            lines.append(
                f"  vs Keras on {self.num_verify} images: max abs diff "
                f"{self.max_abs_diff:.3g}, top-1 agreement {self.top1_agreement:.2%}"
            )
        if self.accuracy_keras is not None:
            lines.append(
                f"  top-1 accuracy: Keras {self.accuracy_keras:.2%}, "
                f"LiteRT {self.accuracy_litert:.2%}"
            )
        lines.append(
            f"  latency: {self.latency_ms:.3f} ms / image "
            f"(median, batch 1, {self.num_threads} thread(s))"
        )
        if self.dense_latency_ms is not None:
            lines.append(
                f"  same model stored dense: {self.dense_latency_ms:.3f} ms / image "
                f"(sparse / dense {self.latency_ms / self.dense_latency_ms:.2f})"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


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
    _check_options(quantize, representative_data, inference_io)
    _check_positive_ints(
        num_threads=num_threads, max_samples=max_samples, latency_runs=latency_runs
    )
    path = _check_path(path)
    model = _student_of(model)
    input_shape = _fixed_input_shape(model)
    calibration, _ = (
        _collect(representative_data, "representative_data", input_shape, max_samples)
        if quantize == "int8"
        else (None, None)
    )
    verify_x, verify_y = (
        _collect(verify, "verify", input_shape, max_samples)
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
        runner = _LiteRTRunner(tmp_path, num_threads)
        comparison = _compare(model, runner, verify_x, verify_y)
        if sparse_encoding:
            latency_ms, dense_latency_ms = _sparse_and_dense_latency(
                model, runner, input_shape, latency_runs, num_threads,
                quantize=quantize, calibration=calibration, inference_io=inference_io,
            )
        else:
            latency_ms = runner.latency_ms(input_shape, latency_runs)
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


def _sparse_and_dense_latency(model, runner, input_shape, runs, num_threads, **options):
    """Latency of the sparse file and of the model stored dense, timed in
    alternating rounds (the machine's load drifts), medians of the rounds."""
    dense_path = _reserve_temp_file(runner.path + ".dense.tflite")
    try:
        _write_converted(model, dense_path, sparse=False, **options)
        dense = _LiteRTRunner(dense_path, num_threads)
        rounds = min(5, runs)
        per_round = max(1, runs // rounds)
        sparse_ms, dense_ms = [], []
        for _ in range(rounds):
            sparse_ms.append(runner.latency_ms(input_shape, per_round))
            dense_ms.append(dense.latency_ms(input_shape, per_round))
    finally:
        os.remove(dense_path)
    return statistics.median(sparse_ms), statistics.median(dense_ms)


def _weight_sparsity(model):
    try:
        return get_sparsity(model)["total"]
    except ValueError:
        # get_sparsity refuses a model without Conv/Dense kernels: none are zero.
        return 0.0


def _student_of(model):
    student = getattr(model, "student", None)
    if isinstance(student, keras.Model):
        model = student
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model or an object with a `.student` "
            f"keras.Model (e.g. R2KDDistiller); received: {type(model).__name__}"
        )
    return strip_pruning(model) if pruning_wrappers(model) else model


def _check_options(quantize, representative_data, inference_io):
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"`quantize` must be one of {QUANTIZE_MODES}; received: {quantize!r}"
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`quantize='int8'` needs `representative_data` (a few hundred "
            "typical inputs) to calibrate activation ranges; received: None"
        )
    if inference_io not in INFERENCE_IO_TYPES:
        raise ValueError(
            f"`inference_io` must be one of {INFERENCE_IO_TYPES}; "
            f"received: {inference_io!r}"
        )
    if inference_io == "int8" and quantize != "int8":
        raise ValueError(
            "`inference_io='int8'` needs `quantize='int8'` (full integer); "
            f"received: quantize={quantize!r}"
        )


def _check_positive_ints(**values):
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received: {value!r}")


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a str or os.PathLike ending in '.tflite'; "
            f"received: {path!r}"
        )
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(
            f"`path` must end with '.tflite'; received: {path!r}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"The directory of `path` does not exist: {directory!r} "
            f"(path={path!r}). Create it first."
        )
    if os.path.isdir(path):
        raise ValueError(f"`path` is a directory, not a file: {path!r}")
    return path


def _fixed_input_shape(model):
    if not model.built:
        raise ValueError(
            f"`model` '{model.name}' is not built; call it on a batch or "
            "build it with a fixed input shape before export."
        )
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ValueError(
            f"`model` '{model.name}' must have exactly one input tensor "
            "(a functional or Sequential image model); received inputs: "
            f"{inputs}"
        )
    shape = tuple(inputs[0].shape)
    if any(dim is None for dim in shape[1:]):
        raise ValueError(
            f"`model` '{model.name}' has dynamic input dimensions {shape}; "
            "TFLite needs fixed height, width and channels. Rebuild it with "
            "e.g. keras.Input((32, 32, 3))."
        )
    return shape


def _collect(data, name, input_shape, max_samples):
    """Reads up to `max_samples` inputs (and labels, if any) into numpy."""
    xs, ys = [], []
    count = 0
    for x, y in _elements(data, name):
        x = np.asarray(x, dtype=np.float32)
        if x.shape == input_shape[1:]:
            x = x[None]
            y = None if y is None else np.asarray(y)[None]
        if x.shape[1:] != input_shape[1:]:
            raise ValueError(
                f"`{name}` must hold inputs of shape {input_shape[1:]} (one "
                f"image) or {input_shape} (a batch); received an element of "
                f"shape {x.shape}"
            )
        xs.append(x)
        ys.append(y)
        count += len(x)
        if count >= max_samples:
            break
    if not count:
        raise ValueError(f"`{name}` yielded no inputs; received: {data!r}")
    x = np.concatenate(xs)[:max_samples]
    if any(y is None for y in ys):
        return x, None
    return x, labels_lib.to_class_ids(np.concatenate(ys)[:max_samples]).numpy()


def _elements(data, name):
    """Yields `(x, y_or_None)` from the input forms `to_tflite` accepts."""
    if isinstance(data, (str, bytes)):
        raise TypeError(
            f"`{name}` must hold arrays, not a file name; load it first "
            f"(e.g. np.load). Received: {data!r}"
        )
    if tf.is_tensor(data):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        yield data, None
        return
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(a, np.ndarray) for a in data)
    ):
        yield data
        return
    if callable(data) and not isinstance(data, tf.data.Dataset):
        data = data()
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a numpy array, an (x, y) tuple of arrays, a "
            "tf.data.Dataset, or a generator; received: "
            f"{type(data).__name__}"
        ) from None
    for element in iterator:
        if isinstance(element, (tuple, list)):
            yield element[0], (element[1] if len(element) > 1 else None)
        else:
            yield element, None


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
            _LiteRTRunner(tmp_path, num_threads).smoke_test(probe)
            return True, notes
        except (RuntimeError, ValueError) as error:
            notes.append(
                "sparse encoding dropped: LiteRT/XNNPACK cannot run it with "
                f"quantize={options['quantize']!r} "
                f"({str(error).splitlines()[0][:120]})"
            )
    _write_converted(model, tmp_path, sparse=False, **options)
    try:
        _LiteRTRunner(tmp_path, num_threads).smoke_test(probe)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(
            "The converted model does not run in LiteRT; nothing was "
            f"written. LiteRT said: {error}"
        ) from error
    return False, notes


def _write_converted(model, tmp_path, **options):
    with open(tmp_path, "wb") as f:
        f.write(_convert(model, **options))


class _LiteRTRunner:
    """One LiteRT interpreter on a file: batched float-in / float-out calls
    that hide int8 io quantization, and single-image timing."""

    def __init__(self, path, num_threads):
        self.path = path
        # Imported here: `import r2kd_keras` should not load LiteRT.
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        scale, zero_point = self._input["quantization"]
        self._int8_io = self._input["dtype"] == np.int8
        self.input_scale = float(scale) if self._int8_io else None
        self.input_zero_point = int(zero_point) if self._int8_io else None

    def _set_batch(self, batch):
        if batch != self._batch:
            shape = (batch,) + tuple(self._input["shape"][1:])
            self._interpreter.resize_tensor_input(self._input["index"], shape)
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _quantize(self, x):
        if not self._int8_io:
            return x.astype(np.float32)
        q = np.round(x / self.input_scale) + self.input_zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def _dequantize(self, y):
        scale, zero_point = self._output["quantization"]
        if self._output["dtype"] != np.int8:
            return y.astype(np.float32)
        return (y.astype(np.float32) - zero_point) * scale

    def __call__(self, x):
        """Float outputs of the file on float inputs `x` (a batch)."""
        outputs = []
        for start in range(0, len(x), _VERIFY_BATCH):
            chunk = x[start : start + _VERIFY_BATCH]
            self._set_batch(len(chunk))
            self._interpreter.set_tensor(self._input["index"], self._quantize(chunk))
            self._interpreter.invoke()
            outputs.append(
                self._dequantize(self._interpreter.get_tensor(self._output["index"]))
            )
        return np.concatenate(outputs)

    def smoke_test(self, probe):
        """Runs one image; raises RuntimeError on non-finite outputs."""
        shape = (1,) + tuple(self._input["shape"][1:])
        x = probe[:1] if probe is not None else np.zeros(shape, np.float32)
        y = self(x)
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"LiteRT produced non-finite outputs: {y}")

    def latency_ms(self, input_shape, runs):
        """Median wall time of `runs` single-image invocations, in ms."""
        self._set_batch(1)
        x = self._quantize(np.random.default_rng(0).random((1,) + input_shape[1:]))
        self._interpreter.set_tensor(self._input["index"], x)
        times = []
        for i in range(_LATENCY_WARMUP + runs):
            start = time.perf_counter()
            self._interpreter.invoke()
            if i >= _LATENCY_WARMUP:
                times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)


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
    expected = np.asarray(model.predict(x, batch_size=_VERIFY_BATCH, verbose=0))
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


if __name__ == "__main__":
    sys.exit(main())
