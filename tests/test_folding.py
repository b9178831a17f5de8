"""`folding.fold_batchnorm` and `inference_teacher`: the folded model against
the unfolded one in inference mode (the reference), in float32 and bfloat16,
on the zoo's architectures; a conv + BatchNorm worked by hand in numpy; what
is left in place or refused; the distiller's folded teachers."""

import keras
import numpy as np
import pytest

from r2kd_keras import R2KDDistiller
from r2kd_keras import folding
from r2kd_keras import pruning
from r2kd_keras.precision import reduced_precision_copy
from r2kd_keras.models import get_model

BN = keras.layers.BatchNormalization


def count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


def randomise_batchnorm(model, seed=0):
    """Moving statistics and affine parameters far from the identity, so a
    fold that dropped or misplaced any of them changes the logits."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomise_batchnorm(layer, seed + 1)
        elif isinstance(layer, BN):
            size = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, size))
            layer.beta.assign(rng.normal(0.0, 0.3, size))
            layer.moving_mean.assign(rng.normal(0.0, 0.3, size))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, size))


def small_teacher(classes=10):
    """conv-BN-ReLU, depthwise-BN-ReLU, conv-BN, pooled logits: every fold
    kind in a model small enough to train and distil in a few seconds."""
    def bn(**kwargs):  # the zoo's momentum (PyTorch's 0.1)
        return BN(momentum=0.9, **kwargs)

    inputs = keras.Input((16, 16, 3))
    h = keras.layers.ReLU()(bn(name="bn1")(keras.layers.Conv2D(8, 3, name="conv1")(inputs)))
    h = keras.layers.ReLU()(bn()(keras.layers.DepthwiseConv2D(3, padding="same")(h)))
    h = bn()(keras.layers.Conv2D(8, 1, name="conv2")(h))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(h))


def images(n=16, size=32, seed=1):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def infer(model, x):
    return np.asarray(model(x, training=False), dtype="float32")


def compare(reference, candidate):
    """(max abs diff relative to the logits' range, top-1 agreement)."""
    spread = np.abs(reference).max()
    diff = np.abs(candidate - reference).max() / spread
    return diff, np.mean(candidate.argmax(-1) == reference.argmax(-1))


# ------------------------------------------------------------------ by hand
def test_conv_and_batchnorm_folded_by_hand():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 2, 4)).astype("float32")
    bias = rng.normal(size=4).astype("float32")
    gamma, beta = np.array([0.5, 2.0, -1.0, 1.5]), np.array([0.1, -0.2, 0.3, 0.0])
    mean, variance = np.array([1.0, -2.0, 0.5, 0.0]), np.array([4.0, 0.25, 1.0, 9.0])
    eps = 1e-3
    inputs = keras.Input((5, 5, 2))
    conv = keras.layers.Conv2D(4, 3, use_bias=True, name="conv")
    outputs = BN(epsilon=eps, name="bn")(conv(inputs))
    model = keras.Model(inputs, outputs)
    conv.set_weights([kernel, bias])
    model.get_layer("bn").set_weights([gamma, beta, mean, variance])

    folded = folding.fold_batchnorm(model)

    x = rng.normal(size=(2, 5, 5, 2)).astype("float32")
    patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
    conv_out = np.einsum("bhwcij,ijco->bhwo", patches, kernel) + bias
    want = gamma * (conv_out - mean) / np.sqrt(variance + eps) + beta
    np.testing.assert_allclose(infer(folded, x), want, rtol=1e-5, atol=1e-5)
    scale = gamma / np.sqrt(variance + eps)
    got_kernel, got_bias = folded.get_layer("conv").get_weights()
    np.testing.assert_allclose(got_kernel, kernel * scale, rtol=1e-6)
    np.testing.assert_allclose(got_bias, (bias - mean) * scale + beta, rtol=1e-6, atol=1e-7)
    assert count(folded, BN) == 0
    # The original is untouched.
    assert count(model, BN) == 1 and not model.get_layer("conv").get_weights()[1] is got_bias


