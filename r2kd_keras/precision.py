"""Precision choices: the teacher's compute dtype, the student's policy, and
the one hardware probe both read."""

import collections
import functools
import statistics
import time

import keras
import tensorflow as tf
from absl import logging

from r2kd_keras.validation import check_choice

TEACHER_DTYPES = (None, "auto", "bfloat16", "float16")
REDUCED_DTYPES = ("bfloat16", "float16")
# Below this, bfloat16's rounding buys too little time to be worth it.
BFLOAT16_MIN_SPEEDUP = 1.2

Hardware = collections.namedtuple("Hardware", ["gpu_capability", "cpu_bfloat16"])


def detect_hardware():
    """What this process can run fast in reduced precision.

    Returns:
        `Hardware(gpu_capability, cpu_bfloat16)`: the first visible GPU's
        compute capability as a tuple (None without a GPU), and whether the
        CPU has AVX512-BF16 or AMX-BF16 instructions (Linux `/proc/cpuinfo`;
        False where it cannot be read).

    Example:
    >>> detect_hardware()
    Hardware(gpu_capability=None, cpu_bfloat16=False)
    """
    gpus = tf.config.list_physical_devices("GPU")
    capability = None
    if gpus:
        capability = tuple(
            tf.config.experimental.get_device_details(gpus[0]).get(
                "compute_capability", (0, 0)
            )
        )
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        flags = ""
    return Hardware(capability, "avx512_bf16" in flags or "amx_bf16" in flags)


@functools.cache
def cpu_bfloat16_speedup(repeats=7):
    """How many times faster this CPU runs a teacher-like convolution in
    bfloat16 than in float32 (below 1: slower), measured once per process.

    The instruction flags do not answer this. On an Intel Xeon (model 207)
    with AVX512-BF16 but no AMX, oneDNN's bfloat16 convolutions ran 2x slower
    than float32; on an AMD EPYC with the same flag, 1.9x faster. The probe is
    a 3x3, 64-channel convolution with ReLU at 16x16, batch 32 (a few ms per
    call), medians of interleaved calls after a warm-up.

    Args:
        repeats: timed calls per dtype.

    Returns:
        float32 seconds / bfloat16 seconds.

    Example:
    >>> cpu_bfloat16_speedup()
    1.87
    """
    images = tf.random.stateless_normal((32, 16, 16, 64), seed=(0, 0))
    kernel = 0.05 * tf.random.stateless_normal((3, 3, 64, 64), seed=(0, 1))
    calls = {}
    with tf.device("/CPU:0"):
        for dtype in ("float32", "bfloat16"):
            x, k = tf.cast(images, dtype), tf.cast(kernel, dtype)
            conv = tf.function(lambda x, k=k: tf.nn.relu(tf.nn.conv2d(x, k, 1, "SAME")))
            conv(x).numpy()  # tracing and oneDNN's kernel selection
            calls[dtype] = (conv, x)
        seconds = {dtype: [] for dtype in calls}
        for _ in range(repeats):
            for dtype, (conv, x) in calls.items():
                start = time.perf_counter()
                conv(x).numpy()
                seconds[dtype].append(time.perf_counter() - start)
    return statistics.median(seconds["float32"]) / statistics.median(seconds["bfloat16"])


def auto_dtype(hardware, bfloat16_speedup=None):
    """The reduced dtype `"auto"` stands for on `hardware`.

    Args:
        hardware: a `Hardware`.
        bfloat16_speedup: `cpu_bfloat16_speedup()` of a CPU with bfloat16
            instructions (needed only for such a CPU without a GPU).

    Returns:
        `"bfloat16"`, `"float16"` or None (float32).

    Example:
    >>> auto_dtype(Hardware(None, True), bfloat16_speedup=0.5)  # None
    """
    if hardware.gpu_capability is not None:
        return "bfloat16" if hardware.gpu_capability >= (8, 0) else "float16"
    if hardware.cpu_bfloat16 and bfloat16_speedup >= BFLOAT16_MIN_SPEEDUP:
        return "bfloat16"
    return None


def resolve_teacher_dtype(teacher_dtype):
    """`"auto"`: bfloat16 where the hardware runs it fast, else float32 (None).

    On a GPU: bfloat16 from compute capability 8.0, float16 before. On a CPU:
    bfloat16 when it has AVX512-BF16 or AMX-BF16 instructions AND a measured
    bfloat16 convolution is at least `BFLOAT16_MIN_SPEEDUP` times faster
    than float32 (`cpu_bfloat16_speedup`; logged at INFO). Other values are
    returned as given.

    Args:
        teacher_dtype: one of `TEACHER_DTYPES`.

    Returns:
        `"bfloat16"`, `"float16"` or None (float32).

    Example:
    >>> resolve_teacher_dtype("auto")  # None on a CPU without fast BF16 units
    """
    check_choice("teacher_dtype", teacher_dtype, TEACHER_DTYPES)
    if teacher_dtype != "auto":
        return teacher_dtype
    hardware = detect_hardware()
    if hardware.gpu_capability is not None or not hardware.cpu_bfloat16:
        return auto_dtype(hardware)
    speedup = cpu_bfloat16_speedup()
    chosen = auto_dtype(hardware, speedup)
    logging.info("teacher_dtype='auto': a bfloat16 convolution runs %.2fx as fast as "
                 "float32 on this CPU, so the teachers compute in %s.", speedup,
                 chosen or "float32")
    return chosen


def student_policy():
    """`"mixed_float16"` when a GPU is visible, else `"mixed_bfloat16"`.

    On a CPU where bfloat16 is not faster (no bfloat16 instructions, or
    `cpu_bfloat16_speedup()` under `BFLOAT16_MIN_SPEEDUP`) it warns that
    the student will train slower than in float32.

    Example:
    >>> keras.config.set_dtype_policy(student_policy())
    """
    hardware = detect_hardware()
    if hardware.gpu_capability is not None:
        return "mixed_float16"
    if not hardware.cpu_bfloat16:
        logging.warning("Mixed precision: this CPU has no bfloat16 instructions, so the "
                        "student will train slower than in float32.")
    else:
        speedup = cpu_bfloat16_speedup()
        if auto_dtype(hardware, speedup) is None:
            logging.warning("Mixed precision: a bfloat16 convolution runs %.2fx as fast as "
                            "float32 on this CPU, so the student may train slower than in "
                            "float32.", speedup)
    return "mixed_bfloat16"


def reduced_precision_copy(model, dtype):
    """An inference copy of `model` computing in `dtype` (mixed precision).

    Variables stay float32; convolutions and the rest run in `dtype`; Dense
    layers (the classifier) stay float32 so logits keep their precision.

    Args:
        model: a functional or Sequential `keras.Model`.
        dtype: `"bfloat16"` or `"float16"`.

    Returns:
        A new model with the same weights.

    Example:
    >>> fast_teacher = reduced_precision_copy(teacher, "bfloat16")
    """
    check_choice("dtype", dtype, REDUCED_DTYPES)
    policy = keras.DTypePolicy(f"mixed_{dtype}")

    def clone(layer):
        if isinstance(layer, keras.Model):
            return reduced_precision_copy(layer, dtype)
        config = layer.get_config()
        if not isinstance(layer, keras.layers.Dense):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"`teacher_dtype={dtype!r}` needs a functional or Sequential teacher "
            f"to copy layer by layer; model '{model.name}' could not be cloned "
            f"({error}). Use teacher_dtype=None."
        ) from error
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy
