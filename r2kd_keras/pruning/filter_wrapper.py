"""`PruneFilters`: the wrapper that masks whole channel groups, and the
ranking of the groups of all such wrappers of a model at a pruning step.

Each channel group (see `channels.ChannelGraph`) is scored by the L1 or L2
norm of its producers' filters; the lowest-scoring groups are masked: the
filters that make them and the kernel rows that read them.
"""

import keras
import numpy as np
import tensorflow as tf

from r2kd_keras.pruning import magnitude
from r2kd_keras.pruning.wrapper import PruneLowMagnitude
from r2kd_keras.pruning.wrapper import mask_on_device
from r2kd_keras.validation import check_choice

IMPORTANCES = ("l1", "l2")
SCOPES = ("layer", "global")


@keras.saving.register_keras_serializable(package="r2kd_keras")
class PruneFilters(PruneLowMagnitude):
    """Wraps a Conv or Dense layer so whole channel groups are masked.

    Made by `prune_filters`, which reads the channel groups from the model's
    graph; the groups of all `PruneFilters` layers of a model are ranked
    together at each pruning step (so this wrapper is not meant to be used
    alone). Same step semantics, callbacks and persistence as
    `PruneLowMagnitude`.

    Args:
        layer: a Conv1D/2D/3D (groups=1), SeparableConv2D or Dense layer.
        pruning_schedule: a `PruningSchedule`; its sparsity is the fraction
            of channel groups removed.
        out_groups: channel group id of each output filter (-1: kept).
        in_groups: channel group id of each kernel input row (-1: kept).
        importance: "l1" or "l2", the norm scoring a filter.
        scope: "layer": rank groups among those tied to the same layers;
            "global": rank all groups of the model by mean |w| (or RMS).

    Example:
    >>> pruned = prune_filters(model, ConstantSparsity(0.5, 0))
    """

    def __init__(self, layer, pruning_schedule=None, out_groups=(), in_groups=(),
                 importance="l1", scope="layer", **kwargs):
        check_choice("importance", importance, IMPORTANCES)
        check_choice("scope", scope, SCOPES)
        if isinstance(layer, keras.layers.Layer):
            kwargs.setdefault("name", f"prune_filters_{layer.name}")
        super().__init__(layer, pruning_schedule, **kwargs)
        self.out_groups = [int(g) for g in out_groups]
        self.in_groups = [int(g) for g in in_groups]
        self.importance = importance
        self.scope = scope

    def kernel_axes(self):
        """`(in_groups or None, out_groups or None)` for each kernel."""
        if isinstance(self.layer, keras.layers.SeparableConv2D):
            return [(self.in_groups, None), (self.in_groups, self.out_groups)]
        return [(self.in_groups, self.out_groups)]

    @staticmethod
    def advance_on_device(wrappers, steps, masks, kernels):
        """One replica's step for all `PruneFilters` of a model, together."""
        new_steps = [step.assign_add(1) for step in steps]
        should_prune, sparsity = wrappers[0].pruning_schedule(new_steps[0])
        plan = _RankingPlan(wrappers)

        def update_masks():
            keep = plan.keep(kernels, sparsity)
            for wrapper, wrapper_masks in zip(wrappers, masks):
                for mask, (ins, outs) in zip(wrapper_masks, wrapper.kernel_axes()):
                    mask.assign(_kernel_mask(mask.shape, keep, ins, outs))
            return tf.constant(True)

        with tf.control_dependencies(
            [tf.cond(should_prune, update_masks, lambda: tf.constant(False))]
        ):
            for wrapper_masks, wrapper_kernels in zip(masks, kernels):
                mask_on_device(wrapper_masks, wrapper_kernels)

    def get_config(self):
        config = super().get_config()
        for key in ("block_size", "sparsity_m_by_n"):
            config.pop(key)
        config.update(out_groups=self.out_groups, in_groups=self.in_groups,
                      importance=self.importance, scope=self.scope)
        return config


