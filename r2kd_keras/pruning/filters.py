"""Filter (channel) pruning: mask whole channel groups, then `shrink` them away.

`prune_filters` wraps every Conv/Dense layer whose channels may be removed
in `PruneFilters`. At each pruning step of the schedule, every channel group
(see `channels.ChannelGraph`: the channels tied by residual adds, depthwise
convs, BatchNorm, concatenation) is scored by the L1 or L2 norm of its
producers' filters, and the lowest-scoring groups are masked: the filters
that make them and the kernel rows that read them. A masked channel then
reaches nothing, so `shrink` can cut it out of every layer of its group and
the smaller network computes the same logits.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from r2kd_keras.pruning import magnitude
from r2kd_keras.pruning.channels import MODEL_OUTPUT
from r2kd_keras.pruning.channels import ChannelGraph
from r2kd_keras.pruning.channels import is_producer
from r2kd_keras.pruning.graph import is_graph_model
from r2kd_keras.pruning.schedules import ConstantSparsity
from r2kd_keras.pruning.strip import copy_layer
from r2kd_keras.pruning.strip import strip_pruning
from r2kd_keras.pruning.wrapper import PruneLowMagnitude
from r2kd_keras.pruning.wrapper import mask_on_device
from r2kd_keras.pruning.wrapper import pruning_wrappers

IMPORTANCES = ("l1", "l2")
SCOPES = ("layer", "global")
_PINNED = -1


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}, "
            f"received: {value!r}"
        )


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
        _check_choice("importance", importance, IMPORTANCES)
        _check_choice("scope", scope, SCOPES)
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


def _filter_specs(model):
    """`{layer: (out_groups, in_groups)}` and the layers whose filters are all
    pinned, with the reason."""
    graph = ChannelGraph(model)
    ids = {root: i for i, root in enumerate(sorted(graph.groups()))}

    def group_ids(labels):
        return [ids.get(graph.group(label), _PINNED) for label in labels]

    specs, pinned = {}, {}
    for name, labels in graph.produced.items():
        outs = group_ids(labels)
        ins = group_ids(graph.consumed[name])
        if any(g >= 0 for g in outs + ins):
            specs[name] = (outs, ins)
        reason = graph.pinned_reason(labels[0])
        if all(g < 0 for g in outs) and reason != MODEL_OUTPUT:
            pinned[name] = reason
    return specs, pinned


def prune_filters(model, pruning_schedule=None, importance="l1", scope="layer",
                  strict=False):
    """Adds filter (channel) pruning to a functional or Sequential model.

    The model is cloned; every Conv/Dense layer that makes or reads a
    removable channel group is wrapped in `PruneFilters`. Train exactly as
    with `prune_low_magnitude` (`UpdatePruningStep` in `fit`, or
    `begin_pruning_step` / `apply_pruning_masks` in a `train_step`, e.g.
    inside `R2KDDistiller`), then `finalize` (or `shrink`) for a smaller
    dense model. The schedule's sparsity is the fraction of channel groups
    removed (of each group of tied layers with `scope="layer"`, of the whole
    model with `scope="global"`).

    Channels are tied across residual adds, depthwise convs, BatchNorm,
    concatenation and flattening, found from the graph; channels that reach
    the model's outputs, a channel shuffle, a grouped conv or a layer not
    known to be channel-wise are kept. Layers whose filters are all kept
    for such a reason are reported (a warning, or `ValueError` if `strict`);
    the classifier is kept silently.

    Args:
        model: a built Sequential or functional model.
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, 0)`.
        importance: "l1" or "l2" norm of a filter's weights.
        scope: "layer" or "global" ranking.
        strict: raise instead of warning about layers that cannot be pruned.

    Returns:
        A new model of the same kind with `PruneFilters` layers.

    Example:
    >>> pruned = prune_filters(model, PolynomialDecay(0.0, 0.5, 0, 1000))
    >>> pruned.fit(ds, epochs=3, callbacks=[UpdatePruningStep()])
    >>> small = finalize(pruned)
    """
    _check_choice("importance", importance, IMPORTANCES)
    _check_choice("scope", scope, SCOPES)
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    if not is_graph_model(model):
        raise ValueError(
            f"`model` must be a Sequential or functional model; '{model.name}' is "
            f"a subclassed {type(model).__name__}, whose channel graph is unknown."
        )
    if not model.built:
        raise ValueError(f"`model` '{model.name}' must be built; give it an Input.")
    if pruning_wrappers(model):
        raise ValueError(
            f"`model` '{model.name}' is already pruned; call strip_pruning first."
        )
    specs, pinned = _filter_specs(model)
    if pinned:
        message = (
            f"prune_filters keeps every filter of {len(pinned)} layer(s) of "
            f"'{model.name}': " + "; ".join(f"'{n}': {r}" for n, r in pinned.items())
        )
        if strict:
            raise ValueError(message + ". Pass strict=False to allow this.")
        warnings.warn(message, stacklevel=2)
    if not specs:
        raise ValueError(
            f"`model` '{model.name}' has no channel that can be removed "
            "(every Conv/Dense output reaches a model output or a fixed layer)."
        )

    def clone_layer(layer):
        copy = copy_layer(layer)
        if layer.name not in specs:
            return copy
        outs, ins = specs[layer.name]
        return PruneFilters(copy, pruning_schedule, out_groups=outs, in_groups=ins,
                            importance=importance, scope=scope)

    return keras.models.clone_model(model, clone_function=clone_layer)


def _slice(value, axis, keep):
    return np.compress(keep, value, axis=axis % value.ndim) if keep is not None else value


def _shrunk_weights(layer, ins, outs, channels):
    """The layer's weights with removed input rows / filters / channels cut."""
    weights = layer.get_weights()
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise, pointwise, *bias = weights
        pointwise = _slice(_slice(pointwise, 2, ins), 3, outs)
        return [_slice(depthwise, 2, ins), pointwise] + [_slice(b, 0, outs) for b in bias]
    if is_producer(layer):
        kernel, *bias = weights
        kernel = _slice(_slice(kernel, -2, ins), -1, outs)
        return [kernel] + [_slice(b, 0, outs) for b in bias]
    if channels is not None:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel, *bias = weights
            return [_slice(kernel, 2, channels)] + [_slice(b, 0, channels) for b in bias]
        return [_slice(w, 0, channels) for w in weights]
    return weights


def shrink(model):
    """A smaller dense model: channels that reach nothing are cut out.

    A channel group is removed when every Conv/Dense kernel row reading it
    is zero (as `prune_filters` leaves it) and it reaches no model output
    or fixed layer: its producers lose those filters (and biases), BatchNorm
    and depthwise layers those channels, and consumers those input rows.
    The result computes the same outputs (to float rounding). Pruning
    wrappers are stripped first.

    Args:
        model: a built Sequential or functional model, possibly wrapped by
            `prune_filters`.

    Returns:
        A new functional model (sharing no variables with `model`).

    Raises:
        ValueError: for a subclassed model, or when a filter masked by
            `prune_filters` cannot be removed (naming the layer and why).

    Example:
    >>> small = shrink(strip_pruning(pruned))
    >>> small.count_params() < pruned.count_params()
    True
    """
    if not is_graph_model(model):
        raise ValueError(
            f"`model` must be a Sequential or functional model; '{model.name}' is "
            f"a subclassed {type(model).__name__}, which shrink cannot rebuild."
        )
    masked = {
        w.layer.name: (keras.ops.convert_to_numpy(w.masks[-1]), w.out_groups)
        for w in pruning_wrappers(model) if isinstance(w, PruneFilters)
    }
    plain = strip_pruning(model)
    if isinstance(plain, keras.Sequential):
        plain = keras.Model(plain.inputs, plain.outputs, name=plain.name)
    graph = ChannelGraph(plain)
    dead = set()
    rows = {}
    for name, labels in graph.consumed.items():
        kernel = keras.ops.convert_to_numpy(plain.get_layer(name).weights[
            1 if isinstance(plain.get_layer(name), keras.layers.SeparableConv2D) else 0
        ])
        rows[name] = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)
    live = set()
    for name, labels in graph.consumed.items():
        for label, row in zip(labels, rows[name]):
            if np.any(row != 0):
                live.add(graph.group(label))
    for root in graph.groups():
        if root not in live:
            dead.add(root)

    def keep_of(labels):
        keep = np.array([graph.group(label) not in dead for label in labels])
        return None if keep.all() else keep

    for name, (mask, out_groups) in masked.items():
        cut = np.all(mask.reshape(-1, mask.shape[-1]) == 0, axis=0) & (
            np.asarray(out_groups) >= 0
        )
        kept = keep_of(graph.produced[name])
        for index in np.flatnonzero(cut):
            if kept is None or kept[index]:
                reason = graph.pinned_reason(graph.produced[name][index])
                raise ValueError(
                    f"shrink cannot remove filter {index} of layer '{name}', "
                    f"masked by prune_filters: {reason or 'a layer still reads it'}."
                )

    config = plain.get_config()
    for entry in config["layers"]:
        labels = graph.produced.get(entry["name"])
        keep = keep_of(labels) if labels else None
        if keep is not None:
            key = "units" if entry["class_name"] == "Dense" else "filters"
            entry["config"][key] = int(keep.sum())
        entry.pop("build_config", None)
    small = keras.Model.from_config(config)
    for layer in small.layers:
        if not layer.weights:
            continue
        name = layer.name
        original = plain.get_layer(name)
        ins = keep_of(graph.consumed[name]) if name in graph.consumed else None
        outs = keep_of(graph.produced[name]) if name in graph.produced else None
        channels = (keep_of(graph.channelwise[name])
                    if name in graph.channelwise else None)
        layer.set_weights(_shrunk_weights(original, ins, outs, channels))
    return small


def finalize(model):
    """The model to export after pruning: `strip_pruning`, then `shrink` if
    it was filter-pruned (one call for any `prune_for_structure` result).

    Example:
    >>> exported = finalize(pruned)
    """
    if any(isinstance(w, PruneFilters) for w in pruning_wrappers(model)):
        return shrink(model)
    return strip_pruning(model)