# ---------------------------------------------------------------- the zoo
# (name, BatchNorms left in place: WRN is pre-activation, its bn1 and
# final_bn follow an Add).
ZOO = {
    "resnet8x4": 0,
    "wrn_16_2": 6,
    "vgg8": 0,
    "mobilenetv2": 0,
    "shufflenetv1": 0,
    "shufflenetv2": 0,
}
# Many small eager layers (and grouped convolutions, ~30 s per bfloat16 call
# on this CPU): 10-30 s per case. The depthwise and grouped folds are also
# covered by the small graph test below.
LARGE = ("mobilenetv2", "shufflenetv1", "shufflenetv2")
ZOO_CASES = [pytest.param(n, marks=pytest.mark.large) if n in LARGE else n for n in ZOO]
_teachers = {}


def zoo_teacher(name):
    """A randomised zoo teacher, its inputs and unfolded float32 logits (the
    reference), built once per test session."""
    if name not in _teachers:
        teacher = get_model(name, 100, (32, 32, 3))
        randomise_batchnorm(teacher)
        x = images(8)
        _teachers[name] = teacher, x, infer(teacher, x)
    return _teachers[name]


@pytest.mark.parametrize("name", ZOO_CASES)
def test_zoo_teacher_folded_matches_unfolded_float32(name):
    teacher, x, reference = zoo_teacher(name)
    folded = folding.fold_batchnorm(teacher)
    assert count(folded, BN) == ZOO[name]
    diff, agree = compare(reference, infer(folded, x))
    assert diff < 1e-5 and agree == 1.0, (diff, agree)


@pytest.mark.parametrize("name", ZOO_CASES)
def test_zoo_teacher_folded_in_bfloat16_errs_no_more_than_bfloat16(name):
    teacher, x, reference = zoo_teacher(name)
    bf16_diff, bf16_agree = compare(reference, infer(reduced_precision_copy(teacher, "bfloat16"), x))
    fold_diff, fold_agree = compare(
        reference, infer(folding.inference_teacher(teacher, "bfloat16"), x)
    )
    assert fold_diff < max(2 * bf16_diff, 0.01), (fold_diff, bf16_diff)
    assert fold_agree >= min(bf16_agree, 0.875), (fold_agree, bf16_agree)


def test_trained_batchnorm_statistics_fold_exactly():
    model = small_teacher()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = 2.0 * images(32, 16) + 1.0, np.arange(32) % 10
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    bn = model.get_layer("bn1")
    # The statistics moved away from their initial 0 and 1.
    assert np.abs(bn.moving_mean.numpy()).max() > 0.05
    assert np.abs(bn.moving_variance.numpy() - 1.0).max() > 0.05
    diff, agree = compare(infer(model, x), infer(folding.fold_batchnorm(model), x))
    assert diff < 1e-5 and agree == 1.0


def test_pruned_teacher_keeps_its_zeros_when_folded():
    teacher = small_teacher()
    randomise_batchnorm(teacher)
    pruned = pruning.prune_teacher(teacher, 0.3)
    folded = folding.fold_batchnorm(pruned)
    for name in ("conv1", "conv2", "logits"):
        before, after = pruned.get_layer(name).get_weights()[0], folded.get_layer(name).get_weights()[0]
        np.testing.assert_array_equal(after == 0, before == 0)
    x = images(8, 16)
    diff, agree = compare(infer(pruned, x), infer(folded, x))
    assert diff < 1e-5 and agree == 1.0


# ------------------------------------------------ graphs beyond the zoo
def test_depthwise_multiplier_dense_dropout_and_nested_models():
    inner_in = keras.Input((8, 8, 3))
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(inner_in)
    h = BN()(h)
    inner = keras.Model(inner_in, keras.layers.ReLU()(h), name="inner")
    sequential = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5), BN(), keras.layers.Dropout(0.5),
         keras.layers.Dense(4)],
        name="head",
    )
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 1, groups=3, use_bias=False)(inner(inputs))
    h = keras.layers.SpatialDropout2D(0.3)(BN()(h))
    outputs = sequential(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    randomise_batchnorm(model)

    folded = folding.fold_batchnorm(model, strict=True)

    x = images(4, 8)
    diff, agree = compare(infer(model, x), infer(folded, x))
    assert diff < 1e-5 and agree == 1.0
    assert count(folded, BN) == 0 and count(folded, keras.layers.Dropout) == 0
    assert count(folded.get_layer("inner"), BN) == 0
    head = folded.get_layer("head")
    assert count(head, BN) == 0 and count(head, keras.layers.Dropout) == 0


def after_activation(inputs):
    return BN(name="bn")(keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs))


