"""`get_model` / `list_models`: names, aliases, defaults and argument errors."""

import keras
import pytest

from r2kd_keras import models
from r2kd_keras.models import get_model, list_models

ISSUE_NAMES = [
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2",
    "vgg8", "vgg11", "vgg13", "vgg16", "vgg19", "mobilenetv2", "shufflenetv1",
    "shufflenetv2", "resnet18", "resnet34", "resnet50", "mobilenetv1",
]


def test_list_models_names_every_architecture_of_the_issue_once():
    assert sorted(list_models()) == sorted(ISSUE_NAMES)


def test_builders_are_exported_and_agree_with_the_registry():
    for name in ("resnet8", "shufflenetv2", "mobilenetv1"):
        assert callable(getattr(models, name))
        assert name in models.__all__
    direct = models.resnet8(10)
    assert direct.count_params() == get_model("resnet8", 10).count_params()


def test_model_is_functional_and_named():
    model = get_model("wrn_16_1", 10)
    assert isinstance(model, keras.Model)
    assert type(model).__name__ == "Functional"
    assert model.name == "wrn_16_1"
    assert model.layers[-1].name == "logits"
    assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize(
    "alias,canonical",
    [("MobileNetV2", "mobilenetv2"), ("mobile_half", "mobilenetv2"),
     ("ShuffleV1", "shufflenetv1"), ("ShuffleV2", "shufflenetv2")],
)
def test_mdistiller_spellings_are_aliases(alias, canonical):
    model = get_model(alias, 10)
    assert model.name == canonical


def test_default_input_shape_is_the_native_size():
    assert get_model("resnet8", 10).input_shape == (None, 32, 32, 3)
    assert get_model("resnet18", 10).input_shape == (None, 224, 224, 3)


def test_grey_and_rectangular_inputs_are_accepted():
    assert get_model("resnet8", 10, (28, 28, 1)).output_shape == (None, 10)
    assert get_model("vgg8", 10, [40, 48, 3]).output_shape == (None, 10)


def test_numpy_ints_are_accepted():
    import numpy as np

    shape = np.zeros((2, 32, 32, 3)).shape[1:]
    model = get_model("resnet8", np.int64(10), tuple(np.int64(d) for d in shape))
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("name", ["resnet9", "ResNet18", "", None, 3])
def test_unknown_name_lists_valid_names(name):
    with pytest.raises(ValueError, match="Unknown model name") as info:
        get_model(name, 10)
    for valid in ("resnet8x4", "wrn_40_2", "shufflenetv2", "mobilenetv1"):
        assert valid in str(info.value)


@pytest.mark.parametrize("num_classes", [1, 0, -5])
def test_too_few_classes_is_a_value_error(num_classes):
    with pytest.raises(ValueError, match=f"num_classes={num_classes}"):
        get_model("resnet8", num_classes)


@pytest.mark.parametrize("num_classes", [2.5, True, "10", None])
def test_non_int_classes_is_a_type_error(num_classes):
    with pytest.raises(TypeError, match="`num_classes` must be an int"):
        get_model("resnet8", num_classes)


@pytest.mark.parametrize(
    "input_shape",
    [(32, 32), (1, 32, 32, 3), (32, 32, 0), (32.0, 32, 3), (-32, 32, 3), "32x32", 32],
)
def test_malformed_input_shape_is_a_value_error(input_shape):
    with pytest.raises(ValueError, match=r"`input_shape` must be \(height, width, channels\)"):
        get_model("resnet8", 10, input_shape)


@pytest.mark.parametrize(
    "name,input_shape,minimum",
    [("resnet8", (3, 32, 3), 4), ("vgg8", (32, 7, 3), 8), ("mobilenetv2", (15, 15, 3), 16),
     ("shufflenetv2", (4, 4, 3), 8), ("resnet18", (31, 224, 3), 32)],
)
def test_too_small_input_names_the_minimum(name, input_shape, minimum):
    with pytest.raises(ValueError, match=f"height and width >= {minimum}"):
        get_model(name, 10, input_shape)
    # the minimum itself builds
    assert get_model(name, 10, (minimum, minimum, 3)).output_shape == (None, 10)
