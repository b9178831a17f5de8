"""Filter pruning: channel groups from the graph, L1/L2 ranking against numpy,
shrink giving the masked model's logits, training paths, clear refusals."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.models import get_model
from r2kd_keras.models.layers import ChannelShuffle
from r2kd_keras.pruning import ChannelGraph
from r2kd_keras.pruning import ConstantSparsity
from r2kd_keras.pruning import PruneFilters
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import begin_pruning_step
from r2kd_keras.pruning import finalize
from r2kd_keras.pruning import prune_filters
from r2kd_keras.pruning import prune_for_structure
from r2kd_keras.pruning import pruning_wrappers
from r2kd_keras.pruning import shrink
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import replica_values
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn


def _tied_net():
    """Residual add, depthwise, BatchNorm, concat, shuffle, flatten + dense."""
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inputs)
    a = layers.BatchNormalization(name="a_bn")(a)
    b = layers.Conv2D(6, 1, name="b")(layers.ReLU()(a))
    added = layers.Add(name="add")([a, b])
    dw = layers.DepthwiseConv2D(3, padding="same", name="dw")(added)
    c = layers.Conv2D(4, 1, name="c")(dw)
    cat = layers.Concatenate(name="cat")([dw, c])  # 10 channels
    shuffled = ChannelShuffle(2, name="shuffle")(cat)
    d = layers.Conv2D(5, 1, strides=2, name="d")(shuffled)
    flat = layers.Flatten(name="flat")(layers.MaxPooling2D(2)(d))  # 2*2*5
    outputs = layers.Dense(3, name="logits")(flat)
    return keras.Model(inputs, outputs)


def test_channel_groups_follow_the_graph():
    graph = ChannelGraph(_tied_net())
    group = graph.group
    produced = graph.produced
    # The two sides of the Add, BatchNorm and the depthwise conv share groups.
    for i in range(6):
        assert group(produced["a"][i]) == group(produced["b"][i])
        assert group(graph.channelwise["a_bn"][i]) == group(produced["a"][i])
        assert group(graph.channelwise["dw"][i]) == group(produced["a"][i])
    # Concat lays [a/b (6), c (4)] side by side; the shuffle (2 groups of 5)
    # ties channel j of each half: a/b channel 5 with c channel 0, and so on.
    for j in range(5):
        first = graph.consumed["d"][2 * j]  # the shuffle interleaves
        second = graph.consumed["d"][2 * j + 1]
        assert group(first) == group(produced["a"][j])
        assert group(second) == group(first)
    assert group(produced["a"][0]) != group(produced["a"][1])
    # Flatten: the Dense reads channel (k % 5) of d at row k.
    rows = graph.consumed["logits"]
    assert len(rows) == 20
    assert [group(r) for r in rows[:5]] == [group(r) for r in rows[5:10]]
    assert [group(r) for r in rows[:5]] == [group(p) for p in produced["d"]]
    # The logits are a model output, the input is fixed: pinned.
    assert graph.pinned_reason(produced["logits"][0]) == "it is a model output"
    assert graph.pinned_reason(graph.consumed["a"][0]) == "it is a model input"
    assert graph.pinned_reason(produced["d"][0]) is None


def _randomise(model, seed=0):
    """Trained-looking BatchNorm statistics and biases (kernels keep their
    initialisation), so the logits are O(1) and depend on every channel."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in layer.weights:
            if "kernel" in weight.path:
                continue
            if "variance" in weight.path or "gamma" in weight.path:
                value = rng.uniform(0.5, 1.5, weight.shape)
            else:
                value = rng.normal(0.0, 0.2, weight.shape)
            weight.assign(value.astype("float32"))


def _check_shrink(model, sparsity=0.5, input_shape=None):
    _randomise(model)
    pruned = prune_filters(model, ConstantSparsity(sparsity, 0))
    begin_pruning_step(pruned)  # step 0: masks computed, kernels masked
    small = shrink(pruned)
    x = np.random.default_rng(1).normal(size=(4, *model.input_shape[1:]))
    x = x.astype("float32")
    expected = keras.ops.convert_to_numpy(pruned(x, training=False))
    got = keras.ops.convert_to_numpy(small(x, training=False))
    assert np.abs(expected).max() > 1e-2  # a real comparison, not of zeros
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert small.count_params() < 0.6 * model.count_params()
    return pruned, small


def test_shrink_tied_net_removes_whole_groups():
    model = _tied_net()
    pruned, small = _check_shrink(model)
    # The shuffle ties channel j of each half of [a/b/dw (6), c (4)]: 5
    # groups of two channels, floor(0.5 * 5) = 2 cut, so 4 of the 10 channels
    # go, keeping both halves equal; d has 5 filters, 2 cut; logits keep 3.
    assert small.get_layer("a").filters == small.get_layer("b").filters
    assert small.get_layer("a").filters + small.get_layer("c").filters == 6
    assert small.get_layer("d").filters == 3
    assert small.get_layer("logits").kernel.shape == (12, 3)


@pytest.mark.parametrize("name", ["resnet8x4"])
def test_shrink_zoo_model_matches_masked_logits(name):
    _check_shrink(get_model(name, 10, (32, 32, 3)))


@pytest.mark.large
@pytest.mark.parametrize("name", ["wrn_16_2", "vgg8", "mobilenetv2", "shufflenetv2"])
def test_shrink_more_zoo_models(name):
    _check_shrink(get_model(name, 10, (32, 32, 3)))


