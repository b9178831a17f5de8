"""`SecondView`: any image augmentation layer adapted to the distiller's
contract (one-hot labels, the pixel range the layer expects)."""

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras import labels as labels_lib
from r2kd_keras.data.preprocessing import resolve_normalization


@keras.saving.register_keras_serializable(package="r2kd_keras")
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
