"""The second view of R2KD: augmenters that turn a clean training batch into
the augmented batch `A(x)` the teachers and the student also see.

Built on core Keras 3 layers (`MixUp`, `CutMix`, `RandAugment`, `AugMix`),
a small `Cutout` layer and `AutoAugment` (`r2kd_keras.autoaugment`). Every
augmenter follows the Keras dict protocol:

```python
out = augmenter({"images": x, "labels": y})   # y: int class ids or one-hot
x_aug = out["images"]
```

on a batched, already-normalised float32 batch; it runs inside a `train_step`
(under `tf.function`, also inside `MirroredStrategy.run`) and inside
`tf.data` after `.batch()`. keras-cv layers follow the same protocol and can be
passed to `SecondView` (or straight to the distiller) instead.

Differences from the reference (`Seonghak35/R2KD`, `mdistiller/distillers/R2KD.py`),
which draws one mixing weight, one box or one hole per *batch*: the Keras layers
draw them per *image* (`Cutout(per_image=False)` reproduces the shared hole).
Distributions per image are the same. RandAugment picks its ops once per batch,
and `autoaugment` its sub-policy, as torchvision's AutoAugment does on the
reference's batched tensor.

Known limits of the underlying Keras layers (3.15):
- `keras.layers.AugMix` picks its ops with Python's `random` when it is traced:
  under `tf.function`/`tf.data` the op chains stay fixed for the life of the
  trace (magnitudes and mixing weights are redrawn), and `seed` does not make
  it reproducible.
- MixUp/CutMix sample Beta through a gamma op that XLA cannot compile on CPU:
  their views set `supports_jit = False`, so a model holding one as a layer
  attribute trains without XLA (Keras warns if `jit_compile=True` was asked).
- Random state lives in each layer's `SeedGenerator` variable. Built inside
  `strategy.scope()` that variable is mirrored and every replica draws the
  same random numbers (replica k's i-th image gets the same box as replica
  j's i-th image); built outside, replicas update one variable concurrently.
"""

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras import labels as labels_lib
from r2kd_keras.autoaugment import AutoAugment
from r2kd_keras.data.preprocessing import resolve_normalization

