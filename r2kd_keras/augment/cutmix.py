"""CutMix as the reference draws its box (`ReferenceCutMix`), and the
reference's `cutmixpick`, which keeps the images the teacher is least sure of
(`CutMixPick`)."""

import keras
from keras import ops

from r2kd_keras.augment.second_view import SecondView


@keras.saving.register_keras_serializable(package="r2kd_keras")
class ReferenceCutMix(keras.layers.CutMix):
    """`keras.layers.CutMix` with the reference's box and exact label weights.

    Core Keras keeps the box inside the image with real-valued corners, so its
    label weight (the box's real area) can differ from the share of pixels
    pasted by a few percent at 32x32. Here, as in the reference's `rand_bbox`,
    the box spans `cut // 2` pixels each side of a uniform centre pixel, with
    `cut = floor(L * sqrt(1 - lam))`, clipped at the borders, and the label
    weight is the pasted pixel count over `H * W`, exactly.
    `lam ~ Beta(alpha, alpha)` per image. (`keras.layers.CutMix()` with its
    default `factor=1.0` draws `alpha ~ U(0, 1)` per batch instead.)

    Args:
        alpha: Beta parameter of the mixing weight (1.0 in the reference).
        seed: seed of the boxes, weights and partner permutation.

    Example:
    ```python
    out = ReferenceCutMix(seed=0)({"images": x, "labels": y_one_hot})
    ```
    """

    def __init__(self, alpha=1.0, seed=None, **kwargs):
        kwargs.pop("factor", None)
        # Keras samples Beta(a, a) with `a ~ U(factor)`: a point range fixes a.
        super().__init__(factor=(alpha, alpha), seed=seed, **kwargs)
        self.alpha = alpha

    # Overrides the one Keras hook that places the box (a private method of
    # keras.layers.CutMix 3.15); tests/test_augment.py checks the pixel-exact
    # result, so a change in Keras shows there.
    def _compute_crop_bounds(self, batch_size, image_length, crop_ratio, seed):
        length = ops.cast(image_length, self.compute_dtype)
        half = ops.floor(ops.floor(crop_ratio * length) / 2.0)
        centre = ops.floor(
            keras.random.uniform((batch_size,), 0.0, 1.0, seed=seed) * length
        )
        start = ops.clip(centre - half, 0.0, length)
        end = ops.clip(centre + half, 0.0, length)
        return start, end

    def get_config(self):
        config = super().get_config()
        config.pop("factor", None)
        config["alpha"] = self.alpha
        return config


@keras.saving.register_keras_serializable(package="r2kd_keras")
class CutMixPick(SecondView):
    """The reference's `cutmixpick`: CutMix, then keep the `min(B, max_samples)`
    images whose *clean* versions have the highest teacher entropy
    `H(softmax(teacher(x)))`.

    What it amounts to: with the reference's batch of 64 (and any batch of at
    most `max_samples`) every mixed image is kept and only their order changes;
    R2KD's losses are means over rows and over classes of the batch, so they do
    not depend on the order, and the result equals plain CutMix (at the cost of
    one more teacher pass). Only larger batches are really subsampled. Under
    `MirroredStrategy` the pick is made per replica.

    Args:
        num_classes: number of classes.
        alpha: CutMix Beta parameter.
        max_samples: number of images kept (64 in the reference).
        entropy_of: `"clean"` (reference) scores the clean images; `"mixed"`
            scores the mixed ones, as the CutMixPick paper (Wang et al., 2022).
        seed: seed of CutMix.

    Returns (when called as `augmenter(data, teacher=fn)` with
    `fn(images) -> logits`): the input's structure with the kept images (and
    labels).

    Example:
    ```python
    pick = CutMixPick(num_classes=100, seed=0)
    x_aug = pick({"images": x, "labels": y}, teacher=teacher_model)["images"]
    ```
    """

    requires_teacher = True

    def __init__(self, num_classes, alpha=1.0, max_samples=64, entropy_of="clean",
                 seed=None, layer=None, normalization=None, **kwargs):
        if entropy_of not in ("clean", "mixed"):
            raise ValueError(
                f"entropy_of must be 'clean' or 'mixed', got {entropy_of!r}."
            )
        if normalization is not None:
            raise ValueError("CutMixPick works on any float images: normalization "
                             f"must be None, got {normalization!r}.")
        super().__init__(layer or ReferenceCutMix(alpha=alpha, seed=seed),
                         num_classes, **kwargs)
        self.alpha = alpha
        self.max_samples = max_samples
        self.entropy_of = entropy_of
        self.seed = seed

    def call(self, data, teacher=None, training=True):
        if teacher is None:
            raise ValueError(
                "cutmixpick needs the teacher: call augmenter(data, teacher=fn) "
                "with fn(images) -> logits (R2KDDistiller does this)."
            )
        images, labels = self._unpack(data)
        mixed, mixed_labels = self._augment(images, labels, training)
        probs = ops.softmax(
            ops.cast(teacher(images if self.entropy_of == "clean" else mixed),
                     "float32"),
            axis=-1,
        )
        # 0 * log(0) is taken as 0, as the limit is.
        entropy = -ops.sum(probs * ops.log(ops.maximum(probs, 1e-30)), axis=-1)
        keep = ops.minimum(ops.shape(images)[0], self.max_samples)
        _, index = ops.top_k(entropy, keep)
        picked_labels = None if mixed_labels is None else ops.take(mixed_labels, index, 0)
        return self._pack(data, ops.take(mixed, index, axis=0), picked_labels)

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, max_samples=self.max_samples,
                      entropy_of=self.entropy_of, seed=self.seed)
        return config
