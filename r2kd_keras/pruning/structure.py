"""One entry point for the runner's `--prune_structure`."""

from r2kd_keras.pruning.filters import prune_filters
from r2kd_keras.pruning.prune import PruneForLatencyOnXNNPack
from r2kd_keras.pruning.prune import prune_low_magnitude
from r2kd_keras.validation import check_choice

STRUCTURES = ("unstructured", "filters", "2:4", "xnnpack")


def prune_for_structure(model, structure, pruning_schedule=None, **kwargs):
    """Wraps `model` for the pruning `structure` named on a command line.

    Args:
        model: a built Sequential or functional model.
        structure: "unstructured" (magnitude, `prune_low_magnitude`),
            "filters" (whole channel groups, `prune_filters`; `finalize`
            then shrinks the network), "2:4" (two zeros in every four input
            weights) or "xnnpack" (1x1 convolutions only, with
            `PruneForLatencyOnXNNPack`).
        pruning_schedule: a `PruningSchedule` (the default of the pruner used
            if None).
        **kwargs: passed on to the pruner (e.g. `importance` for "filters").

    Returns:
        The wrapped model; train it, then export `finalize(model)`.

    Example:
    >>> student = prune_for_structure(student, "filters", ConstantSparsity(0.5, 0))
    >>> ...  # distil
    >>> export.to_tflite(finalize(student), "student.tflite")
    """
    check_choice("structure", structure, STRUCTURES)
    if structure == "filters":
        return prune_filters(model, pruning_schedule, **kwargs)
    if structure == "unstructured":
        return prune_low_magnitude(model, pruning_schedule, **kwargs)
    if structure == "2:4":
        return prune_low_magnitude(model, pruning_schedule, sparsity_m_by_n=(2, 4),
                                   **kwargs)
    if structure == "xnnpack":
        return prune_low_magnitude(model, pruning_schedule,
                                   pruning_policy=PruneForLatencyOnXNNPack(), **kwargs)