_PACKAGE = "r2kd_keras"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SecondView(keras.layers.Layer):
    """Adapts an image augmentation layer to the distiller's contract.

    It converts int labels to the float one-hot labels MixUp/CutMix need, and,
    for layers that expect pixel values in a fixed range (RandAugment, AugMix),
    maps the normalised batch back to [0, 1] with the dataset's mean/std,
    applies the layer with `value_range=(0, 1)`, and normalises again.

    Layers from outside core Keras (keras-cv) are called through a nested
    `tf.function`, which turns autograph back on: Keras 3's `fit` traces
    `train_step` with autograph off, and keras-cv's RandAugment/AugMix rely on
    it (`OperatorNotAllowedInGraphError` otherwise).

    Args:
        layer: a layer called as `layer({"images": x, "labels": y})` (core
            Keras or keras-cv), returning a dict or an image tensor.
        num_classes: number of classes, to one-hot int labels.
        normalization: `None` when `layer` works on any float values (MixUp,
            CutMix, Cutout), else the `(mean, std)` or dataset name the batch
            was normalised with (see `data.preprocessing.resolve_normalization`).

    Returns (when called):
        the input's structure: a dict with `"images"` (and `"labels"`, float
        one-hot, when labels were given), or an image tensor.

    Example:
    ```python
    view = SecondView(keras.layers.MixUp(alpha=0.2), num_classes=100)
    x_aug = view({"images": x, "labels": y_int})["images"]
    ```
    """

    requires_teacher = False

    def __init__(self, layer, num_classes, normalization=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be a positive int, got {num_classes!r}."
            )
        self.layer = layer
        self.num_classes = num_classes
        self.normalization = normalization
        self._mean_std = resolve_normalization(normalization)
        # Beta sampling (a gamma op) has no XLA kernel on CPU: a model holding
        # this view then compiles without XLA ("auto" picks False; True warns).
        beta_sampling = isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix))
        core = type(layer).__module__.startswith(("keras.", "r2kd_keras."))
        self.supports_jit = core and not beta_sampling and layer.supports_jit
        self._call_layer = self._layer_call
        if not core:
            # Keras's `fit` traces train_step with autograph off; layers written
            # for autograph (keras-cv's RandAugment: Python `if` on tensors)
            # then fail. A nested tf.function turns autograph back on for them.
            self._call_layer = tf.function(self._layer_call, reduce_retracing=True)

    def _layer_call(self, inputs, training):
        return self.layer(inputs, training=training)

    def build(self, *args, **kwargs):
        # Nothing to create: the wrapped layers build on their first call.
        self.built = True

    def _to_unit_range(self, images):
        if self._mean_std is None:
            return images
        mean, std = self._mean_std
        return images * ops.array(std, "float32") + ops.array(mean, "float32")

    def _from_unit_range(self, images):
        if self._mean_std is None:
            return images
        mean, std = self._mean_std
        return (images - ops.array(mean, "float32")) / ops.array(std, "float32")

    def _unpack(self, data):
        if isinstance(data, dict):
            if "images" not in data:
                raise ValueError(
                    f"The augmenter needs a dict with key 'images', got keys "
                    f"{sorted(data)}."
                )
            images, labels = data["images"], data.get("labels")
        else:
            images, labels = data, None
        images = ops.convert_to_tensor(images)
        if len(images.shape) != 4:
            raise ValueError(
                f"The augmenter needs a batch of images (B, H, W, C), got shape "
                f"{tuple(images.shape)}: apply it after `.batch()`."
            )
        if labels is not None:
            labels = labels_lib.to_one_hot(labels, self.num_classes, check_range=False)
        return ops.cast(images, "float32"), labels

    def _pack(self, data, images, labels):
        if not isinstance(data, dict):
            return images
        out = dict(data, images=images)
        if labels is not None:
            out["labels"] = labels
        return out

    def _augment(self, images, labels, training):
        inputs = {"images": self._to_unit_range(images)}
        if labels is not None:
            inputs["labels"] = labels
        out = self._call_layer(inputs, training)
        if isinstance(out, dict):
            images, labels = out["images"], out.get("labels", labels)
        else:
            images = out
        return self._from_unit_range(ops.cast(images, "float32")), labels

    def call(self, data, training=True):
        images, labels = self._unpack(data)
        images, labels = self._augment(images, labels, training)
        return self._pack(data, images, labels)

    def compute_output_spec(self, data, training=True):
        # The structure is that of the input; Keras cannot infer it through
        # the wrapped layer's dict call when tracing symbolically.
        return data

    def get_config(self):
        config = super().get_config()
        config.update(
            layer=keras.saving.serialize_keras_object(self.layer),
            num_classes=self.num_classes,
            normalization=self.normalization,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Cutout(keras.layers.Layer):
    """Cutout (DeVries & Taylor 2017) as in the reference: one square hole of
    side `size` whose centre is uniform over the image, clipped at the borders
    (so holes at an edge are smaller), filled with 0 (the dataset mean, as the
    batch is normalised). Labels pass through.

    Args:
        size: side of the hole in pixels (8 at 32x32, 16 at 64x64).
        per_image: one hole position per image (default), or one shared by
            the whole batch as in the reference.
        seed: seed of the hole positions.

    Example:
    ```python
    out = Cutout(8, seed=0)({"images": x, "labels": y})
    ```
    """

    def __init__(self, size, per_image=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}.")
        self.size = size
        self.per_image = per_image
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def _interval(self, n_draws, length):
        centre = keras.random.randint((n_draws, 1), 0, length, seed=self.generator)
        low = ops.clip(centre - self.size // 2, 0, length)
        high = ops.clip(centre + self.size // 2, 0, length)
        positions = ops.arange(length)[None, :]
        return (positions >= low) & (positions < high)

    def call(self, data, training=True):
        images = data["images"] if isinstance(data, dict) else data
        if not training:
            return data
        shape = ops.shape(images)
        n_draws = shape[0] if self.per_image else 1
        rows = self._interval(n_draws, shape[1])
        cols = self._interval(n_draws, shape[2])
        hole = rows[:, :, None, None] & cols[:, None, :, None]
        images = ops.where(hole, ops.zeros_like(images), images)
        return dict(data, images=images) if isinstance(data, dict) else images

    def compute_output_spec(self, data, training=True):
        return data

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, per_image=self.per_image, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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


# Hole side of the reference's cutout: 8 px at 32x32 (CIFAR), 16 px at 64x64.
def _cutout_size(image_size):
    return max(1, image_size // 4)


# Every name `make_augmenter` accepts; the runner's `--augment` reads it.
AUGMENTER_NAMES = ("none", "mixup", "cutmix", "cutout", "randaugment", "autoaugment",
                   "augmix", "cutmixpick")


def make_augmenter(name, num_classes, image_size, seed=None, normalization=None):
    """Builds the second-view augmenter of R2KD by name.

    | name | what | built on |
    |---|---|---|
    | `mixup` | `lam*x_i + (1-lam)*x_j`, `lam ~ Beta(0.2, 0.2)` per image | `keras.layers.MixUp` |
    | `cutmix` | box from a partner image, `lam ~ Beta(1, 1)` | `ReferenceCutMix` (a `keras.layers.CutMix`) |
    | `cutout` | one zero hole, `image_size // 4` px (8 at 32, 16 at 64) | `Cutout` |
    | `randaugment` | 2 random ops, magnitudes up to 0.5 | `keras.layers.RandAugment` |
    | `autoaugment` | the reference's torchvision AutoAugment: CIFAR10 policy at `image_size <= 32`, IMAGENET above; one sub-policy per batch | `AutoAugment` (`r2kd_keras.autoaugment`) |
    | `augmix` | AugMix, 3 chains of depth <= 3 | `keras.layers.AugMix` |
    | `cutmixpick` | CutMix, keep the highest-teacher-entropy images | `CutMixPick` (needs `teacher=`) |
    | `none` | no second view | returns `None` |

    RandAugment, AutoAugment and AugMix expect pixel values in a fixed range
    while the batch is normalised: the augmenter maps it back to [0, 1] with
    `normalization`, applies the layer with `value_range=(0, 1)` and
    normalises again (what the reference does around torchvision's
    AutoAugment).

    Args:
        name: one of the names above (case-insensitive).
        num_classes: number of classes (int labels are one-hot encoded).
        image_size: image height/width; sets the cutout hole size.
        seed: seed of the random draws; equal seeds give equal outputs.
        normalization: mean/std the batch was normalised with (a dataset name
            or a `(mean, std)` pair, e.g. `info.normalization` of a loader);
            only used by `randaugment`, `autoaugment` and `augmix`; defaults to
            CIFAR-100's at `image_size <= 32`, ImageNet's otherwise.

    Returns:
        a `SecondView` (call it as `augmenter({"images": x, "labels": y})`),
        a `CutMixPick` (call it with `teacher=fn` as well), or `None`.

    Example:
    ```python
    augmenter = make_augmenter("cutmix", num_classes=100, image_size=32, seed=42)
    x_aug = augmenter({"images": x, "labels": y})["images"]
    ```
    """
    key = str(name).lower()
    if key not in AUGMENTER_NAMES:
        raise ValueError(
            f"Unknown augmenter name={name!r}; use one of {', '.join(AUGMENTER_NAMES)}."
        )
    if key == "none":
        return None
    if key == "cutmixpick":
        return CutMixPick(num_classes, alpha=1.0, seed=seed)
    if normalization is None:
        normalization = "cifar100" if image_size <= 32 else "imagenet"
    factories = {
        "mixup": lambda: (keras.layers.MixUp(alpha=0.2, seed=seed), None),
        "cutmix": lambda: (ReferenceCutMix(alpha=1.0, seed=seed), None),
        "cutout": lambda: (Cutout(_cutout_size(image_size), seed=seed), None),
        "randaugment": lambda: (
            keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.5,
                                     seed=seed),
            normalization,
        ),
        "autoaugment": lambda: (
            AutoAugment("cifar10" if image_size <= 32 else "imagenet",
                        value_range=(0, 1), seed=seed),
            normalization,
        ),
        "augmix": lambda: (
            keras.layers.AugMix(value_range=(0, 1), seed=seed), normalization
        ),
    }
    layer, layer_normalization = factories[key]()
    return SecondView(layer, num_classes, normalization=layer_normalization, name=key)
