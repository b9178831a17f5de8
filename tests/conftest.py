"""Test session set-up: TensorFlow backend and two logical CPU devices, so
MirroredStrategy tests run on real replicas on this CPU."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu,
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy for the whole session: each new instance restarts
    its collective keys, and two instances in one process can collide
    ("Collective instance N expected type ...")."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
