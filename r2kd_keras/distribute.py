"""`tf.distribute` helpers: building a strategy by name, which task writes,
the global batch check, sharding of in-memory datasets and gathering a
tensor over the global batch."""

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name="default", cpu_replicas=None, tpu=""):
    """Builds the `tf.distribute` strategy for `name`.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs, or
            `cpu_replicas` logical CPU devices), `"multiworker"`
            (`MultiWorkerMirroredStrategy` configured by the `TF_CONFIG`
            environment variable) or `"tpu"` (`TPUStrategy` on the TPU that
            `TPUClusterResolver(tpu)` finds).
        cpu_replicas: for `"mirrored"`: split the CPU into this many logical
            devices and mirror over them; must be called before TensorFlow
            initialises its devices.
        tpu: TPU name or `grpc://` address; `""` for a TPU VM.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> strategy = make_strategy("mirrored", cpu_replicas=2)
    >>> strategy.num_replicas_in_sync
    2
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas:
            return tf.distribute.MirroredStrategy(logical_cpus(cpu_replicas))
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy='multiworker' needs the TF_CONFIG environment variable "
                "(cluster spec and this task's type and index); it is not set. "
                "See https://www.tensorflow.org/guide/distributed_training."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy={name!r} is not known; use one of {', '.join(STRATEGIES)}.")


def logical_cpus(count):
    """Names of `count` logical CPU devices, splitting the CPU if still possible.

    Args:
        count: devices wanted.

    Returns:
        list of device names, e.g. `["/job:localhost/replica:0/task:0/device:CPU:0", ...]`.

    Raises:
        ValueError: TensorFlow already initialised fewer devices.

    Example:
    >>> tf.distribute.MirroredStrategy(logical_cpus(2))
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        # Devices are initialised already: use them if there are enough.
        pass
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < count:
        raise ValueError(
            f"cpu_replicas={count} needs {count} logical CPU devices but "
            f"TensorFlow already started with {len(devices)}; set it before any "
            "TensorFlow operation runs."
        )
    return [d.name for d in devices[:count]]


def is_chief(strategy):
    """Whether this task writes the outputs (always True outside multi-worker).

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        bool: the task is the `chief`, or worker 0 of a cluster without chief.

    Example:
    >>> is_chief(tf.distribute.get_strategy())
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    cluster = resolver.cluster_spec().as_dict()
    return (task_type in (None, "chief")
            or (task_type == "worker" and task_id == 0 and "chief" not in cluster))


def check_batch(batch_size, strategy):
    """Per-replica batch size; `ValueError` if the replicas do not divide it.

    Args:
        batch_size: the global batch.
        strategy: a `tf.distribute.Strategy`.

    Returns:
        int: `batch_size // strategy.num_replicas_in_sync`.

    Example:
    >>> check_batch(64, tf.distribute.get_strategy())
    64
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} (the global batch) is not divisible by the "
            f"{replicas} replicas of the strategy; use a multiple of {replicas}, "
            f"e.g. {max(replicas, batch_size // replicas * replicas)}."
        )
    return batch_size // replicas


def shard_by_data(dataset):
    """`dataset` with auto-sharding by data, for multi-worker input.

    In-memory and file-list datasets have no files to shard: each worker
    reads everything and keeps its replicas' part of every global batch.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        The dataset with `AutoShardPolicy.DATA`.

    Example:
    >>> train_ds = shard_by_data(train_ds)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


def gather_global_batch(tensor):
    """`tensor` over the global batch: its replicas' parts concatenated along
    axis 0 (identity on one replica or outside a replica context).

    Example:
    >>> logits = gather_global_batch(student_logits)  # inside strategy.run
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensor
    gathered = context.all_gather(tensor, axis=0)
    # all_gather forgets the static class count the losses need.
    gathered.set_shape([None] + list(tensor.shape[1:]))
    return gathered
