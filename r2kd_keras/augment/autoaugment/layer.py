"""`AutoAugment`: the layer drawing a sub-policy per batch (or per image)
and applying its ops."""

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras.augment.autoaugment.image_ops import OP_FUNCTIONS
from r2kd_keras.augment.autoaugment.image_ops import to_uint8_grid
from r2kd_keras.augment.autoaugment.policies import OPS
from r2kd_keras.augment.autoaugment.policies import check_policy
from r2kd_keras.augment.autoaugment.policies import policy_tables


@keras.saving.register_keras_serializable(package="r2kd_keras")
class AutoAugment(keras.layers.Layer):
    """AutoAugment with a learned policy, torchvision's ops and magnitudes.

    Each call draws one sub-policy; each of its ops is applied with its
    probability, signed ops get a random sign. With `per_image=False` (the
    reference, which calls torchvision on the batch tensor) the draws are
    shared by the whole batch; with `per_image=True` every image draws its
    own, as a per-sample data pipeline would. Pixel values are taken to the
    uint8 grid of `value_range` (truncated, as the reference's
    `.mul(255).type(torch.uint8)`) and mapped back after.

    Args:
        policy: `"cifar10"` (the reference's choice on CIFAR-100),
            `"imagenet"` (on TinyImageNet), `"svhn"`, or a list of
            sub-policies `((op, probability, bin or None), ...)` with ops
            from `OPS` and bins 0-9.
        value_range: `(low, high)` of the input pixels, e.g. `(0, 255)` or
            `(0, 1)`; the output has the same range.
        per_image: draw a sub-policy per image rather than per batch.
        seed: seed of the draws; equal seeds give equal outputs.

    Example:
    ```python
    layer = AutoAugment("cifar10", value_range=(0, 255), seed=0)
    augmented = layer(uint8_images_as_float)                    # (B, H, W, C)
    out = layer({"images": images, "labels": labels})   # labels pass through
    ```
    """

    def __init__(self, policy="imagenet", value_range=(0, 255), per_image=False,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self._sub_policies = check_policy(policy)
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(
                f"value_range must be (low, high) with low < high, got {value_range!r}."
            )
        self.policy = policy if isinstance(policy, str) else [
            [list(op) for op in sub] for sub in self._sub_policies]
        self.value_range = tuple(value_range)
        self.per_image = per_image
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # XLA cannot compile Equalize's bincount inside tf.switch_case (its
        # size is no compile-time constant there), and its fused float maths
        # moves Color and Sharpness by one level: models holding this layer
        # compile without XLA.
        self.supports_jit = False
        op_index, probability, size, signed = policy_tables(self._sub_policies)
        self._tables = [tf.constant(op_index), tf.constant(probability),
                        tf.constant(size, tf.float64), tf.constant(signed)]
        self._branches = [OP_FUNCTIONS[op] for op in OPS]

    def _draw(self, n):
        """Per draw: the two ops' branch indices and signed magnitudes."""
        op_index, probability, size, signed = self._tables
        ops_per_sub = op_index.shape[1]
        choice = keras.random.randint((n,), 0, op_index.shape[0], seed=self.generator)
        applied = keras.random.uniform((n, ops_per_sub), seed=self.generator) <= ops.take(
            probability, choice, axis=0)
        negative = keras.random.randint((n, ops_per_sub), 0, 2, seed=self.generator) == 0
        negative &= ops.take(signed, choice, axis=0)
        branch = ops.where(applied, ops.take(op_index, choice, axis=0), OPS.index("Identity"))
        amount = ops.take(size, choice, axis=0)
        return branch, ops.where(negative, -amount, amount)

    def _apply(self, images, branch, amount):
        for i in range(branch.shape[-1]):
            images = tf.switch_case(
                branch[i], [lambda f=f, i=i: f(images, amount[i]) for f in self._branches])
        return images

    def _augment(self, images):
        low, high = self.value_range
        images = to_uint8_grid((images - low) * (255.0 / (high - low)))
        shape = tf.shape(images)
        if self.per_image:
            branch, amount = self._draw(shape[0])
            images = tf.map_fn(
                lambda args: self._apply(args[0][None], args[1], args[2])[0],
                (images, branch, amount), fn_output_signature=images.dtype)
        else:
            branch, amount = self._draw(1)
            images = self._apply(images, branch[0], amount[0])
        return images * ((high - low) / 255.0) + low

    def call(self, data, training=True):
        images = data["images"] if isinstance(data, dict) else data
        if not training:
            return data
        images = ops.convert_to_tensor(images)
        if len(images.shape) not in (3, 4):
            raise ValueError(
                f"AutoAugment needs images (H, W, C) or (B, H, W, C), got shape "
                f"{tuple(images.shape)}."
            )
        single = len(images.shape) == 3
        batch = tf.cast(images[None] if single else images, tf.float32)
        augmented = self._augment(batch)
        augmented = ops.cast(augmented[0] if single else augmented, images.dtype)
        return dict(data, images=augmented) if isinstance(data, dict) else augmented

    def compute_output_spec(self, data, training=True):
        return data

    def get_config(self):
        config = super().get_config()
        config.update(policy=self.policy, value_range=self.value_range,
                      per_image=self.per_image, seed=self.seed)
        return config
