"""`PruneLowMagnitude`: a layer wrapper keeping a magnitude mask per kernel,
and the two step functions any training loop calls to drive it."""

import keras
import tensorflow as tf

from r2kd_keras import _compat
from r2kd_keras.pruning import magnitude
from r2kd_keras.pruning.schedules import ConstantSparsity
from r2kd_keras.pruning.schedules import PruningSchedule

_MISSING_STEP_MESSAGE = (
    "A PruneLowMagnitude layer was called in training before any pruning step. "
    "Pass `r2kd_keras.pruning.UpdatePruningStep()` to `fit`, or call "
    "`begin_pruning_step(model)` at the start of your train_step."
)

# Layers whose kernel can take an N:M pattern along its input channels.
_M_BY_N_LAYER_TYPES = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Dense,
)


def _check_pair(name, value):
    if value is None:
        return None
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ValueError(
            f"`{name}` must be a pair of positive ints, received: {value!r}"
        )
    return pair


def check_pruning_args(block_size, sparsity_m_by_n):
    """Validates and normalises `block_size` and `sparsity_m_by_n`.

    Returns:
        `(block_size, sparsity_m_by_n)` as tuples (the second may be None).

    Example:
    >>> check_pruning_args([1, 1], (2, 4))
    ((1, 1), (2, 4))
    """
    block_size = _check_pair("block_size", block_size)
    sparsity_m_by_n = _check_pair("sparsity_m_by_n", sparsity_m_by_n)
    if sparsity_m_by_n is not None:
        if sparsity_m_by_n[0] >= sparsity_m_by_n[1]:
            raise ValueError(
                "`sparsity_m_by_n` is (m zeros, in n weights) and needs m < n, "
                f"received: {sparsity_m_by_n}"
            )
        if block_size != (1, 1):
            raise ValueError(
                "`block_size` and `sparsity_m_by_n` cannot be combined, received "
                f"block_size={block_size} with sparsity_m_by_n={sparsity_m_by_n}"
            )
    return block_size, sparsity_m_by_n


def unprunable_reason(layer, block_size=(1, 1), sparsity_m_by_n=None):
    """Why `layer` cannot be wrapped with these options, or None if it can.

    Shape checks need the layer built; an unbuilt layer is checked again
    when the wrapper builds.

    Example:
    >>> unprunable_reason(keras.layers.BatchNormalization())
    'it has no Conv or Dense kernel'
    """
    if isinstance(layer, PruneLowMagnitude):
        return "it is already wrapped with prune_low_magnitude"
    if not isinstance(layer, magnitude.PRUNABLE_LAYER_TYPES + (magnitude.PrunableLayer,)):
        return "it has no Conv or Dense kernel (and is not a PrunableLayer)"
    if sparsity_m_by_n is not None and not isinstance(layer, _M_BY_N_LAYER_TYPES):
        return (
            f"sparsity_m_by_n={sparsity_m_by_n} applies to Conv1D/2D/3D and Dense "
            f"kernels only, not {type(layer).__name__}"
        )
    if not layer.built:
        return None
    for kernel in magnitude.prunable_kernels(layer):
        shape = tuple(kernel.shape)
        if block_size != (1, 1) and len(shape) != 2:
            return (
                f"block_size={block_size} needs rank-2 kernels (Dense); kernel "
                f"'{kernel.path}' has shape {shape}"
            )
        if sparsity_m_by_n is not None and shape[-2] % sparsity_m_by_n[1]:
            return (
                f"sparsity_m_by_n={sparsity_m_by_n} needs the input dimension of "
                f"each kernel to be a multiple of {sparsity_m_by_n[1]}; kernel "
                f"'{kernel.path}' has shape {shape} (input dimension {shape[-2]})"
            )
    return None


@keras.saving.register_keras_serializable(package="r2kd_keras")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a Conv or Dense layer so its kernels are magnitude-pruned.

    For every kernel the wrapper keeps a mask of 0s and 1s and a pruning step
    counter, all non-trainable Keras variables (saved in `.keras` files and
    checkpoints, restored by `BackupAndRestore`). The training loop drives it:
    `begin_pruning_step(model)` before the forward pass, and
    `apply_pruning_masks(model)` after the optimizer step; `UpdatePruningStep`
    does both for `fit`. Biases are never pruned.

    `pruning_step` follows tfmot: -1 until training starts, then the
    `optimizer.iterations` of the batch being run (0 on the first batch of a
    fresh run), so `ConstantSparsity(0.5, begin_step=0)` prunes on the very
    first batch.

    Args:
        layer: a Conv1D/2D/3D, DepthwiseConv2D, SeparableConv2D or Dense
            layer, or a `PrunableLayer`.
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, 0)`.
        block_size: (height, width) blocks pruned together (Dense kernels only).
        sparsity_m_by_n: (m, n): m zeros in every n consecutive input weights;
            the schedule then only says when masks are updated.

    Example:
    >>> layer = PruneLowMagnitude(keras.layers.Dense(10), ConstantSparsity(0.8, 0))
    """

    def __init__(self, layer, pruning_schedule=None, block_size=(1, 1),
                 sparsity_m_by_n=None, **kwargs):
        if pruning_schedule is None:
            pruning_schedule = ConstantSparsity(0.5, 0)
        if not isinstance(pruning_schedule, PruningSchedule):
            raise TypeError(
                "`pruning_schedule` must be a PruningSchedule (e.g. "
                f"ConstantSparsity(0.5, 0)), received: {pruning_schedule!r}"
            )
        block_size, sparsity_m_by_n = check_pruning_args(block_size, sparsity_m_by_n)
        if isinstance(layer, keras.layers.Layer):
            reason = unprunable_reason(layer, block_size, sparsity_m_by_n)
            if reason:
                raise ValueError(
                    f"`layer` '{layer.name}' ({type(layer).__name__}) cannot be "
                    f"pruned: {reason}."
                )
            kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = pruning_schedule
        self.block_size = block_size
        self.sparsity_m_by_n = sparsity_m_by_n

    def build(self, input_shape=None):
        super().build(input_shape)
        reason = unprunable_reason(self.layer, self.block_size, self.sparsity_m_by_n)
        if reason:
            raise ValueError(f"Layer '{self.layer.name}' cannot be pruned: {reason}.")
        # "only_first_replica" lets these be assigned in replica context too;
        # our own updates write each replica's copy (see _run_on_devices).
        # One attribute per mask: tf.train.Checkpoint does not see variables
        # held only in a Python list.
        for index, kernel in enumerate(self.kernels):
            mask = self.add_weight(
                name=f"{kernel.name}_mask",
                shape=kernel.shape,
                dtype=kernel.dtype,
                initializer="ones",
                trainable=False,
                aggregation="only_first_replica",
            )
            setattr(self, f"mask_{index}", mask)
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            dtype="int64",
            initializer=keras.initializers.Constant(-1),
            trainable=False,
            aggregation="only_first_replica",
        )
        self.built = True

    @property
    def kernels(self):
        """The wrapped layer's kernels, in the order of `masks`."""
        return magnitude.prunable_kernels(self.layer)

    @property
    def masks(self):
        """One 0/1 mask variable per kernel, in the order of `kernels`."""
        return [getattr(self, f"mask_{index}") for index in range(len(self.kernels))]

    def call(self, inputs, training=None):
        if training and keras.backend.backend() == "tensorflow":
            tf.debugging.assert_greater_equal(
                self.pruning_step.value,
                tf.constant(0, "int64"),
                message=_MISSING_STEP_MESSAGE,
            )
        return self.layer(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def new_mask(self, kernel, sparsity):
        """The mask `kernel` gets at a pruning step with this `sparsity`.

        Args:
            kernel: the (already masked) kernel tensor.
            sparsity: scalar tensor from the schedule.

        Returns:
            A 0/1 tensor shaped like `kernel`.
        """
        if self.sparsity_m_by_n is not None:
            return magnitude.m_by_n_mask(kernel, self.sparsity_m_by_n)
        if self.block_size != (1, 1):
            return magnitude.block_magnitude_mask(kernel, sparsity, self.block_size)
        return magnitude.magnitude_mask_tensor(kernel, sparsity)

    @staticmethod
    def advance_on_device(wrappers, steps, masks, kernels):
        """One replica's pruning step for `wrappers` (see `_run_on_devices`):
        count, re-mask where the schedule says so, mask the kernels."""
        for wrapper, step, wrapper_masks, wrapper_kernels in zip(
            wrappers, steps, masks, kernels
        ):
            should_prune, sparsity = wrapper.pruning_schedule(step.assign_add(1))

            def update_masks(wrapper=wrapper, masks=wrapper_masks,
                             kernels=wrapper_kernels, sparsity=sparsity):
                for mask, kernel in zip(masks, kernels):
                    mask.assign(wrapper.new_mask(tf.convert_to_tensor(kernel), sparsity))
                return tf.constant(True)

            with tf.control_dependencies(
                [tf.cond(should_prune, update_masks, lambda: tf.constant(False))]
            ):
                # Every step, as tfmot's forward pass does: a loop that never
                # calls apply_pruning_masks (tfmot's guide) still trains masked.
                mask_on_device(wrapper_masks, wrapper_kernels)

    def get_config(self):
        config = super().get_config()
        config.update(
            pruning_schedule=keras.saving.serialize_keras_object(self.pruning_schedule),
            block_size=self.block_size,
            sparsity_m_by_n=self.sparsity_m_by_n,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["pruning_schedule"] = keras.saving.deserialize_keras_object(
            config["pruning_schedule"], custom_objects=custom_objects
        )
        return super().from_config(config, custom_objects=custom_objects)


def mask_on_device(masks, kernels):
    """`kernel *= mask` for each pair (variables of one device)."""
    for mask, kernel in zip(masks, kernels):
        kernel.assign(kernel * mask)


def pruning_wrappers(model):
    """All `PruneLowMagnitude` layers in `model` (nested models included).

    Args:
        model: a Keras model or layer.

    Returns:
        A list of `PruneLowMagnitude` layers, in traversal order.

    Example:
    >>> [w.name for w in pruning_wrappers(pruned_model)]
    """
    return [
        layer
        for layer in magnitude.walk_layers(model)
        if isinstance(layer, PruneLowMagnitude)
    ]


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _run_on_devices(wrappers, per_device):
    """Runs `per_device(wrappers, steps, masks, kernels)` on each replica's copy.

    `steps` holds each wrapper's step variable, `masks` and `kernels` a list
    per wrapper, all of one device. A MirroredVariable whose aggregation is
    "none" (every Keras kernel) cannot be assigned in replica context; like
    Keras's optimizer we move to cross-replica context (`merge_call`) and
    update each device's copy with `extended.update`, from that device's own
    values. Replicas hold identical weights, so they compute identical masks.
    Without a strategy this is a plain call.
    """
    steps = [_tf_variable(w.pruning_step) for w in wrappers]
    masks = [[_tf_variable(m) for m in w.masks] for w in wrappers]
    kernels = [[_tf_variable(k) for k in w.kernels] for w in wrappers]
    if not isinstance(steps[0], tf.distribute.DistributedValues):
        per_device(wrappers, steps, masks, kernels)
        return

    def update_all(strategy):
        strategy.extended.update(
            steps[0],
            lambda _, s, m, k: per_device(wrappers, s, m, k),
            args=(steps, masks, kernels),
            group=True,
        )

    strategy = steps[0].distribute_strategy
    if tf.distribute.in_cross_replica_context():
        update_all(strategy)
    elif tf.distribute.has_strategy():
        _compat.maybe_merge_call(update_all, strategy)
    else:
        with strategy.scope():
            update_all(strategy)


def _by_kind(model):
    """Built wrappers of `model`, grouped by class (in first-seen order)."""
    kinds = {}
    for wrapper in pruning_wrappers(model):
        if wrapper.built:
            kinds.setdefault(type(wrapper), []).append(wrapper)
    return kinds.items()


def begin_pruning_step(model):
    """Advances pruning by one training step; call before the forward pass.

    Every wrapper's `pruning_step` goes up by one (from -1 to 0 on the first
    step, tfmot's numbering); where the schedule says so at that step, masks
    are recomputed from the current kernels; then the kernels are multiplied
    by the masks, so the forward pass sees pruned weights. Safe inside
    `tf.function` and in replica context under `tf.distribute` strategies. A
    no-op (no ops at all) for a model without wrappers.

    Args:
        model: a model or layer, possibly containing `PruneLowMagnitude` layers.

    Example:
    >>> def train_step(self, data):
    ...     begin_pruning_step(self.student)
    ...     ...  # forward, gradients, self.optimizer.apply(...)
    ...     apply_pruning_masks(self.student)
    """
    for kind, wrappers in _by_kind(model):
        _run_on_devices(wrappers, kind.advance_on_device)


def apply_pruning_masks(model):
    """Re-zeroes pruned weights; call right after `optimizer.apply(...)`.

    Momentum and weight decay move pruned weights off zero; this puts them
    back to exactly 0.0. Same graph- and replica-safety as
    `begin_pruning_step`; a no-op for a model without wrappers.

    Args:
        model: a model or layer, possibly containing `PruneLowMagnitude` layers.

    Example:
    >>> self.optimizer.apply(grads, self.student.trainable_variables)
    >>> apply_pruning_masks(self.student)
    """
    for _, wrappers in _by_kind(model):
        _run_on_devices(wrappers, _mask_all)


def _mask_all(wrappers, steps, masks, kernels):
    for wrapper_masks, wrapper_kernels in zip(masks, kernels):
        mask_on_device(wrapper_masks, wrapper_kernels)
