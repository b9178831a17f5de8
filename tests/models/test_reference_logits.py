"""Same weights, same images, same logits as the PyTorch reference implementations.

The expected logits were computed by PyTorch (torch 2.13, CPU, `model.eval()`) on
the reference code, with every weight set by `_deterministic.deterministic_weights`
on the Keras model and carried over layer by layer (conv kernels HWIO -> OIHW,
Dense kernels transposed, BatchNorm gamma/beta/moving stats -> weight/bias/running
stats), on `deterministic_images(2, size, size)` transposed to NCHW:
- 32x32: megvii-research/mdistiller @ a08d46f, mdistiller/models/cifar/
  (resnet8, wrn_16_2, vgg8_bn, mobile_half, ShuffleV1);
- 64x64: Seonghak35/R2KD @ ece240e, mdistiller/models/tiny/ (resnet8x4, vgg8_bn with
  its extra pool, ShuffleV2).
The same check over all 25 models (all sizes; ResNet-18/34/50 and MobileNetV1 at
224x224 against mdistiller/models/imagenet/) agreed to a relative 1e-6.
Any difference in padding, stride placement, shortcut, channel order of the
shuffle/split, pooling or BatchNorm epsilon moves these numbers by far more than
the tolerance.
"""

import numpy as np
import pytest

from r2kd_keras.models import get_model
from tests.models._deterministic import deterministic_images, deterministic_weights

TORCH_LOGITS = {
    ("resnet8", 32): [
        [0.1280287, 0.07083736, -0.0225603, -0.104427, -0.132919, -0.09347357, -0.006252005, 0.08416509, 0.1315638, 0.1117177],
        [0.1234182, 0.06640509, -0.02454894, -0.1029555, -0.1287396, -0.08872235, -0.003357409, 0.08372357, 0.1280118, 0.1068708],
    ],
    ("resnet8x4", 64): [
        [0.0720725, 0.102249, 0.08016402, 0.01710571, -0.05469566, -0.09854102, -0.09202018, -0.03846606, 0.03474881, 0.09020289],
        [0.07240614, 0.1024222, 0.08008838, 0.0168198, -0.0550457, -0.09877628, -0.09202041, -0.03823114, 0.0350988, 0.09048907],
    ],
    ("wrn_16_2", 32): [
        [0.02470634, 0.1158468, 0.1477758, 0.1041737, 0.007326402, -0.09326553, -0.1461876, -0.1243905, -0.03901494, 0.06630189],
        [0.038921, 0.1263697, 0.1492283, 0.09581354, -0.006573413, -0.1056005, -0.1506532, -0.1187041, -0.02608309, 0.07986949],
    ],
    ("vgg8", 64): [
        [-0.05807694, 0.02272433, 0.09191075, 0.1141198, 0.07800007, 0.00201298, -0.07500298, -0.1136835, -0.09425816, -0.0266557],
        [-0.05807657, 0.02272352, 0.09190918, 0.1141183, 0.07799935, 0.00201345, -0.07500157, -0.1136818, -0.09425715, -0.02665582],
    ],
    ("mobilenetv2", 32): [
        [0.0829529, 0.01916228, -0.05442256, -0.100191, -0.09474986, -0.04088027, 0.03388401, 0.09132951, 0.1020948, 0.06067741],
        [0.08295291, 0.01916228, -0.05442256, -0.100191, -0.09474987, -0.04088028, 0.03388401, 0.09132952, 0.1020948, 0.06067741],
    ],
    ("shufflenetv1", 32): [
        [0.1443304, 0.182917, 0.1280112, 0.007676431, -0.1165819, -0.181253, -0.1532822, -0.04696593, 0.08335549, 0.1710724],
        [0.1422259, 0.1788303, 0.124031, 0.005837076, -0.1153402, -0.1775651, -0.1490328, -0.04432714, 0.08303498, 0.1679564],
    ],
    ("shufflenetv2", 64): [
        [-0.09722485, -0.07916205, -0.02063802, 0.0484345, 0.09275122, 0.08966101, 0.04074333, -0.02899904, -0.08391945, -0.09594701],
        [-0.09722453, -0.07918356, -0.02067037, 0.04840786, 0.09274389, 0.08967675, 0.04077409, -0.02896899, -0.08390546, -0.09595624],
    ],
}


@pytest.mark.parametrize("name,size", sorted(TORCH_LOGITS))
def test_logits_match_pytorch_reference(name, size):
    model = get_model(name, 10, (size, size, 3))
    deterministic_weights(model)
    logits = np.asarray(model(deterministic_images(2, size, size), training=False))
    np.testing.assert_allclose(logits, TORCH_LOGITS[(name, size)], rtol=0, atol=2e-6)
