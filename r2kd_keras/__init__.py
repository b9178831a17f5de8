"""r2kd-keras: Robustness-Reinforced Knowledge Distillation for Keras 3."""

from r2kd_keras import logs

# First: TensorFlow reads its native log level once, when it is imported; and
# prints a few native lines (CUDA probing) that no log level hides. The
# environment decides, not the command line: a library must not read argv
# (the commands' `--verbosity` sets the Python logging, `logs.configure`).
logs.before_tensorflow()
with logs.native_output_kept_aside(logs.native_quiet()):
    import tensorflow as _tf

    # Listing the devices probes CUDA and the CPU's instruction sets now, inside
    # the block: later, the first op would print "failed call to cuInit" and
    # "rebuild TensorFlow with the appropriate compiler flags" on a host with the
    # CUDA libraries and no GPU. Listing leaves the runtime unconfigured
    # (logical devices can still be set).
    _tf.config.list_physical_devices()
    from r2kd_keras import augment
    from r2kd_keras import data
    from r2kd_keras import export
    from r2kd_keras import labels
    from r2kd_keras import losses
    from r2kd_keras import methods
    from r2kd_keras import models
    from r2kd_keras import precision
    from r2kd_keras import pruning
    from r2kd_keras.distiller import R2KDDistiller
    from r2kd_keras.methods import DIST
    from r2kd_keras.methods import DKD
    from r2kd_keras.methods import KD
    from r2kd_keras.methods import R2KD
    from r2kd_keras.methods import CrossEntropyOnly
    from r2kd_keras.pruning import prune_teacher

__version__ = "0.1.0"
