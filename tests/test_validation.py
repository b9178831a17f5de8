"""The shared argument checks: each error names the argument and the value."""

import pytest

from r2kd_keras import validation


def test_check_choice_accepts_a_choice_and_names_what_it_refuses():
    validation.check_choice("quantize", "int8", ("none", "int8"))
    with pytest.raises(ValueError) as error:
        validation.check_choice("quantize", "int4", ["none", "int8"])
    assert str(error.value) == "`quantize` must be one of ('none', 'int8'), received: 'int4'"


@pytest.mark.parametrize("value, high_inclusive, ok", [
    (0.0, True, True), (1.0, True, True), (1.0, False, False), (-0.1, True, False),
    (True, True, False), ("0.5", True, False),
])
def test_check_range_bounds_and_types(value, high_inclusive, ok):
    call = lambda: validation.check_range("rate", value, 0.0, 1.0, high_inclusive)  # noqa: E731
    if ok:
        call()
    else:
        bracket = "]" if high_inclusive else r"\)"
        with pytest.raises(ValueError, match=rf"`rate` must be a number in \[0.0, 1.0{bracket}, "
                                             rf"received: {value!r}"):
            call()


@pytest.mark.parametrize("value", [0, -1.5, True, None, "4"])
def test_check_positive_refuses_what_is_not_a_positive_number(value):
    with pytest.raises(ValueError, match=rf"`temperature` must be a positive number, received: "):
        validation.check_positive("temperature", value)
    validation.check_positive("temperature", 0.5)
