"""The second view of R2KD: augmenters that turn a clean training batch into
the augmented batch `A(x)` the teachers and the student also see.

Built on core Keras 3 layers (`MixUp`, `CutMix`, `RandAugment`, `AugMix`),
a small `Cutout` layer and `AutoAugment` (`r2kd_keras.augment.autoaugment`).
Every augmenter follows the Keras dict protocol:

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

from r2kd_keras.augment.autoaugment import AutoAugment
from r2kd_keras.augment.cutmix import CutMixPick
from r2kd_keras.augment.cutmix import ReferenceCutMix
from r2kd_keras.augment.cutout import Cutout
from r2kd_keras.augment.factory import AUGMENTER_NAMES
from r2kd_keras.augment.factory import make_augmenter
from r2kd_keras.augment.second_view import SecondView