@pytest.mark.large
def test_shrink_keras_mobilenet_v3_small():
    # As the runner builds it: its input layer and built-in rescaling in front.
    _check_shrink(get_model("keras:MobileNetV3Small", 10, (64, 64, 3)))


def _one_conv(filters=8):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(filters, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_layer_scope_masks_lowest_norm_filters(importance):
    keras.utils.set_random_seed(4)
    model = _one_conv()
    kernel = model.get_layer("conv").kernel.numpy()
    flat = kernel.reshape(-1, 8)
    norms = np.abs(flat).sum(0) if importance == "l1" else np.sqrt((flat ** 2).sum(0))
    pruned = prune_filters(model, ConstantSparsity(0.5, 0), importance=importance)
    begin_pruning_step(pruned)
    conv, logits = pruning_wrappers(pruned)
    cut = np.all(conv.masks[0].numpy().reshape(-1, 8) == 0, axis=0)
    np.testing.assert_array_equal(np.flatnonzero(cut), np.sort(np.argsort(norms)[:4]))
    # The Dense rows reading those channels are masked too, the others kept.
    np.testing.assert_array_equal(logits.masks[0].numpy()[:, 0], (~cut).astype("float32"))


def test_global_scope_ranks_across_layers_and_keeps_one_per_layer():
    inputs = keras.Input((4,))
    small = keras.layers.Dense(4, name="small")(inputs)
    large = keras.layers.Dense(4, name="large")(inputs)
    x = keras.layers.Concatenate()([small, large])
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    model.get_layer("small").kernel.assign(np.full((4, 4), 0.1) * [1, 2, 3, 4])
    model.get_layer("large").kernel.assign(np.full((4, 4), 1.0) * [1, 2, 3, 4])
    pruned = prune_filters(model, ConstantSparsity(0.5, 0), scope="global")
    begin_pruning_step(pruned)
    masks = {w.layer.name: w.masks[0].numpy()[0] for w in pruning_wrappers(pruned)}
    # 8 groups, 4 removed by mean |w|: the 3 weakest of "small" (its best
    # one is kept) and the weakest of "large".
    np.testing.assert_array_equal(masks["small"], [0, 0, 0, 1])
    np.testing.assert_array_equal(masks["large"], [0, 1, 1, 1])


def test_fit_with_callback_prunes_filters_on_every_replica(mirrored_strategy):
    strategy = mirrored_strategy
    images, labels = fashion_mnist(64)
    with strategy.scope():
        model = prune_filters(small_cnn(seed=5), ConstantSparsity(0.5, 0, frequency=2))
        model.compile(sgd(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, labels, batch_size=16, verbose=0, callbacks=[UpdatePruningStep()])
    wrappers = pruning_wrappers(model)
    assert all(isinstance(w, PruneFilters) for w in wrappers)
    assert_pruned_weights_zero(wrappers)
    for wrapper in wrappers:
        assert {int(v) for v in replica_values(wrapper.pruning_step)} == {3}
        for mask in wrapper.masks:
            values = replica_values(mask)
            for other in values[1:]:
                np.testing.assert_array_equal(other, values[0])
    conv = model.get_layer("prune_filters_conv").masks[0].numpy()
    assert np.all(conv.reshape(-1, 8) == 0, axis=0).sum() == 4
    assert finalize(model).get_layer("conv").filters == 4


@pytest.mark.large  # 12 s idle, ~20 s on the loaded machine
def test_in_distiller_and_through_save_load(tmp_path):
    images, labels = fashion_mnist(32)
    student = prune_for_structure(small_cnn(seed=2), "filters", ConstantSparsity(0.5, 0))
    distiller = R2KDDistiller(student=student, teacher=small_cnn(seed=1, first_filters=16))
    distiller.compile(optimizer=sgd())
    distiller.fit(images, labels, batch_size=16, verbose=0, callbacks=[UpdatePruningStep()])
    assert_pruned_weights_zero(pruning_wrappers(student))
    assert int(pruning_wrappers(student)[0].pruning_step.numpy()) == 1
    path = str(tmp_path / "student.keras")
    student.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(pruning_wrappers(loaded), pruning_wrappers(student), strict=True):
        assert isinstance(a, PruneFilters) and a.out_groups == b.out_groups
        np.testing.assert_array_equal(a.masks[0].numpy(), b.masks[0].numpy())
    np.testing.assert_allclose(finalize(loaded)(images[:4]), student(images[:4]),
                               atol=1e-5)


def test_refusals_name_the_layer():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = keras.layers.Reshape((16, 4), name="reshape")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match="'conv': it feeds 'reshape' \\(Reshape\\)"):
        prune_filters(model, strict=True)
    with pytest.raises(ValueError, match="importance.*'l3'"):
        prune_filters(small_cnn(), importance="l3")
    with pytest.raises(ValueError, match="structure.*'blocks'"):
        prune_for_structure(small_cnn(), "blocks")
    pruned = prune_filters(small_cnn(seed=1), ConstantSparsity(0.5, 0))
    begin_pruning_step(pruned)
    # A layer that still reads a masked channel: shrink must not cut it.
    reader = pruned.get_layer("prune_filters_separable")
    for mask in reader.masks:
        mask.assign(tf.ones_like(mask))
    reader.layer.depthwise_kernel.assign(tf.ones_like(reader.layer.depthwise_kernel))
    reader.layer.pointwise_kernel.assign(tf.ones_like(reader.layer.pointwise_kernel))
    with pytest.raises(ValueError, match="filter \\d+ of layer 'conv'.*still reads"):
        shrink(pruned)
