"""Magnitude pruning for Keras 3 models."""

from r2kd_keras.pruning.magnitude import magnitude_mask
from r2kd_keras.pruning.magnitude import prunable_kernels
from r2kd_keras.pruning.magnitude import prune_teacher
