"""`LiteRTRunner`: a `.tflite` file run in LiteRT, float in and float out."""

import statistics
import time

import numpy as np

# Images per `invoke` when a runner is called on many; Keras predicts with the
# same batch size when the two are compared.
VERIFY_BATCH = 64
_LATENCY_WARMUP = 5


class LiteRTRunner:
    """A `.tflite` file in one LiteRT interpreter (default XNNPACK delegate).

    Called on a float batch, it returns float outputs: for a file with int8
    input and output it quantizes the input and dequantizes the output with
    the file's scale and zero point, so callers never see the io dtype. It
    also times single-image invocations. `to_tflite` verifies and times its
    files with it; `r2kd evaluate` scores a `.tflite` file with it.

    Args:
        path: the `.tflite` file.
        num_threads: LiteRT threads, a positive int.

    Attributes:
        path: the file.
        input_shape: the shape of one input image, e.g. `(32, 32, 3)`.
        num_outputs: the size of the last output dimension (classes).
        input_scale: input quantization scale for int8 io, else `None`
            (`real = scale * (q - zero_point)`).
        input_zero_point: input zero point for int8 io, else `None`.

    Example:
    >>> runner = LiteRTRunner("student_int8.tflite", num_threads=2)
    >>> logits = runner(x_test)  # float32, whatever the file's io dtype
    >>> runner.latency_ms(runs=50)  # median ms of one image
    """

    def __init__(self, path, num_threads):
        self.path = path
        # Imported here: `import r2kd_keras` should not load LiteRT.
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.num_outputs = int(self._output["shape"][-1])
        scale, zero_point = self._input["quantization"]
        self._int8_io = self._input["dtype"] == np.int8
        self.input_scale = float(scale) if self._int8_io else None
        self.input_zero_point = int(zero_point) if self._int8_io else None

    def _set_batch(self, batch):
        if batch != self._batch:
            shape = (batch,) + self.input_shape
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
        """The file's float32 outputs on a batch.

        Args:
            x: float numpy array of shape `(n,) + input_shape`, in the model's
                input range; run in chunks of `VERIFY_BATCH` images.
        """
        outputs = []
        for start in range(0, len(x), VERIFY_BATCH):
            chunk = x[start : start + VERIFY_BATCH]
            self._set_batch(len(chunk))
            self._interpreter.set_tensor(self._input["index"], self._quantize(chunk))
            self._interpreter.invoke()
            outputs.append(
                self._dequantize(self._interpreter.get_tensor(self._output["index"]))
            )
        return np.concatenate(outputs)

    def smoke_test(self, probe):
        """Runs one image; raises RuntimeError on non-finite outputs.

        Args:
            probe: a batch whose first image is run, or `None` for zeros.
        """
        shape = (1,) + self.input_shape
        x = probe[:1] if probe is not None else np.zeros(shape, np.float32)
        y = self(x)
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"LiteRT produced non-finite outputs: {y}")

    def latency_ms(self, runs):
        """Median wall time of single-image invocations, in ms.

        Args:
            runs: number of timed invocations, after a few untimed ones.
        """
        self._set_batch(1)
        x = self._quantize(np.random.default_rng(0).random((1,) + self.input_shape))
        self._interpreter.set_tensor(self._input["index"], x)
        times = []
        for i in range(_LATENCY_WARMUP + runs):
            start = time.perf_counter()
            self._interpreter.invoke()
            if i >= _LATENCY_WARMUP:
                times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

