"""Symmetric label noise: a fixed share of the labels moved to another class."""

import numpy as np

# Mixed into the seed so the noise draw never replays another
# `default_rng(seed)` stream of the same seed (e.g. the loader's subset draw).
_STREAM = 0x1AB31


def symmetric_label_noise(labels, rate, num_classes, seed=0):
    """Replaces `round(rate * len(labels))` labels by a uniformly random
    *other* class (symmetric noise, as in the noisy-label literature's
    "sym-20%/40%").

    The noisy labels are drawn without replacement, so the share is exact,
    and each moves by a random non-zero offset modulo `num_classes`, so it
    never keeps its class and every other class is equally likely.

    Args:
        labels: int class ids in `[0, num_classes)`, shape `(n,)` (or
            `(n, 1)`, flattened).
        rate: share of labels to replace, in `[0, 1]`.
        num_classes: number of classes (>= 2).
        seed: the draw is fixed per seed.

    Returns:
        `(noisy_labels, mask)`: int32 labels of shape `(n,)`, and the boolean
        mask of the replaced ones.

    Example:
    >>> noisy, mask = symmetric_label_noise(np.arange(10) % 10, 0.2, 10, seed=0)
    >>> int(mask.sum()), bool(np.all(noisy[mask] != np.arange(10)[mask]))
    (2, True)
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be class ids, a 1-D int array, got dtype {labels.dtype} of "
            f"shape {labels.shape}; pass one-hot labels as labels.argmax(-1).")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for num_classes={num_classes}, "
            f"got values in [{labels.min()}, {labels.max()}].")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
            or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be a share in [0, 1] (e.g. 0.2 for 20%), got {rate!r}.")
    rng = np.random.default_rng([_STREAM, seed])
    count = int(round(rate * len(labels)))
    mask = np.zeros(len(labels), bool)
    mask[rng.choice(len(labels), count, replace=False)] = True
    noisy = labels.astype(np.int32)
    offsets = rng.integers(1, num_classes, count)
    noisy[mask] = (noisy[mask] + offsets) % num_classes
    return noisy, mask
