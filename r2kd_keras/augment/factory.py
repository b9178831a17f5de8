"""`make_augmenter`: the second-view augmenters of R2KD by name, as the
runner's `--augment` gives them."""

import keras

from r2kd_keras.augment.autoaugment import AutoAugment
from r2kd_keras.augment.cutmix import CutMixPick
from r2kd_keras.augment.cutmix import ReferenceCutMix
from r2kd_keras.augment.cutout import Cutout
from r2kd_keras.augment.second_view import SecondView


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
    | `autoaugment` | the reference's torchvision AutoAugment: CIFAR10 policy at `image_size <= 32`, IMAGENET above; one sub-policy per batch | `AutoAugment` (`r2kd_keras.augment.autoaugment`) |
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
