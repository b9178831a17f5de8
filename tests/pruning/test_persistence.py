"""Pruning state survives `.keras` save/load and BackupAndRestore; summaries
reach TensorBoard event files."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.pruning import PolynomialDecay
from r2kd_keras.pruning import PruningSummaries
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import prune_low_magnitude
from r2kd_keras.pruning import pruning_wrappers
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn

BATCH = 16
STEPS_PER_EPOCH = 3


def _schedule():
    # 12 batches are steps 0..11 (tfmot's numbering); updates at 0, 2, ..., 10:
    # pruning goes on across the interruption.
    return PolynomialDecay(0.0, 0.75, begin_step=0, end_step=10, frequency=2)


def _pruned_model():
    model = prune_low_magnitude(small_cnn(seed=11), pruning_schedule=_schedule())
    model.compile(sgd(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data():
    return fashion_mnist(BATCH * STEPS_PER_EPOCH)


def _state(model):
    return [v.numpy() for v in model.weights]


def _assert_same_state(a, b):
    for x, y in zip(_state(a), _state(b), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)
    for wa, wb in zip(pruning_wrappers(a), pruning_wrappers(b), strict=True):
        assert int(wa.pruning_step.numpy()) == int(wb.pruning_step.numpy())
        for ma, mb in zip(wa.masks, wb.masks, strict=True):
            np.testing.assert_array_equal(ma.numpy(), mb.numpy())


def _fit(model, epochs, callbacks=(), initial_epoch=0):
    images, labels = _data()
    model.fit(images, labels, batch_size=BATCH, epochs=epochs, shuffle=False,
              verbose=0, initial_epoch=initial_epoch,
              callbacks=[UpdatePruningStep(), *callbacks])


def test_save_load_mid_training_then_continue(tmp_path):
    reference = _pruned_model()
    _fit(reference, epochs=4)

    model = _pruned_model()
    _fit(model, epochs=2)
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(pruning_wrappers(loaded)) == 5
    assert int(pruning_wrappers(loaded)[0].pruning_step.numpy()) == 2 * STEPS_PER_EPOCH - 1
    assert pruning_wrappers(loaded)[0].pruning_schedule.get_config() == (
        _schedule().get_config()
    )
    _assert_same_state(loaded, model)
    _fit(loaded, epochs=4, initial_epoch=2)
    # The loaded model continues exactly like an uninterrupted run.
    _assert_same_state(loaded, reference)
    assert_pruned_weights_zero(pruning_wrappers(loaded))


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


def test_backup_and_restore_resumes_masks_and_step(tmp_path):
    reference = _pruned_model()
    _fit(reference, epochs=4)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(_pruned_model(), epochs=4, callbacks=[backup, _Interrupt()])
    # A fresh process: new model from the same recipe, same backup directory.
    resumed = _pruned_model()
    _fit(resumed, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(
        str(tmp_path / "backup"))])
    assert int(pruning_wrappers(resumed)[0].pruning_step.numpy()) == 4 * STEPS_PER_EPOCH - 1
    _assert_same_state(resumed, reference)


def test_pruning_summaries_write_sparsity_per_layer(tmp_path):
    model = _pruned_model()
    _fit(model, epochs=2, callbacks=[PruningSummaries(str(tmp_path))])
    scalars = {}
    for path in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                scalars[(value.tag, event.step)] = float(
                    tf.make_ndarray(value.tensor)
                )
    last = 2 * STEPS_PER_EPOCH
    conv = pruning_wrappers(model)[0]
    mask = conv.masks[0].numpy()
    assert scalars[("conv/kernel/sparsity", last)] == pytest.approx(
        (mask == 0).mean(), abs=1e-6
    )
    # Written at optimizer.iterations 6, after the batch at pruning step 5;
    # the target there is 0.75 - 0.75 * 0.5**3 (step 5 of 0..10).
    assert scalars[("conv/target_sparsity", last)] == pytest.approx(0.65625)
    assert ("logits/kernel/sparsity", STEPS_PER_EPOCH) in scalars


def test_tf_checkpoint_holds_masks_and_step(tmp_path):
    model = prune_low_magnitude(small_cnn(seed=12))
    wrapper = pruning_wrappers(model)[2]  # separable: two masks
    saved = [np.random.default_rng(i).integers(0, 2, m.shape).astype("float32")
             for i, m in enumerate(wrapper.masks)]
    for mask, value in zip(wrapper.masks, saved):
        mask.assign(value)
    wrapper.pruning_step.assign(42)
    checkpoint = tf.train.Checkpoint(model=model)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    for mask in wrapper.masks:
        mask.assign(np.ones(mask.shape, "float32"))
    wrapper.pruning_step.assign(0)
    checkpoint.restore(path).assert_consumed()
    for mask, value in zip(wrapper.masks, saved):
        np.testing.assert_array_equal(mask.numpy(), value)
    assert int(wrapper.pruning_step.numpy()) == 42
