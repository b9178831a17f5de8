"""Each private Keras / TensorFlow touch of `r2kd_keras._compat`, exercised
for real: a Keras or TensorFlow upgrade that breaks one fails here first."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import _compat


def tiny_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_image_layers_are_recognised():
    for layer in (keras.layers.CutMix(), keras.layers.MixUp(), keras.layers.RandomFlip()):
        assert _compat.is_keras_image_layer(layer), type(layer).__name__
    assert not _compat.is_keras_image_layer(keras.layers.Dense(2))
    assert not _compat.is_keras_image_layer(lambda images: images)


def test_functional_and_sequential_models_are_recognised():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert _compat.is_functional(tiny_model())
    assert _compat.is_functional(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    assert not _compat.is_functional(Subclassed())


def test_producer_of_a_graph_tensor_is_the_layer_that_made_it():
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2)
    hidden = dense(inputs)
    outputs = keras.layers.ReLU()(hidden)
    keras.Model(inputs, outputs)
    assert _compat.producer_of(hidden) is dense
    assert isinstance(_compat.producer_of(inputs), keras.layers.InputLayer)
    # A Keras op in the graph (`x + 3`) is its own operation, not a layer.
    shifted = hidden + 3.0
    assert not isinstance(_compat.producer_of(shifted), keras.layers.Layer)


def test_graph_nodes_are_every_node_of_a_functional_model():
    model = tiny_model()
    nodes = _compat.graph_nodes(model)
    dense = model.layers[-1]
    calls = [node for node in nodes if node.operation is dense]
    assert len(calls) == 1
    assert calls[0].input_tensors[0] is model.inputs[0]
    assert calls[0].output_tensors[0] is model.outputs[0]
    assert any(node.is_input for node in nodes)


def test_maybe_merge_call_runs_fn_once_in_cross_replica_context(mirrored_strategy):
    contexts = []
    with mirrored_strategy.scope():
        counter = tf.Variable(0.0, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def merged(strategy, amount):
        contexts.append(tf.distribute.in_cross_replica_context())
        counter.assign_add(amount)

    @tf.function
    def step():
        mirrored_strategy.run(
            lambda: _compat.maybe_merge_call(merged, tf.distribute.get_strategy(), 1.0))

    step()
    assert contexts == [True]
    assert [float(v) for v in mirrored_strategy.experimental_local_results(counter)] == [1.0, 1.0]


class StartAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.seen = []

    def on_train_begin(self, logs=None):
        _compat.resume_at_epoch(self.model, self.epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_resume_at_epoch_moves_the_start_of_fit():
    model = tiny_model()
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    start = StartAt(3)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[start])
    assert start.seen == [3, 4]
    assert int(model.optimizer.iterations.numpy()) == 2


class Recorder(_compat.SymbolicBuildFix, keras.Model):
    """Class ids in the data, one-hot labels for the metrics."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.build_batches = []

    def call(self, x):
        return self.dense(x)

    def symbolic_build_batch(self, data_batch):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data_batch)
        self.build_batches.append((tuple(x.shape), tuple(y.shape)))
        return x, tf.one_hot(tf.cast(y, "int32"), 3)

    def test_step(self, data):
        x, y = data
        return self.compute_metrics(x, tf.one_hot(tf.cast(y, "int32"), 3), self(x))


def test_symbolic_build_hook_is_called_and_decides_the_metric(mirrored_strategy):
    params = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert list(params) == ["self", "iterator", "data_batch"]
    with mirrored_strategy.scope():
        model = Recorder()
        model.compile(optimizer="sgd", metrics=["accuracy"])
    assert model._distribute_strategy is mirrored_strategy
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)).astype("float32"), np.arange(8) % 3
    # Without the hook Keras would build `sparse_categorical_accuracy` from
    # the class ids and the one-hot step would fail.
    scores = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert model.build_batches == [((4, 4), (4,))]  # one replica's half
    expected = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
    assert scores["accuracy"] == pytest.approx(expected)


def test_multi_worker_logs_are_unchanged_elsewhere():
    model = Recorder()
    logs = {"loss": tf.constant(1.0)}
    assert model.multi_worker_logs(logs) is logs