def _lookup(keep, groups):
    # -1 (a pinned channel) reads the extra 1.0 at the end of `keep`.
    index = np.where(np.asarray(groups) < 0, keep.shape[0] - 1, groups)
    return tf.gather(keep, index)


def _kernel_mask(shape, keep, ins, outs):
    rank = len(shape)
    mask = tf.ones(shape, keep.dtype)
    if ins:
        mask *= tf.reshape(_lookup(keep, ins), [1] * (rank - 2) + [-1, 1])
    if outs:
        mask *= tf.reshape(_lookup(keep, outs), [1] * (rank - 1) + [-1])
    return mask


class _RankingPlan:
    """The static part of a ranking: which groups compete with which.

    Groups whose filters come from the same layers (e.g. every conv writing
    into one residual stream) form a unit; "layer" scope removes
    `floor(sparsity * n)` of each unit's `n` groups, keeping at least one.
    """

    def __init__(self, wrappers):
        self.wrappers = wrappers
        self.n_groups = 1 + max(
            [g for w in wrappers for g in w.out_groups + w.in_groups] + [-1]
        )
        self.importance = wrappers[0].importance
        self.scope = wrappers[0].scope
        unit = list(range(self.n_groups))

        def find(g):
            while unit[g] != g:
                g = unit[g]
            return g

        for wrapper in wrappers:
            ids = [g for g in wrapper.out_groups if g >= 0]
            for g in ids[1:]:
                unit[find(g)] = find(ids[0])
        units = {}
        for g in range(self.n_groups):
            units.setdefault(find(g), []).append(g)
        self.units = list(units.values())

    def scores(self, kernels):
        """Per group: the norm of its filters, and their number of weights."""
        total = tf.zeros([self.n_groups + 1], tf.float32)
        sizes = np.zeros(self.n_groups + 1, np.float32)
        for wrapper, wrapper_kernels in zip(self.wrappers, kernels):
            for kernel, (_, outs) in zip(wrapper_kernels, wrapper.kernel_axes()):
                if not outs:
                    continue
                value = tf.reshape(tf.convert_to_tensor(kernel), [-1, len(outs)])
                per_filter = tf.reduce_sum(
                    tf.abs(value) if self.importance == "l1" else tf.square(value), 0
                )
                ids = np.where(np.asarray(outs) < 0, self.n_groups, outs)
                total += tf.math.unsorted_segment_sum(
                    tf.cast(per_filter, tf.float32), ids, self.n_groups + 1
                )
                np.add.at(sizes, ids, value.shape[0])
        return total[: self.n_groups], sizes[: self.n_groups]

    def keep(self, kernels, sparsity):
        """0/1 per group (and a final 1.0 for pinned channels)."""
        scores, sizes = self.scores(kernels)
        if self.importance == "l2":
            scores = tf.sqrt(scores)
        sparsity = tf.cast(sparsity, tf.float64)
        keep = tf.ones([self.n_groups], tf.float32)
        if self.scope == "layer":
            for ids in self.units:
                n = tf.cast(tf.floor(sparsity * len(ids)), tf.int32)
                unit_keep = magnitude.zero_lowest(
                    tf.gather(scores, ids), tf.minimum(n, len(ids) - 1)
                )
                keep = tf.tensor_scatter_nd_update(keep, [[i] for i in ids], unit_keep)
        else:
            per_weight = scores / sizes if self.importance == "l1" else (
                scores / np.sqrt(sizes)
            )
            # Every unit keeps its best group, whatever the global ranking.
            ranked = per_weight
            for ids in self.units:
                best = tf.gather(ids, tf.argmax(tf.gather(per_weight, ids)))
                ranked = tf.tensor_scatter_nd_add(ranked, [[best]], [np.inf])
            n = tf.cast(tf.floor(sparsity * self.n_groups), tf.int32)
            keep = magnitude.zero_lowest(
                ranked, tf.minimum(n, self.n_groups - len(self.units))
            )
        return tf.concat([keep, [1.0]], 0)

