"""Every private Keras / TensorFlow API the package relies on, in one place.

Each item names the versions it was checked on; `tests/test_compat.py` fails
loudly when an upgrade changes one of them. Everything else in the package
uses public API only.
"""

import keras
import tensorflow as tf

# Checked on Keras 3.15.1 / TensorFlow 2.21.0 for every item below.
CHECKED_ON = {"keras": "3.15.1", "tensorflow": "2.21.0"}


def is_keras_image_layer(obj):
    """Whether `obj` is a Keras image preprocessing layer (CutMix, MixUp,
    RandomFlip...), which take `{"images", "labels"}` dicts.

    Keras 3.15.1 exports no public base class for these layers.
    """
    from keras.src.layers.preprocessing.image_preprocessing import (
        base_image_preprocessing_layer as base,
    )

    return isinstance(obj, base.BaseImagePreprocessingLayer)


def is_functional(model):
    """Whether `model` is a functional (or Sequential) `keras.Model`, i.e. a
    graph of layers that `keras.models.clone_model` can copy layer by layer.

    Keras 3.15.1 builds `keras.Model(inputs, outputs)` as the private class
    `keras.src.models.functional.Functional`, which `keras.Sequential` also
    subclasses.
    """
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def producer_of(tensor):
    """The layer (or Keras operation) whose call produced the symbolic
    `tensor` of a functional model's graph.

    Keras 3.15.1 keeps it only in the private `tensor._keras_history`
    (`operation`, `node_index`, `tensor_index`); `Node` has no public link
    from an input tensor back to its producer.

    Example:
    >>> _compat.producer_of(model.get_layer("bn").input)  # the conv before it
    """
    return tensor._keras_history.operation


def graph_nodes(model):
    """Every `Node` of the functional `model`'s graph (input nodes included),
    deepest first.

    Keras 3.15.1 lists them only in the private `model._nodes_by_depth`, a
    dict from depth to the nodes at that depth.

    Example:
    >>> [node.operation.name for node in _compat.graph_nodes(model)]
    """
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def maybe_merge_call(fn, strategy, *args):
    """`fn(strategy, *args)` once in cross-replica context.

    Inside a replica context of a `tf.distribute` strategy this merges the
    replicas and calls `fn` once with the strategy; outside one (or under
    strategies that cannot merge) it calls `fn` directly. Keras's own
    optimizers use the same TensorFlow 2.21.0 internal, which has no public
    equivalent (`tf.distribute.get_replica_context().merge_call` fails
    under MultiWorkerMirroredStrategy without collective hints).

    Args:
        fn: a callable `fn(strategy, *args)`.
        strategy: the current `tf.distribute.Strategy`.
        *args: further arguments of `fn`.

    Returns:
        What `fn` returns.

    Example:
    >>> maybe_merge_call(lambda s, v: v.assign_add(1), strategy, counter)
    """
    return tf.__internal__.distribute.interim.maybe_merge_call(fn, strategy, *args)


def resume_at_epoch(model, epoch):
    """Makes the next `model.fit` start at `epoch` (0-based), as a restored
    backup must.

    Keras 3.15.1's `BackupAndRestore` sets the private `model._initial_epoch`
    in `on_train_begin`, and the TensorFlow trainer's `fit` reads it after the
    callbacks' `on_train_begin`; there is no public way to move the start.

    Args:
        model: the `keras.Model` being fitted (call from `on_train_begin`).
        epoch: the first epoch to run.

    Example:
    >>> resume_at_epoch(self.model, metadata["epoch"])
    """
    model._initial_epoch = epoch


class SymbolicBuildFix:
    """Mixin of a `keras.Model` with a custom `train_step`: controls the batch
    from which `fit` / `evaluate` build the compiled metrics.

    Keras 3.15.1's TensorFlow trainer builds them in the private hook
    `_maybe_symbolic_build` (when the model was made under a strategy) from
    the raw first batch: its label form fixes the metric for good (class ids
    give `sparse_categorical_accuracy`), and under
    `MultiWorkerMirroredStrategy` its `strategy.reduce("MEAN", batch)` fails
    on a nested `(images, labels)` batch. Shapes are all the build needs, so
    it gets the local replica's part of the batch passed through
    `symbolic_build_batch`. The same trainer reduces the step's logs on axis
    0 under that strategy, invalid for scalars: `multi_worker_logs` gives
    them shape `(1,)`, whose mean over replicas is the global mean when the
    replicas' batches are equal.
    """

    def symbolic_build_batch(self, data_batch):
        """The batch the metrics are built from; override to convert it."""
        return data_batch

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return None  # Keras builds at trace time, from the step's tensors.
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                    next(batches))
                break
        data_batch = self.symbolic_build_batch(data_batch)
        return super()._maybe_symbolic_build(iterator=None, data_batch=data_batch)

    def multi_worker_logs(self, logs):
        """`logs` in the shape the multi-worker trainer can reduce."""
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs
