"""Callbacks that drive and log pruning during `model.fit`."""

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from r2kd_keras.pruning.wrapper import apply_pruning_masks
from r2kd_keras.pruning.wrapper import begin_pruning_step
from r2kd_keras.pruning.wrapper import pruning_wrappers


class UpdatePruningStep(keras.callbacks.Callback):
    """Drives the pruning wrappers during `model.fit` (tfmot's numbering).

    At the start of training every wrapper's `pruning_step` is set so the
    first batch runs at step `optimizer.iterations` (0 for a fresh run, the
    restored count for a resumed or reloaded one), exactly as tfmot's
    callback does. Before each batch it runs `begin_pruning_step(model)`,
    after it `apply_pruning_masks(model)`, so pruned weights are exactly zero
    after every optimizer step; at the end of each epoch the masks are
    applied once more (tfmot's `on_epoch_end`, which a custom loop calls).
    A model whose class sets `drives_pruning = True` (such as
    `R2KDDistiller`) steps its wrappers in its own `train_step`; the
    callback then only sets the step at the start of training.

    Example:
    >>> pruned.fit(ds, epochs=3, callbacks=[UpdatePruningStep()])

    tfmot's custom-loop pattern works as well:
    >>> step_callback = UpdatePruningStep()
    >>> step_callback.set_model(pruned)
    >>> pruned.optimizer = optimizer
    >>> step_callback.on_train_begin()
    >>> for x, y in ds:
    ...     step_callback.on_train_batch_begin(batch=-1)
    ...     ...  # forward, gradients, optimizer.apply_gradients(...)
    >>> step_callback.on_epoch_end(batch=-1)
    """

    def on_train_begin(self, logs=None):
        wrappers = [w for w in pruning_wrappers(self.model) if w.built]
        optimizer = getattr(self.model, "optimizer", None)
        if wrappers and optimizer is not None:
            # The next begin_pruning_step adds one: the first batch runs at
            # step `iterations`, tfmot's `pruning_step` for that batch.
            step = int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1
            for wrapper in wrappers:
                wrapper.pruning_step.assign(step)
        self._active = bool(wrappers) and not getattr(
            self.model, "drives_pruning", False
        )
        if not self._active:
            return
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError(
                "UpdatePruningStep needs `steps_per_execution=1` in compile, "
                f"received: {self.model.steps_per_execution}. Call "
                "begin_pruning_step/apply_pruning_masks in train_step instead."
            )
        # Traced once per model, not once per `fit` call.
        if getattr(self, "_traced_for", None) is not self.model:
            model = self.model
            self._begin = tf.function(lambda: begin_pruning_step(model))
            self._apply = tf.function(lambda: apply_pruning_masks(model))
            self._traced_for = model

    def on_train_batch_begin(self, batch, logs=None):
        if self._active:
            self._begin()

    def on_train_batch_end(self, batch, logs=None):
        if self._active:
            self._apply()

    # tfmot names the first argument `batch`; its guide calls
    # `on_epoch_end(batch=-1)`, Keras passes the epoch positionally.
    def on_epoch_end(self, batch, logs=None):
        if self._active:
            self._apply()


def _scalar(tag, value):
    # tf.summary.scalar lives in the tensorboard package, which TensorFlow
    # does not require; the core op with the scalars plugin's metadata writes
    # the same event without it.
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    tf.summary.write(tag, tf.cast(value, tf.float32), metadata=metadata)


class PruningSummaries(keras.callbacks.Callback):
    """Writes per-layer sparsity and the schedule's target to TensorBoard.

    Scalars, at step `optimizer.iterations`: `<layer>/<kernel>/sparsity`
    (fraction of zeros in the mask) and `<layer>/target_sparsity`.

    Args:
        log_dir: directory for the event files.
        update_freq: "epoch", or an int: write every that many batches.

    Example:
    >>> callbacks = [UpdatePruningStep(), PruningSummaries("logs/pruning")]
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch" and not (
            isinstance(update_freq, int) and update_freq > 0
        ):
            raise ValueError(
                f"`update_freq` must be 'epoch' or a positive int, received: "
                f"{update_freq!r}"
            )
        self.log_dir = log_dir
        self.update_freq = update_freq
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def _write(self):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default(step=step):
            for wrapper in pruning_wrappers(self.model):
                pruning_step = keras.ops.convert_to_numpy(wrapper.pruning_step)
                target = wrapper.pruning_schedule.sparsity(pruning_step)
                _scalar(f"{wrapper.layer.name}/target_sparsity", target)
                for kernel, mask in zip(wrapper.kernels, wrapper.masks):
                    zeros = 1.0 - keras.ops.mean(mask)
                    _scalar(f"{wrapper.layer.name}/{kernel.name}/sparsity", zeros)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch" and (batch + 1) % self.update_freq == 0:
            self._write()

    def on_epoch_end(self, batch, logs=None):
        if self.update_freq == "epoch":
            self._write()

    def on_train_end(self, logs=None):
        self._writer.close()
