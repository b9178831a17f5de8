"""AutoAugment's ops, published policies and torchvision's magnitude bins,
as tables the layer draws from."""

import numpy as np

# The order is the branch index of `tf.switch_case`; "Identity" is taken
# when an op's probability draw fails.
OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
       "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast",
       "Equalize", "Invert", "Identity")
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
           "Color", "Contrast", "Sharpness"}
_BINS = 10
# torchvision's linspace(start, end, 10) magnitudes.
_LINSPACE_RANGES = {"ShearX": (0.0, 0.3), "ShearY": (0.0, 0.3), "Rotate": (0.0, 30.0),
                    "Brightness": (0.0, 0.9), "Color": (0.0, 0.9), "Contrast": (0.0, 0.9),
                    "Sharpness": (0.0, 0.9), "Solarize": (255.0, 0.0)}

# (op, probability, magnitude bin) pairs, as published with the paper.
POLICIES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}


def _float32_linspace(start, end, index):
    """`torch.linspace(start, end, 10)[index]` bit for bit (float32, filled
    from both ends): blends truncate to integers, so a factor one float32
    step away moves pixels by one level."""
    start, end = np.float32(start), np.float32(end)
    step = (end - start) / np.float32(_BINS - 1)
    if index < _BINS // 2:
        return float(start + step * np.float32(index))
    return float(end - step * np.float32(_BINS - 1 - index))


def magnitude(op, bin_index):
    """The unsigned magnitude of `op` at `bin_index` (0-9), in torchvision's
    units: shear as tan(angle), translation as a fraction of the image side,
    degrees, blend factor minus 1, posterize bits, solarize threshold."""
    if bin_index is None:
        return 0.0
    if op in ("TranslateX", "TranslateY"):
        return 150.0 / 331.0 * bin_index / (_BINS - 1)
    if op == "Posterize":
        return float(8 - round(4 * bin_index / (_BINS - 1)))
    if op in _LINSPACE_RANGES:
        return _float32_linspace(*_LINSPACE_RANGES[op], bin_index)
    return 0.0


def policy_tables(policy):
    """`(op index, probability, unsigned magnitude, signed)` arrays of shape
    `(sub-policies, 2)`."""
    op_index, probability, size, signed = [], [], [], []
    for sub_policy in policy:
        op_index.append([OPS.index(op) for op, _, _ in sub_policy])
        probability.append([p for _, p, _ in sub_policy])
        size.append([magnitude(op, b) for op, _, b in sub_policy])
        signed.append([op in _SIGNED for op, _, _ in sub_policy])
    return op_index, probability, size, signed


def check_policy(policy):
    """The sub-policies of a policy name or of a list of sub-policies, which
    are checked."""
    if isinstance(policy, str):
        if policy.lower() not in POLICIES:
            raise ValueError(
                f"Unknown AutoAugment policy={policy!r}; use one of "
                f"{sorted(POLICIES)} or a list of sub-policies."
            )
        return POLICIES[policy.lower()]
    sub_policies = tuple(tuple(tuple(op) for op in sub) for sub in policy)
    for sub in sub_policies:
        for entry in sub:
            if (len(entry) != 3 or entry[0] not in OPS or not 0.0 <= entry[1] <= 1.0
                    or entry[2] not in (None, *range(_BINS))):
                raise ValueError(
                    f"policy entries must be (op, probability, bin) with op in "
                    f"{list(OPS)}, probability in [0, 1] and bin None or 0-9; "
                    f"got {entry!r}."
                )
    if not sub_policies or any(len(sub) != len(sub_policies[0]) for sub in sub_policies):
        raise ValueError(
            "policy must be a non-empty list of sub-policies with the same "
            f"number of ops each, got {policy!r}."
        )
    return sub_policies
