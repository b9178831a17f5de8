"""Callbacks that drive and log pruning during `model.fit`."""

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from r2kd_keras.pruning.wrapper import apply_pruning_masks
from r2kd_keras.pruning.wrapper import begin_pruning_step
from r2kd_keras.pruning.wrapper import pruning_wrappers


class UpdatePruningStep(keras.callbacks.Callback):
    """Drives the pruning wrappers during a plain `model.fit`.

    Before each batch it runs `begin_pruning_step(model)`, after it
    `apply_pruning_masks(model)`, so pruned weights are exactly zero after
    every optimizer step. A model whose class sets `drives_pruning = True`
    (such as `R2KDDistiller`) calls both in its own `train_step`; the
    callback then does nothing, so steps are not counted twice.

    Example:
    >>> pruned.fit(ds, epochs=3, callbacks=[UpdatePruningStep()])
    """

    def on_train_begin(self, logs=None):
        self._active = bool(pruning_wrappers(self.model)) and not getattr(
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

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write()

    def on_train_end(self, logs=None):
        self._writer.close()