def after_shared_output(inputs):
    conv = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    return keras.layers.Add()([conv, BN(name="bn")(conv)])


def after_add(inputs):
    return BN(name="bn")(keras.layers.Add(name="add")([inputs, inputs]))


def on_another_axis(inputs):
    return BN(axis=1, name="bn")(keras.layers.Conv2D(4, 3, name="conv")(inputs))


UNFOLDABLE = [
    (after_activation, "'conv' has an activation"),
    (after_shared_output, "the output of 'conv' also feeds other layers"),
    (after_add, "its input comes from 'add' \\(Add\\), not from a Conv or Dense"),
    (on_another_axis, "it normalises axis 1, not the channel axis 3 of 'conv'"),
]


@pytest.mark.parametrize("build,reason", UNFOLDABLE)
def test_batchnorm_that_cannot_fold_stays_or_is_refused_by_name(build, reason):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, build(inputs), name="m")
    randomise_batchnorm(model)
    folded = folding.fold_batchnorm(model)
    assert count(folded, BN) == 1
    x = images(2, 8)
    np.testing.assert_allclose(infer(folded, x), infer(model, x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=f"BatchNorm 'bn' of model 'm' cannot be folded: {reason}"):
        folding.fold_batchnorm(model, strict=True)


def test_refuses_subclassed_and_unbuilt_models():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="'net' is a subclassed Net.*fold_teachers=False"):
        folding.fold_batchnorm(Net(name="net"))
    with pytest.raises(ValueError, match="needs a built model; 'lazy'"):
        folding.fold_batchnorm(keras.Sequential([keras.layers.Dense(2)], name="lazy"))


# ----------------------------------------------------- inference_teacher
def test_inference_teacher_copies_only_when_asked():
    teacher = small_teacher()
    assert folding.inference_teacher(teacher, fold=False) is teacher
    runner = folding.inference_teacher(teacher, "bfloat16")
    assert runner is not teacher and not runner.trainable and count(runner, BN) == 0
    conv = next(l for l in runner.layers if isinstance(l, keras.layers.Conv2D))
    assert conv.compute_dtype == "bfloat16"

    class Net(keras.Model):
        def call(self, x):
            return x

    subclassed = Net()
    assert folding.inference_teacher(subclassed) is subclassed


# ------------------------------------------------------------- distiller
def distiller_and_batch(**kwargs):
    keras.utils.set_random_seed(0)
    teacher = small_teacher()
    randomise_batchnorm(teacher)
    distiller = R2KDDistiller(small_teacher(), teacher, **kwargs)
    distiller.compile(optimizer=keras.optimizers.SGD(0.05))
    return distiller, images(16, 16), np.arange(16) % 10


def test_distiller_folds_its_teachers_and_keeps_its_targets_and_losses():
    folded, x, y = distiller_and_batch()
    unfolded, _, _ = distiller_and_batch(fold_teachers=False)
    assert all(count(runner, BN) == 0 for runner in folded._teacher_runners)
    assert all(count(runner, BN) > 0 for runner in unfolded._teacher_runners)
    views = [x, x[::-1] * 0.5]
    for got, want in zip(folded._target_logits(views), unfolded._target_logits(views)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = folded.test_on_batch(x, y, return_dict=True)
    want = unfolded.test_on_batch(x, y, return_dict=True)
    for name in ("loss", "value_loss", "rank_loss"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert folded.get_config()["fold_teachers"] is True


def test_reference_mode_pruned_teacher_stays_unfolded():
    distiller, _, _ = distiller_and_batch(pruned_teacher_training=True)
    teacher_runner, pruned_runner = distiller._teacher_runners
    assert count(teacher_runner, BN) == 0
    assert count(pruned_runner, BN) > 0 and pruned_runner.trainable


@pytest.mark.large
def test_keras_applications_model_with_graph_ops_folds():
    # MobileNetV3's hard-swish puts plain Keras ops (`x + 3.0`) in the graph.
    teacher = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None)
    randomise_batchnorm(teacher)
    x = images(8)
    reference = infer(teacher, x)
    folded = folding.fold_batchnorm(teacher)
    assert count(folded, BN) < count(teacher, BN)
    diff, agree = compare(reference, infer(folded, x))
    assert diff < 1e-5 and agree == 1.0, (diff, agree)
