"""Precision choices of the student and the teachers."""

import tensorflow as tf


def student_policy():
    """`"mixed_float16"` when a GPU is visible, else `"mixed_bfloat16"`."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
