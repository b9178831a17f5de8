"""A pruned student inside R2KDDistiller.fit: masks stepped once per step,
sparsity reached, zeros exact after every step, on one device and mirrored."""

import keras
import numpy as np
import pytest

from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.pruning import PolynomialDecay
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import prune_low_magnitude
from r2kd_keras.pruning import pruning_wrappers
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import replica_values
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn
from tests.pruning.helpers import strategy_for


class _ZerosAfterEveryStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        assert_pruned_weights_zero(pruning_wrappers(self.model.student))


@pytest.mark.parametrize("kind", ["one_device", "mirrored"])
def test_pruned_student_in_distiller_fit(kind, request):
    strategy = strategy_for(kind, request)
    images, labels = fashion_mnist(64)
    with strategy.scope():
        teacher = small_cnn(seed=1, first_filters=16)
        # 4 batches = steps 0..3 (tfmot's numbering): updates at 0 and 2.
        schedule = PolynomialDecay(0.0, 0.6, begin_step=0, end_step=2, frequency=2)
        student = prune_low_magnitude(small_cnn(seed=2), pruning_schedule=schedule)
        distiller = R2KDDistiller(student=student, teacher=teacher)
        distiller.compile(optimizer=sgd())
    distiller.fit(images, labels, batch_size=16, epochs=1, verbose=0,
                  callbacks=[UpdatePruningStep(), _ZerosAfterEveryStep()])
    for wrapper in pruning_wrappers(student):
        # Four steps (0..3), counted once although the student is called per
        # view and the callback was also given.
        assert {int(v) for v in replica_values(wrapper.pruning_step)} == {3}
        for mask in wrapper.masks:
            values = replica_values(mask)
            for other in values[1:]:
                np.testing.assert_array_equal(other, values[0])
            assert int((values[0] == 0).sum()) == round(0.6 * values[0].size)
