"""The functional graph of a Keras model, read from its public config."""

import keras


def is_graph_model(model):
    """Whether `model` is a Sequential or functional model (not subclassed).

    Example:
    >>> is_graph_model(keras.Sequential([keras.layers.Dense(2)]))
    True
    """
    if isinstance(model, keras.Sequential):
        return True
    # Only functional models have symbolic `inputs`; subclassed ones lack it.
    return isinstance(model, keras.Model) and hasattr(model, "inputs")


def _tensors(structure):
    """The `(layer, node, index, shape)` of every Keras tensor in `structure`."""
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            layer, node, index = structure["config"]["keras_history"]
            return [(layer, node, index, tuple(structure["config"]["shape"]))]
        return [t for value in structure.values() for t in _tensors(value)]
    if isinstance(structure, (list, tuple)):
        return [t for value in structure for t in _tensors(value)]
    return []


class Call:
    """One call of a layer in the graph: its input tensors, in order.

    Attributes:
        layer: the layer's name.
        node: the index of this call among the layer's calls.
        inputs: list of `(layer, node, index, shape)` input tensors.
    """

    def __init__(self, layer, node, inputs):
        self.layer = layer
        self.node = node
        self.inputs = inputs


class FunctionalGraph:
    """Layers, their calls and the tensors between them, in topological order.

    Built from `model.get_config()` (the public serialisation format), so
    non-layer operations of Keras 3 functional models (`x + 3.0`) appear as
    calls too. A Sequential model is read through an equivalent functional
    one.

    Args:
        model: a built Sequential or functional model.

    Example:
    >>> graph = FunctionalGraph(model)
    >>> graph.producers("conv2")
    ['relu1']
    """

    def __init__(self, model):
        if not is_graph_model(model):
            raise ValueError(
                f"`model` must be a Sequential or functional model; '{model.name}' "
                f"is a subclassed {type(model).__name__}, whose graph is not known."
            )
        if isinstance(model, keras.Sequential):
            model = keras.Model(model.inputs, model.outputs, name=model.name)
        self.model = model
        config = model.get_config()
        self.entries = {entry["name"]: entry for entry in config["layers"]}
        self.calls = [
            Call(entry["name"], node, _tensors(inbound))
            for entry in config["layers"]
            for node, inbound in enumerate(entry["inbound_nodes"])
        ]
        self.inputs = [tuple(t[:3]) for t in _flat_history(config["input_layers"])]
        self.outputs = [tuple(t[:3]) for t in _flat_history(config["output_layers"])]
        self._consumers = {}
        for call in self.calls:
            for tensor in call.inputs:
                self._consumers.setdefault(tensor[0], []).append(call.layer)

    def class_name(self, name):
        return self.entries[name]["class_name"]

    def layer(self, name):
        """The layer object named `name`, or None for a non-layer operation."""
        try:
            return self.model.get_layer(name)
        except ValueError:
            return None

    def producers(self, name):
        """Names of the layers feeding `name`, in call order, without repeats."""
        names = [t[0] for call in self.calls if call.layer == name for t in call.inputs]
        return list(dict.fromkeys(names))

    def consumers(self, name):
        """Names of the layers fed by `name`, without repeats."""
        return list(dict.fromkeys(self._consumers.get(name, [])))


def _flat_history(value):
    # `input_layers` is `[name, node, index]` or a list of those.
    if len(value) == 3 and isinstance(value[0], str):
        return [value]
    return [item for entry in value for item in _flat_history(entry)]
