"""Quiet, readable console output for the `r2kd` command and the runner.

By default TensorFlow's and absl's logging show warnings and above, and the
chatter a run does not need is dropped: tf.function retracing warnings, and
the native (C++) messages of the TFLite converter, which are kept aside and
shown only if the conversion fails. Keras's progress bar is untouched.
`--verbosity` (absl's flag: -1 warnings, 0 info, 1 debug) shows more of
the Python logging; `TF_CPP_MIN_LOG_LEVEL=0` shows the native messages.
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings

# absl's verbosity numbers and the Python levels they stand for.
_LEVELS = {-3: logging.FATAL, -2: logging.ERROR, -1: logging.WARNING,
           0: logging.INFO, 1: logging.DEBUG}
_NOISE = ("triggered tf.function retracing",)


def before_tensorflow():
    """Makes TensorFlow's native (C++) logging show errors only
    (`TF_CPP_MIN_LOG_LEVEL=2`) unless the environment sets a level. Call it
    before TensorFlow is imported: TensorFlow reads the level once.

    Example:
    >>> before_tensorflow()
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def native_quiet():
    """Whether TensorFlow's native log level (`TF_CPP_MIN_LOG_LEVEL`) hides
    its info messages, i.e. is not 0.

    Example:
    >>> with native_output_kept_aside(native_quiet()):
    ...     import tensorflow
    """
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() not in ("", "0")


class _DropNoise(logging.Filter):
    def filter(self, record):
        return not any(text in record.getMessage() for text in _NOISE)


_FILTER = _DropNoise()


def configure(verbosity=None):
    """Routes TensorFlow's and absl's Python logging to the level of
    `verbosity` (absl's numbers; None: warnings and above, retracing
    warnings dropped).

    Args:
        verbosity: None, or an int: -2 errors, -1 warnings, 0 info, 1 debug.

    Example:
    >>> configure(None)
    """
    from absl import logging as absl_logging

    verbosity = max(-3, min(1, -1 if verbosity is None else verbosity))
    level = _LEVELS[verbosity]
    absl_logging.set_verbosity(verbosity)  # absl's numbers, not Python's levels
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.setLevel(level)
    if level >= logging.WARNING:
        tf_logger.addFilter(_FILTER)
    else:
        tf_logger.removeFilter(_FILTER)


def is_quiet():
    """Whether TensorFlow's Python logging is at warnings or above."""
    return logging.getLogger("tensorflow").getEffectiveLevel() >= logging.WARNING


@contextlib.contextmanager
def native_output_kept_aside(enabled=True):
    """Redirects the process's native stderr (file descriptor 2: C++ logs of
    TensorFlow and the TFLite converter) to a temporary file while the body
    runs; writes it out only if the body raises.

    Args:
        enabled: False leaves stderr alone (e.g. at `--verbosity=0`).

    Example:
    >>> with native_output_kept_aside():
    ...     export.to_tflite(model, "model.tflite")
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            kept.seek(0)
            sys.stderr.write(kept.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def end_of_data_expected():
    """Drops Keras's "Your input ran out of data" warning while the body runs.

    Keras gives it at the end of every pass over a dataset of unknown length,
    where running out is simply how the pass ends; the file loaders' datasets
    have no known length (a truncated image is dropped while reading). Use it
    only where the training data repeats, so that the warning cannot mean a
    short epoch.

    Example:
    >>> with end_of_data_expected():
    ...     model.evaluate(val_ds)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data",
                                category=UserWarning)
        yield


def absl_verbosity():
    """absl's `--verbosity` when it was given on the command line, else None.

    Example:
    >>> configure(absl_verbosity())
    """
    from absl import flags

    if "verbosity" not in flags.FLAGS or not flags.FLAGS.is_parsed():
        return None
    flag = flags.FLAGS["verbosity"]
    return flag.value if flag.present else None


_OUTPUTS = (".tflite", ".keras", ".json", ".csv", ".png")


def format_outputs(directory):
    """The files a run leaves in `directory` (and its method sub-folders), one
    per line, for the end of the console output; TensorBoard logs as a folder.

    Example:
    >>> print(format_outputs("runs/photos"))
    """
    lines = ["outputs:"]
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(f for f in folders if f not in ("backup", "logs"))
        if "logs" in os.listdir(root):
            lines.append(f"  {os.path.join(root, 'logs')}/  (TensorBoard)")
        lines.extend(f"  {os.path.join(root, name)}" for name in sorted(files)
                     if name.endswith(_OUTPUTS))
    return "\n".join(lines)
