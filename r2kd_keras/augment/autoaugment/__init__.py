"""AutoAugment (Cubuk et al., 2019) as the reference applies it: learned
policies of 25 two-op sub-policies, one sub-policy drawn per call.

Keras 3 has RandAugment but no AutoAugment, and the reference's `autoaug`
view is torchvision's `AutoAugment` (CIFAR10 policy on CIFAR-100, IMAGENET
policy on TinyImageNet) run on the whole batch tensor: one sub-policy, one
probability draw and one sign per op for the batch. The ops follow
torchvision's uint8 semantics (magnitude bins, nearest-neighbour geometry
with black fill, blends that truncate to integers, per-channel equalisation)
so that the same policy gives the same images.
"""

from r2kd_keras.augment.autoaugment.image_ops import apply_op
from r2kd_keras.augment.autoaugment.layer import AutoAugment
from r2kd_keras.augment.autoaugment.policies import OPS
from r2kd_keras.augment.autoaugment.policies import POLICIES
from r2kd_keras.augment.autoaugment.policies import magnitude
