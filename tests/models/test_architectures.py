"""Every registered model: parameter counts against the PyTorch references, output
shape at the CIFAR (32x32) and TinyImageNet (64x64) sizes, finite logits."""

import numpy as np
import pytest

from r2kd_keras.models import get_model, list_models

# sum(p.numel() for p in model.parameters()) of the PyTorch reference models, counted
# with torch 2.13 (CPU) on the files as published:
# - 32x32, 100 classes: megvii-research/mdistiller @ a08d46f, mdistiller/models/cifar/
#   (resnet.py, wrn.py, vgg.py `vgg*_bn`, mobilenetv2.py `mobile_half`, ShuffleNetv1.py
#   `ShuffleV1`, ShuffleNetv2.py `ShuffleV2`).
# - 64x64, 200 classes: Seonghak35/R2KD @ ece240e, mdistiller/models/tiny/ (same files
#   with whole-map pooling; `mobile_half(img_size=64)`). Its ShuffleV1 keeps a 4x4
#   pool and fails at 64x64 (3840 features into a 960-input classifier): the number
#   given is the one its layers would have, i.e. its 32x32 model at 200 classes.
# PyTorch's BatchNorm running statistics are buffers, not parameters: they are
# compared with Keras's trainable weights only.
REFERENCE_PARAMS = {
    #  name: (32x32 at 100 classes, 64x64 at 200 classes)
    "resnet8": (83_892, 90_392),
    "resnet14": (181_108, 187_608),
    "resnet20": (278_324, 284_824),
    "resnet32": (472_756, 479_256),
    "resnet44": (667_188, 673_688),
    "resnet56": (861_620, 868_120),
    "resnet110": (1_736_564, 1_743_064),
    "resnet8x4": (1_233_540, 1_259_240),
    "resnet32x4": (7_433_860, 7_459_560),
    "wrn_16_1": (180_916, 187_416),
    "wrn_16_2": (703_284, 716_184),
    "wrn_40_1": (569_780, 576_280),
    "wrn_40_2": (2_255_156, 2_268_056),
    "vgg8": (3_965_028, 4_016_328),
    "vgg11": (9_277_284, 9_328_584),
    "vgg13": (9_462_180, 9_513_480),
    "vgg16": (14_774_436, 14_825_736),
    "vgg19": (20_086_692, 20_137_992),
    "mobilenetv2": (812_836, 940_936),
    "shufflenetv1": (949_258, 1_045_358),
    "shufflenetv2": (1_355_528, 1_458_028),
}

# megvii-research/mdistiller @ a08d46f, mdistiller/models/imagenet/ (resnet.py,
# mobilenetv1.py), 224x224, 1000 classes, counted the same way.
IMAGENET_REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "mobilenetv1": 4_231_976,
}

# The slowest to build and run here; their parameter counts are still checked at
# 32x32 in the default run.
_SLOW_AT_64 = {"resnet110", "resnet32x4", "wrn_40_2", "vgg16", "vgg19"}


def _trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _check_logits(model, batch, num_classes):
    logits = model(np.random.default_rng(0).normal(size=(batch,) + model.input_shape[1:]))
    logits = np.asarray(logits)
    assert logits.shape == (batch, num_classes)
    assert np.isfinite(logits).all()
    # Logits, not probabilities: rows are not on the simplex.
    assert not np.allclose(logits.sum(axis=1), 1.0, atol=1e-3)


def test_every_reference_model_is_registered():
    assert set(list_models()) == set(REFERENCE_PARAMS) | set(IMAGENET_REFERENCE_PARAMS)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_cifar_size_matches_reference(name):
    model = get_model(name, 100, (32, 32, 3))
    expected = REFERENCE_PARAMS[name][0]
    assert abs(_trainable_params(model) - expected) <= 0.01 * expected
    assert _trainable_params(model) == expected  # in fact exact
    _check_logits(model, batch=2, num_classes=100)


def _tiny_params(name):
    marks = [pytest.mark.large] if name in _SLOW_AT_64 else []
    return pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", [_tiny_params(n) for n in sorted(REFERENCE_PARAMS)])
def test_tinyimagenet_size_matches_reference(name):
    model = get_model(name, 200, (64, 64, 3))
    assert _trainable_params(model) == REFERENCE_PARAMS[name][1]
    _check_logits(model, batch=2, num_classes=200)


@pytest.mark.parametrize("name", sorted(IMAGENET_REFERENCE_PARAMS))
def test_imagenet_size_matches_reference(name):
    model = get_model(name, 1000)
    assert model.input_shape == (None, 224, 224, 3)
    assert _trainable_params(model) == IMAGENET_REFERENCE_PARAMS[name]
    _check_logits(model, batch=1, num_classes=1000)


def test_vgg_pools_before_last_block_only_at_64():
    """R2KD's VGG: the extra max-pool appears when the input height is 64."""
    at_32 = {layer.name for layer in get_model("vgg8", 10, (32, 32, 3)).layers}
    at_64 = get_model("vgg8", 10, (64, 64, 3))
    assert "pool3" not in at_32 and "pool2" in at_32
    assert at_64.get_layer("pool3").output.shape[1:3] == (4, 4)
    assert at_64.get_layer("block4_conv1").output.shape[1:3] == (4, 4)
