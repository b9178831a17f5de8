"""Loading PyTorch checkpoints of the reference architectures, without PyTorch.

The fixtures in tests/fixtures/torch were written by PyTorch 1.13 from the reference
model definitions (see make_fixtures.py there), with the eval-mode logits PyTorch
computed; no test here needs torch.
"""

import json
import lzma
import os
import pickle
import shutil
import zipfile

import keras
import numpy as np
import pytest

from r2kd_keras.models import get_model, list_models, load_torch_checkpoint
from r2kd_keras.models.torch_checkpoint import (
    TorchCheckpointError,
    UnsafeCheckpointError,
    read_torch_checkpoint,
)
from r2kd_keras.models.torch_checkpoint.mapping import targets

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "torch")
IMAGES = np.load(os.path.join(FIXTURES, "images.npy"))
FORMATS = ("zip", "legacy")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """`checkpoints(name)`: the path of a fixture, decompressing `.xz` ones once."""
    folder = tmp_path_factory.mktemp("torch")

    def path(name):
        plain = os.path.join(FIXTURES, name)
        if os.path.exists(plain):
            return plain
        target = folder / name
        if not target.exists():
            with lzma.open(plain + ".xz") as packed, open(target, "wb") as file:
                shutil.copyfileobj(packed, file)
        return str(target)

    return path


@pytest.fixture(scope="module")
def untouched():
    """A resnet8 (100 classes) that only failing loads see, with its initial weights."""
    model = get_model("resnet8", 100)
    return model, [np.array(w) for w in model.get_weights()]


def _assert_unchanged(model, before):
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def _batchnorm_count(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


# --- Same logits as PyTorch -----------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflenetv1"])
def test_logits_equal_pytorch_from_both_formats(checkpoints, name):
    model = get_model(name, 100)
    expected = np.load(os.path.join(FIXTURES, f"{name}_logits.npy"))
    for file_format in FORMATS:
        # Zeros first, so that each format's load has to provide every value.
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])
        report = load_torch_checkpoint(model, checkpoints(f"{name}_{file_format}.pth"))
        logits = np.asarray(model(IMAGES, training=False))
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4, err_msg=file_format)
        assert report.file_format == file_format
        assert len(report.loaded) == len(model.weights)
        assert len(report.ignored) == _batchnorm_count(model)
        assert all(key.endswith(".num_batches_tracked") for key in report.ignored)
        assert report.unexpected == report.missing == ()


def test_batchnorm_statistics_matter_in_the_fixture(checkpoints):
    # Guards the test above: were the running statistics ignored (or swapped), the
    # logits would move by far more than its tolerance.
    model = get_model("resnet8", 100)
    load_torch_checkpoint(model, checkpoints("resnet8_zip.pth"))
    expected = np.load(os.path.join(FIXTURES, "resnet8_logits.npy"))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
            layer.moving_mean.assign(variance)
            layer.moving_variance.assign(mean**2 + 1.0)
    logits = np.asarray(model(IMAGES, training=False))
    assert np.abs(logits - expected).max() > 0.1


def test_repdistiller_container_and_report(checkpoints):
    model = get_model("resnet8", 100)
    path = checkpoints("resnet8_legacy.pth")
    report = load_torch_checkpoint(model, path)
    assert report.container == "model"
    assert report.epoch == 240
    assert report.accuracy == pytest.approx(73.25)
    # DataParallel's prefix is stripped from the keys.
    assert "conv1.weight" in report.loaded and "fc.bias" in report.loaded
    assert not any(key.startswith("module.") for key in report.loaded + report.ignored)
    text = str(report)
    assert f"Loaded {len(model.weights)} tensors from 'model' of {path}" in text
    assert "legacy format" in text and "Ignored 9 (num_batches_tracked)" in text
    assert "epoch 240, accuracy 73.25" in text


