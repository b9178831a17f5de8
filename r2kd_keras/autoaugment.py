"""Old import path of `r2kd_keras.augment.autoaugment`: AutoAugment
(torchvision's policies and ops) in TensorFlow ops."""

from r2kd_keras.augment.autoaugment import OPS  # noqa: F401
from r2kd_keras.augment.autoaugment import POLICIES  # noqa: F401
from r2kd_keras.augment.autoaugment import AutoAugment  # noqa: F401
from r2kd_keras.augment.autoaugment import apply_op  # noqa: F401
from r2kd_keras.augment.autoaugment import magnitude  # noqa: F401
