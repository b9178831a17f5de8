"""The runner's data stage: the registered dataset of the config, batched,
cut to the subsets and repeated."""

from r2kd_keras import data as data_lib
from r2kd_keras import inputs


def load_data(config, batch_size=None):
    """`(train_ds, val_ds, info)` of `config.dataset`, fails fast if absent.

    Args:
        config: a `TrainConfig`.
        batch_size: global batch; None: `config.batch_size`.

    Returns:
        The loader's `(train_ds, val_ds, info)`; `train_ds` is repeated (the
        run fixes `steps_per_epoch`), its labels with `label_noise`, and
        `val_ds` cut to `val_subset`.

    Example:
    >>> train_ds, val_ds, info = load_data(TrainConfig(dataset="fashion_mnist"))
    """
    batch_size = batch_size or config.batch_size
    image_size = config.image_size
    if config.dataset == "image_folder" and not image_size:
        image_size = inputs.default_image_size(config.teacher_model)
    train_ds, val_ds, info = data_lib.load_dataset(
        config.dataset, data_dir=config.data_dir, batch_size=batch_size,
        seed=config.seed, image_size=image_size,
        train_subset=config.train_subset, label_noise=config.label_noise,
        options={"fgvr_dataset": config.fgvr_dataset, "val_dir": config.val_dir,
                 "val_fraction": config.val_fraction})
    if config.val_subset:
        val_ds = val_ds.take(-(-config.val_subset // batch_size))
    return train_ds.repeat(), val_ds, info


def steps_per_epoch_of(config, info):
    """Steps per epoch: `config.steps_per_epoch`, else one pass (last partial
    batch dropped) over the training images in use.

    Example:
    >>> steps_per_epoch_of(TrainConfig(batch_size=64, train_subset=6400), info)
    100
    """
    if config.steps_per_epoch:
        return config.steps_per_epoch
    examples = info.train_examples
    if config.train_subset:
        examples = min(examples, config.train_subset)
    steps = examples // config.batch_size
    if steps < 1:
        raise ValueError(
            f"The training set has {examples} images, fewer than one batch of "
            f"batch_size={config.batch_size}; lower batch_size."
        )
    return steps
