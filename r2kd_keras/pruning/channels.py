"""Which channels of a functional model are tied together (a dependency graph).

Every channel of every tensor gets a label; layers that create channels
(Conv, Dense) create new labels, channel-wise layers (BatchNorm, depthwise
conv, activations, pooling) pass them on, element-wise merges (`Add`,
`Multiply`) tie the labels of their inputs position by position, and
`Concatenate` / `Flatten` lay them out side by side or repeated. Tied labels
form a *channel group*: removing a channel means removing it from every layer
in its group at once, as Torch-Pruning's dependency graph does for PyTorch.
`ChannelShuffle` and an even `ChannelSplit` tie channel j of every group, so
groups stay equal. Channels that reach a layer whose channel layout cannot
change (a model input or output, a grouped conv, any layer not known here) are *pinned*: they are never removed, and the reason is kept.
"""

import keras

from r2kd_keras.models.layers import ChannelShuffle
from r2kd_keras.models.layers import ChannelSplit
from r2kd_keras.pruning.graph import FunctionalGraph

# Layers that act on each channel separately and have no weights.
_PASS_THROUGH = (
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.UpSampling2D,
    keras.layers.Identity,
)

# Activations that are element-wise (softmax, across channels, is not).
_ELEMENTWISE_ACTIVATIONS = {
    "linear", "relu", "relu6", "sigmoid", "hard_sigmoid", "swish", "silu",
    "hard_swish", "hard_silu", "tanh", "elu", "selu", "gelu", "leaky_relu",
    "softplus", "softsign", "mish", "exponential",
}

_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Average,
)

# Keras 3 records `x + 3.0` in a functional model as an operation of these
# names (not a layer); with a scalar operand they are element-wise.
_ELEMENTWISE_OPS = {"Add", "Subtract", "Multiply", "Divide", "TrueDivide",
                    "Maximum", "Minimum"}

MODEL_OUTPUT = "it is a model output"


