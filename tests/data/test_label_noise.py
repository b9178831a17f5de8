"""Symmetric label noise: the exact share, never the same class, uniform over
the other classes (chi-square), fixed per seed; and the Fashion-MNIST loader
applying it to the training split only."""

import os

import numpy as np
import pytest
from scipy import stats

from r2kd_keras.data import fashion_mnist, symmetric_label_noise

DEBIAN = "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 1.0])
def test_exact_share_and_never_the_same_class(rate):
    labels = np.arange(10_001) % 7
    noisy, mask = symmetric_label_noise(labels, rate, 7, seed=3)
    assert noisy.dtype == np.int32 and mask.dtype == bool and noisy.shape == labels.shape
    assert mask.sum() == round(rate * 10_001)
    assert np.all(noisy[mask] != labels[mask])
    np.testing.assert_array_equal(noisy[~mask], labels[~mask])
    assert noisy.min() >= 0 and noisy.max() < 7


def test_uniform_over_the_other_classes():
    classes = 10
    labels = np.random.default_rng(0).integers(0, classes, 200_000)
    noisy, mask = symmetric_label_noise(labels, 0.4, classes, seed=1)
    # Offsets 1..9 equally likely, whatever the true class; chi-square with
    # 9 * 10 - 10 = 80 degrees of freedom over the (true, noisy) table.
    table = np.zeros((classes, classes))
    np.add.at(table, (labels[mask], noisy[mask]), 1)
    assert np.all(np.diag(table) == 0)
    expected = table.sum(axis=1, keepdims=True) / (classes - 1)
    off_diagonal = ~np.eye(classes, dtype=bool)
    chi2 = (((table - expected) ** 2 / expected)[off_diagonal]).sum()
    assert chi2 < stats.chi2.ppf(0.999, df=classes * (classes - 1) - classes)
    # The mask does not prefer any class either.
    counts = np.bincount(labels, minlength=classes)
    flipped = np.bincount(labels[mask], minlength=classes)
    assert stats.chisquare(flipped, counts * mask.sum() / len(labels)).pvalue > 0.001


def test_fixed_per_seed():
    labels = np.arange(1000) % 10
    first = symmetric_label_noise(labels, 0.2, 10, seed=4)
    again = symmetric_label_noise(labels, 0.2, 10, seed=4)
    other = symmetric_label_noise(labels, 0.2, 10, seed=5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])
    # A column of labels is read as its class ids.
    np.testing.assert_array_equal(symmetric_label_noise(labels[:, None], 0.2, 10, seed=4)[0],
                                  first[0])


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": 1.5}, r"rate must be a share in \[0, 1\] \(e.g. 0.2 for 20%\), got 1.5"),
    ({"rate": -0.1}, r"rate must be a share in \[0, 1\]"),
    ({"rate": "20%"}, r"got '20%'"),
    ({"num_classes": 1}, r"num_classes must be an int >= 2, got 1"),
    ({"labels": np.array([0, 3, 10])}, r"labels must lie in \[0, 10\) for num_classes=10, "
                                       r"got values in \[0, 10\]"),
    ({"labels": np.eye(10)[[1, 2]]}, r"1-D int array, got dtype float64 of shape \(2, 10\); "
                                     r"pass one-hot labels as labels.argmax\(-1\)"),
])
def test_bad_arguments_are_named(kwargs, message):
    arguments = {"labels": np.arange(10), "rate": 0.2, "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        symmetric_label_noise(**arguments)


def _labels(dataset):
    return np.concatenate([np.asarray(y) for _, y in dataset])


@pytest.mark.skipif(not os.path.isdir(DEBIAN), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_noises_the_training_labels_only():
    common = dict(train_subset=1000, batch_size=1000, seed=2, flip=False, pad=0)
    clean_train, clean_val, _ = fashion_mnist(**common)
    noisy_train, noisy_val, _ = fashion_mnist(label_noise=0.4, **common)
    clean_images, clean = next(iter(clean_train))
    noisy_images, noisy = next(iter(noisy_train))
    # Same seed: the same images in the same shuffled order, 40% relabelled.
    np.testing.assert_array_equal(clean_images, noisy_images)
    changed = np.asarray(clean) != np.asarray(noisy)
    assert changed.sum() == 400
    np.testing.assert_array_equal(_labels(clean_val), _labels(noisy_val))
