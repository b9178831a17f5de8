"""`ExportReport`: what `to_tflite` wrote, and its text and markdown forms."""

import dataclasses
import os


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

