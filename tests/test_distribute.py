"""r2kd_keras.distribute: strategies by name, their errors, batch checks and
logical CPUs, on the session's 2 logical CPU devices."""

import pytest
import tensorflow as tf

from r2kd_keras import distribute


# --------------------------------------------------------------- strategies
def test_default_strategy_and_batch_checks(mirrored_strategy):
    assert distribute.make_strategy("default").num_replicas_in_sync == 1
    assert distribute.check_batch(64, mirrored_strategy) == 32
    with pytest.raises(ValueError, match=r"batch_size=7 .* not divisible by the 2 replicas"):
        distribute.check_batch(7, mirrored_strategy)
    assert distribute.is_chief(mirrored_strategy)


def test_strategy_errors(monkeypatch):
    with pytest.raises(ValueError, match="strategy='gpu' is not known"):
        distribute.make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multiworker")


def test_logical_cpus_reuses_initialised_devices():
    # conftest already made 2 logical CPUs; asking for 3 afterwards cannot work.
    assert len(distribute.logical_cpus(2)) == 2
    with pytest.raises(ValueError, match="cpu_replicas=3 needs 3 logical CPU"):
        distribute.logical_cpus(3)




def test_shard_by_data_sets_the_data_policy():
    dataset = distribute.shard_by_data(tf.data.Dataset.range(4))
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    assert list(dataset.as_numpy_iterator()) == [0, 1, 2, 3]
