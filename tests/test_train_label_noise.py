"""`TrainConfig.label_noise`: the runner's data stage replaces that share of
the training labels (Fashion-MNIST), seeded by the run's seed, and leaves the
validation split alone."""

import os

import numpy as np
import pytest

from r2kd_keras import train
from r2kd_keras.data import idx

SUBSET, BATCH = 500, 50


def _labels(config):
    """One epoch of training labels (in the seeded shuffle order) and the
    validation labels."""
    train_ds, val_ds, info = train.load_data(config)
    steps = train.steps_per_epoch_of(config, info)
    train_labels = np.concatenate([y.numpy() for _, y in train_ds.take(steps)])
    val_labels = np.concatenate([y.numpy() for _, y in val_ds])
    return train_labels, val_labels


def _config(**change):
    return train.TrainConfig(dataset="fashion_mnist", batch_size=BATCH,
                             train_subset=SUBSET, val_subset=200, **{"seed": 3, **change})


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_label_noise_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match=rf"label_noise={value!r} must be in \[0, 1\)"):
        _config(label_noise=value).validate()


def test_a_dataset_that_cannot_replace_labels_refuses_label_noise():
    config = train.TrainConfig(dataset="cifar100", label_noise=0.2)
    with pytest.raises(ValueError, match="label_noise=0.2: dataset='cifar100' cannot"):
        train.load_data(config)


@pytest.mark.skipif(not os.path.isdir(idx.DEBIAN_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_label_noise_replaces_that_share_of_training_labels_only():
    clean_train, clean_val = _labels(_config())
    noisy_train, noisy_val = _labels(_config(label_noise=0.2))
    # Same images in the same order: only the replaced labels differ.
    assert len(noisy_train) == SUBSET
    assert np.sum(noisy_train != clean_train) == int(0.2 * SUBSET)
    np.testing.assert_array_equal(noisy_val, clean_val)
    again, _ = _labels(_config(label_noise=0.2))
    np.testing.assert_array_equal(again, noisy_train)
    other_clean = _labels(_config(seed=4))[0]
    other_noisy = _labels(_config(seed=4, label_noise=0.2))[0]
    assert np.sum(other_noisy != other_clean) == int(0.2 * SUBSET)
