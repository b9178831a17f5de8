"""`shrink`: the smaller dense model once filter pruning has masked channel
groups, and `finalize`, the one call before export for any pruned model."""

import keras
import numpy as np

from r2kd_keras.pruning.channels import ChannelGraph
from r2kd_keras.pruning.channels import is_producer
from r2kd_keras.pruning.filter_wrapper import PruneFilters
from r2kd_keras.pruning.graph import is_graph_model
from r2kd_keras.pruning.strip import strip_pruning
from r2kd_keras.pruning.wrapper import pruning_wrappers


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
