"""The labels helper: both forms to one-hot and back, against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import labels

IDS = np.array([2, 0, 1, 2])
EXPECTED = np.eye(3, dtype="float32")[IDS]


@pytest.mark.parametrize(
    "given",
    [IDS, IDS.reshape(4, 1), IDS.astype("float32"), IDS.astype("uint8"), EXPECTED],
    ids=["ids", "column", "float_ids", "uint8_ids", "one_hot"],
)
def test_to_one_hot_from_either_form(given):
    got = labels.to_one_hot(given, 3)
    assert got.dtype == tf.float32
    np.testing.assert_array_equal(got.numpy(), EXPECTED)


def test_soft_labels_pass_through_and_give_their_majority_class():
    soft = np.array([[0.7, 0.3, 0.0], [0.2, 0.2, 0.6]], "float32")
    np.testing.assert_array_equal(labels.to_one_hot(soft, 3).numpy(), soft)
    np.testing.assert_array_equal(labels.to_class_ids(soft).numpy(), [0, 2])


@pytest.mark.parametrize("given", [IDS, IDS.reshape(4, 1), EXPECTED], ids=["ids", "column", "one_hot"])
def test_to_class_ids_from_either_form(given):
    got = labels.to_class_ids(given)
    assert got.dtype == tf.int64
    np.testing.assert_array_equal(got.numpy(), IDS)


def test_round_trip_inside_a_tf_function():
    @tf.function
    def round_trip(y):
        return labels.to_class_ids(labels.to_one_hot(y, 3))

    np.testing.assert_array_equal(round_trip(tf.constant(IDS)).numpy(), IDS)


@pytest.mark.parametrize(
    "given, match",
    [
        (np.zeros((4, 2, 2)), r"`labels` must be integer class ids.*received labels of shape \(4, 2, 2\)"),
        (np.zeros((4, 5), "float32"), r"one-hot of shape \(batch, 3\) for num_classes=3; received labels of shape \(4, 5\)"),
        (np.array(["a", "b"]), r"received labels of shape \(2,\) \(dtype string\)"),
    ],
)
def test_bad_shapes_name_the_shape(given, match):
    with pytest.raises(ValueError, match=match):
        labels.to_one_hot(given, 3)


@pytest.mark.parametrize("bad, match", [(3, "label >= 3"), (-1, "negative label")])
def test_out_of_range_ids_are_refused_unless_unchecked(bad, match):
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        labels.to_one_hot(np.array([0, bad]), 3)
    # Unchecked, TensorFlow's one_hot gives the out-of-range id a zero row.
    np.testing.assert_array_equal(
        labels.to_one_hot(np.array([0, bad]), 3, check_range=False).numpy()[1], [0, 0, 0])


def test_to_class_ids_refuses_a_rank_3_tensor():
    with pytest.raises(ValueError, match=r"received labels of shape \(2, 2, 2\)"):
        labels.to_class_ids(np.zeros((2, 2, 2)))