def test_net_and_state_dict_containers(checkpoints):
    reference = get_model("resnet8", 100)
    load_torch_checkpoint(reference, checkpoints("resnet8_zip.pth"))
    model = get_model("resnet8", 100)
    report = load_torch_checkpoint(model, checkpoints("resnet8_net_legacy.pth"))
    assert (report.container, report.accuracy, report.epoch) == ("net", 71.5, 199)
    # The float16 copy of the same weights: equal to float16 precision.
    for expected, loaded in zip(reference.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(loaded, expected.astype(np.float16), rtol=0, atol=0)


def test_unexpected_tensor_strict_and_not(checkpoints):
    path = checkpoints("resnet8_extra_zip.pth")
    model = get_model("resnet8", 100)
    before = model.get_weights()
    expected = r"1 tensors have no place in the model: 'proj\.weight'"
    with pytest.raises(TorchCheckpointError, match=expected):
        load_torch_checkpoint(model, path)
    _assert_unchanged(model, before)
    report = load_torch_checkpoint(model, path, strict=False)
    assert report.container == "state_dict" and report.unexpected == ("proj.weight",)
    assert "Unexpected, not loaded: 'proj.weight'" in str(report)
    assert len(report.loaded) == len(model.weights)


def test_get_model_shortcut(checkpoints):
    model = get_model("resnet8", 100, (32, 32, 3), torch_checkpoint=checkpoints("resnet8_zip.pth"))
    expected = np.load(os.path.join(FIXTURES, "resnet8_logits.npy"))
    np.testing.assert_allclose(np.asarray(model(IMAGES, training=False)), expected, atol=1e-4)


@pytest.mark.parametrize("file_format", FORMATS)
def test_reads_every_dtype_and_layout(file_format):
    checkpoint, found_format = read_torch_checkpoint(
        os.path.join(FIXTURES, f"dtypes_{file_format}.pth")
    )
    assert found_format == file_format
    expected = np.load(os.path.join(FIXTURES, "dtypes_expected.npz"))
    assert sorted(checkpoint) == sorted(expected.files)
    for name in expected.files:
        assert checkpoint[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(checkpoint[name], expected[name], err_msg=name)


# --- The mapping, by structure, for every architecture ----------------------------------

with open(os.path.join(FIXTURES, "state_dict_shapes.json")) as _file:
    REFERENCE_SHAPES = json.load(_file)
_IMAGENET = ("resnet18", "resnet34", "resnet50", "mobilenetv1")


def _check_mapping(name):
    model = get_model(name, 1000 if name in _IMAGENET else 100)
    expected = {
        key: tuple(shape)
        for key, shape in REFERENCE_SHAPES[name]
        if not key.endswith("num_batches_tracked")
    }
    mapped = {target.key: target.torch_shape for target in targets(model)}
    assert len(mapped) == len(model.weights)  # one tensor per variable, no collisions
    assert mapped == expected


# The fixtures above cover each rule but ShuffleNetV2's; here also the widest published
# teacher and VGG's two-conv blocks. The large sweep covers all 25 architectures.
@pytest.mark.parametrize("name", ["resnet32x4", "vgg13", "shufflenetv2"])
def test_mapping_matches_reference_state_dict(name):
    _check_mapping(name)


@pytest.mark.large
@pytest.mark.parametrize("name", list_models())
def test_mapping_matches_reference_state_dict_all(name):
    _check_mapping(name)


def test_every_zoo_architecture_has_a_reference_state_dict():
    assert sorted(REFERENCE_SHAPES) == sorted(list_models())


# --- Safety: nothing from the file runs -------------------------------------------------


class _Payload:
    """Pickles as a call of `function(*args)`: what a malicious checkpoint does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _global_call(module, name, argument):
    """A protocol-2 pickle, written opcode by opcode, calling `module.name(argument)`."""
    return (
        b"\x80\x02c" + f"{module}\n{name}\n".encode()
        + pickle.dumps(argument, protocol=2)[2:-1]  # the argument, without PROTO and STOP
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )


def _payloads(marker):
    import subprocess

    touch = f"touch {marker}"
    return {
        "os.system (by opcodes)": (_global_call("os", "system", touch), "os.system"),
        # Pickled as the function's real module: posix on Linux.
        "posix.system": (
            pickle.dumps(_Payload(os.system, touch), protocol=2),
            f"{os.system.__module__}.system",
        ),
        "builtins.eval": (
            pickle.dumps({"model": _Payload(eval, f"open({str(marker)!r}, 'w')")}, protocol=2),
            "builtins.eval",
        ),
        "subprocess.Popen": (
            pickle.dumps([1, _Payload(subprocess.Popen, ["touch", str(marker)])], protocol=4),
            "subprocess.Popen",
        ),
    }


def _rewrite_zip(source, target, change):
    """Copies a zip checkpoint, each entry's bytes passed through `change(entry, data)`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for entry in old.namelist():
            new.writestr(entry, change(entry, old.read(entry)))


def test_payloads_are_live(tmp_path):
    # The refusals below mean something only if the payloads do run when unpickled.
    marker = tmp_path / "ran"
    pickle.loads(_global_call("os", "system", f"touch {marker}"))
    assert marker.exists()


@pytest.mark.parametrize(
    "payload", ["os.system (by opcodes)", "posix.system", "builtins.eval", "subprocess.Popen"]
)
@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_code_in_the_pickle_is_refused_and_never_runs(tmp_path, untouched, payload, container):
    marker = tmp_path / "ran"
    data, global_name = _payloads(marker)[payload]
    path = tmp_path / "evil.pth"
    if container == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", data)
            archive.writestr("archive/version", "3\n")
    else:
        path.write_bytes(data)
    model, before = untouched
    with pytest.raises(UnsafeCheckpointError, match=rf"names the global `{global_name}`") as error:
        load_torch_checkpoint(model, path)
    assert "Nothing from the file was executed" in str(error.value)
    assert not marker.exists()
    _assert_unchanged(model, before)


def test_refused_inside_a_real_checkpoint(tmp_path, checkpoints):
    # A genuine zip checkpoint whose data.pkl gains a call of os.system after its tensors.
    marker = tmp_path / "ran"
    path = tmp_path / "tampered.pth"
    call = _global_call("os", "system", f"touch {marker}")[2:-1]  # without PROTO and STOP
    # Replaces the final STOP: the pickle then builds (state dict, result of the call).
    _rewrite_zip(
        checkpoints("resnet8_zip.pth"),
        path,
        lambda entry, data: data[:-1] + call + b"\x86." if entry.endswith("data.pkl") else data,
    )
    with pytest.raises(UnsafeCheckpointError, match="`os.system`"):
        read_torch_checkpoint(path)
    assert not marker.exists()


def test_whole_pickled_model_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(
        b"\x80\x02cmdistiller.models.cifar.resnet\nResNet\n)\x81}b."  # NEWOBJ + BUILD
    )
    expected = r"`mdistiller\.models\.cifar\.resnet\.ResNet`"
    with pytest.raises(UnsafeCheckpointError, match=expected):
        read_torch_checkpoint(path)


# --- Bad input: clear errors, the model left as it was -----------------------------------


def test_other_class_count_names_tensor_and_shapes(checkpoints):
    model = get_model("resnet8", 10)
    before = model.get_weights()
    with pytest.raises(TorchCheckpointError) as error:
        load_torch_checkpoint(model, checkpoints("resnet8_zip.pth"))
    message = str(error.value)
    assert "tensor 'fc.weight' has shape (100, 64) in the checkpoint" in message
    assert "layer 'logits' needs (10, 64)" in message
    assert "num_classes=100" in message and "left unchanged" in message
    _assert_unchanged(model, before)


def test_other_architecture_names_tensor_and_shapes(checkpoints, untouched):
    model, before = untouched
    expected = r"tensor 'bn1\.weight' has shape \(64,\) .* needs \(16,\)"
    with pytest.raises(TorchCheckpointError, match=expected):
        load_torch_checkpoint(model, checkpoints("wrn_16_1_zip.pth"))
    _assert_unchanged(model, before)


def test_missing_tensors_strict_lists_them_and_lenient_loads_the_rest(checkpoints):
    path = checkpoints("resnet8_zip.pth")
    model = get_model("resnet14", 100)  # one more block per stage than resnet8
    before = model.get_weights()
    with pytest.raises(TorchCheckpointError) as error:
        load_torch_checkpoint(model, path)
    assert "tensors the model needs are missing: 'layer1.1.conv1.weight'" in str(error.value)
    _assert_unchanged(model, before)

    report = load_torch_checkpoint(model, path, strict=False)
    assert {"layer1.1.conv1.weight", "layer3.1.bn2.running_var"} <= set(report.missing)
    assert len(report.loaded) + len(report.missing) == len(model.weights)
    assert "Missing, left as they were" in str(report)
    resnet8 = get_model("resnet8", 100)
    load_torch_checkpoint(resnet8, path)
    np.testing.assert_array_equal(
        model.get_layer("stage2_block1_conv1").kernel.numpy(),
        resnet8.get_layer("stage2_block1_conv1").kernel.numpy(),
    )
    np.testing.assert_array_equal(
        model.get_layer("stage2_block2_conv1").kernel.numpy(),
        before[[v.path for v in model.weights].index("stage2_block2_conv1/kernel")],
    )


@pytest.mark.parametrize("file_format", FORMATS)
def test_truncated_file(tmp_path, checkpoints, untouched, file_format):
    with open(checkpoints(f"resnet8_{file_format}.pth"), "rb") as file:
        data = file.read()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    model, before = untouched
    with pytest.raises(TorchCheckpointError, match="truncated or corrupt"):
        load_torch_checkpoint(model, path)
    _assert_unchanged(model, before)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello, not a checkpoint\n", "neither a zip archive nor a pickle"),
        (pickle.dumps({"model": {"fc.weight": [1.0]}}, protocol=2), "no PyTorch magic number"),
        (b"", "neither a zip archive nor a pickle"),
    ],
    ids=["text", "plain-pickle", "empty"],
)
def test_not_a_checkpoint(tmp_path, untouched, content, message):
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    model, before = untouched
    with pytest.raises(TorchCheckpointError, match=message):
        load_torch_checkpoint(model, path)
    _assert_unchanged(model, before)