def is_producer(layer):
    """Whether `layer` creates its output channels from all input channels."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        return layer.depth_multiplier == 1
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D,
                          keras.layers.Conv3D)):
        return layer.groups == 1
    return isinstance(layer, keras.layers.Dense)


def _is_channelwise(layer, rank):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depth_multiplier == 1
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer.axis in (-1, rank - 1)
    return False


def _passes_through(layer):
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        return isinstance(name, str) and name in _ELEMENTWISE_ACTIVATIONS
    if isinstance(layer, keras.layers.Rescaling):
        return all(isinstance(v, (int, float)) for v in (layer.scale, layer.offset))
    return isinstance(layer, _PASS_THROUGH)


class ChannelGraph:
    """The channel groups of a functional model.

    Attributes:
        produced: `{layer name: [label per output filter]}` for Conv/Dense.
        consumed: `{layer name: [label per kernel input row]}` for Conv/Dense
            (a Dense after `Flatten` has one row per position and channel).
        channelwise: `{layer name: [label per channel]}` for BatchNorm and
            depthwise convs.

    Args:
        model: a built Sequential or functional model.

    Example:
    >>> graph = ChannelGraph(model)
    >>> graph.group(graph.produced["conv1"][0]) == graph.group(graph.produced["proj"][0])
    True
    """

    def __init__(self, model):
        self.functional = FunctionalGraph(model)
        self._parent = []
        self._pinned = {}
        self.produced, self.consumed, self.channelwise = {}, {}, {}
        self._tensors = {}
        for name, node, index in self.functional.inputs:
            size = self.functional.entries[name]["config"]["batch_shape"][-1]
            self._tensors[(name, node, index)] = self._new(size, "it is a model input")
        done = {ref[:2] for ref in self._tensors}
        pending = list(self.functional.calls)
        while pending:
            ready = [c for c in pending if all(t[:2] in done for t in c.inputs)]
            if not ready:
                raise ValueError(
                    f"Could not order the graph of model '{model.name}' near layer "
                    f"'{pending[0].layer}'."
                )
            for call in ready:
                self._visit(call)
                done.add((call.layer, call.node))
                pending.remove(call)
        for ref, tensor in zip(self.functional.outputs, self.functional.model.outputs):
            self._pin(self._tensors_of(ref, tensor.shape), MODEL_OUTPUT)

    # Union-find over labels.
    def _new(self, size, pinned=None):
        start = len(self._parent)
        self._parent.extend(range(start, start + size))
        labels = list(range(start, start + size))
        if pinned:
            self._pin(labels, pinned)
        return labels

    def group(self, label):
        """The representative label of `label`'s channel group."""
        root = label
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[label] != root:
            self._parent[label], label = root, self._parent[label]
        return root

    def _union(self, a, b):
        a, b = self.group(a), self.group(b)
        if a != b:
            self._parent[b] = a
            if b in self._pinned:
                self._pinned.setdefault(a, self._pinned.pop(b))

    def _tie(self, first, second):
        for a, b in zip(first, second, strict=True):
            self._union(a, b)

    def _pin(self, labels, reason):
        for label in labels:
            self._pinned.setdefault(self.group(label), reason)

    def pinned_reason(self, label):
        """Why `label`'s group cannot be removed, or None if it can."""
        return self._pinned.get(self.group(label))

    def _tensors_of(self, ref, shape=None):
        ref = tuple(ref[:3])
        if ref not in self._tensors:
            layer = self.functional.class_name(ref[0])
            self._tensors[ref] = self._new(
                shape[-1], f"it comes out of '{ref[0]}' ({layer}), whose channel "
                "layout cannot change"
            )
        return self._tensors[ref]

    def _visit(self, call):
        inputs = [self._tensors_of(t, t[3]) for t in call.inputs]
        layer = self.functional.layer(call.layer)
        out = self._output_labels(call, layer, inputs)
        if out is None:
            reason = (f"it feeds '{call.layer}' "
                      f"({self.functional.class_name(call.layer)}), whose "
                      "channels cannot be cut")
            for labels in inputs:
                self._pin(labels, reason)
        else:
            for index, labels in enumerate(out):
                self._tensors[(call.layer, call.node, index)] = labels

    def _record(self, table, name, labels):
        if name in table:
            self._tie(table[name], labels)  # a shared layer: every call alike
        else:
            table[name] = list(labels)

    def _output_labels(self, call, layer, inputs):
        """Labels of each of the call's outputs, or None to pin its inputs."""
        if layer is None:
            if self.functional.class_name(call.layer) in _ELEMENTWISE_OPS:
                return [self._merge(inputs)]
            return None
        if isinstance(layer, keras.Model) or len(inputs) == 0:
            return None
        if is_producer(layer):
            self._record(self.consumed, layer.name, inputs[0])
            if layer.name not in self.produced:
                width = layer.units if isinstance(layer, keras.layers.Dense) else layer.filters
                self.produced[layer.name] = self._new(width)
            return [self.produced[layer.name]]
        if _is_channelwise(layer, len(call.inputs[0][3])):
            self._record(self.channelwise, layer.name, inputs[0])
            return [inputs[0]]
        if _passes_through(layer) and len(inputs) == 1:
            return [inputs[0]]
        if isinstance(layer, _MERGES):
            return [self._merge(inputs)]
        if isinstance(layer, keras.layers.Concatenate) and layer.axis in (
            -1, len(call.inputs[0][3]) - 1
        ):
            return [[label for labels in inputs for label in labels]]
        if isinstance(layer, keras.layers.Flatten) and len(call.inputs[0][3]) > 2:
            positions = 1
            for size in call.inputs[0][3][1:-1]:
                positions *= size
            return [inputs[0] * positions]
        if isinstance(layer, ChannelShuffle):
            return [self._shuffle(inputs[0], layer.groups)]
        if isinstance(layer, ChannelSplit) and len(inputs[0]) % 2 == 0 and (
            layer.ratio == 0.5
        ):
            half = len(inputs[0]) // 2
            self._tie(inputs[0][:half], inputs[0][half:])
            return [inputs[0][:half], inputs[0][half:]]
        return None

    def _shuffle(self, labels, groups):
        """Channel `i * n + j` moves to `j * groups + i` (n = C / groups).
        Channel j of every group is tied, so the groups stay equal in size
        and the shuffle of the smaller tensor is the same permutation."""
        n = len(labels) // groups
        for j in range(n):
            self._tie([labels[j]] * (groups - 1), labels[n + j::n][: groups - 1])
        return [labels[i * n + j] for j in range(n) for i in range(groups)]

    def _merge(self, inputs):
        """Element-wise op: same-position labels are tied; a 1-channel input
        broadcasts over all channels and is pinned."""
        widest = max(inputs, key=len)
        for labels in inputs:
            if len(labels) == len(widest):
                self._tie(widest, labels)
            elif len(labels) == 1:
                self._pin(labels, "it is broadcast over channels")
            else:
                return None
        return widest

    def groups(self):
        """`{group: [labels]}` of the groups that may be removed (unpinned)."""
        members = {}
        for label in range(len(self._parent)):
            root = self.group(label)
            if root not in self._pinned:
                members.setdefault(root, []).append(label)
        return members
