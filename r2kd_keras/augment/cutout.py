"""`Cutout`: the reference's one square hole per image (or per batch)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="r2kd_keras")
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