def test_zip_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat.txt", "meow")
    with pytest.raises(TorchCheckpointError, match="not a PyTorch checkpoint.*data.pkl"):
        read_torch_checkpoint(path)


def test_bad_arguments(tmp_path, checkpoints, untouched):
    path = checkpoints("resnet8_zip.pth")
    model, _ = untouched
    with pytest.raises(FileNotFoundError, match=r"received path=.*missing\.pth.*does not exist"):
        load_torch_checkpoint(model, tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="`path` must be a str or os.PathLike.*received path=3"):
        read_torch_checkpoint(3)
    with pytest.raises(TypeError, match="`model` must be a keras.Model.*received str"):
        load_torch_checkpoint("resnet8", path)
    with pytest.raises(ValueError, match="`strict` must be True or False; received strict='yes'"):
        load_torch_checkpoint(model, path, strict="yes")
    inputs = keras.Input((32, 32, 3))
    custom = keras.Model(inputs, keras.layers.Dense(3)(inputs), name="my_net")
    with pytest.raises(ValueError, match="received a model named 'my_net'"):
        load_torch_checkpoint(custom, path)


def test_storage_shorter_than_its_tensors(tmp_path, checkpoints):
    # A zip whose storage entry is shorter than its tensors need.
    path = tmp_path / "short.pth"
    _rewrite_zip(
        checkpoints("resnet8_zip.pth"),
        path,
        lambda entry, data: data[:-4] if "/data/" in entry else data,
    )
    with pytest.raises(TorchCheckpointError, match="truncated or corrupt"):
        read_torch_checkpoint(path)


def test_nothing_in_common_is_an_error_even_when_lenient(checkpoints, untouched):
    model, before = untouched
    with pytest.raises(TorchCheckpointError, match=r"\(strict=False\): 47 tensors the model needs"):
        load_torch_checkpoint(model, checkpoints("mobilenetv2_zip.pth"), strict=False)
    _assert_unchanged(model, before)
