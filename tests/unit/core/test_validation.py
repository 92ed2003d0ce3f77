import pytest

from bastion.core import ValidationError
from bastion.core.validation import (
    check_bool,
    check_bounds,
    check_choice,
    check_int,
    check_number,
    describe,
)


def test_check_number_accepts_in_range_and_returns_float() -> None:
    assert check_number("epsilon", 1, low=0.0) == 1.0
    assert isinstance(check_number("epsilon", 1, low=0.0), float)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0.1", "type=str"),
        (True, "type=bool"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-1, ">= 0"),
        (None, "type=NoneType"),
    ],
)
def test_check_number_names_argument_expectation_and_value(value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_number("epsilon", value, low=0.0)
    message = str(info.value)
    assert message.startswith("Expected epsilon to be a finite number")
    assert "but got epsilon=" in message
    assert fragment in message


def test_open_bounds_exclude_the_endpoint() -> None:
    with pytest.raises(ValidationError, match="> 0"):
        check_number("stepsize", 0.0, low=0.0, low_open=True)
    with pytest.raises(ValidationError, match="< 1"):
        check_number("p", 1.0, high=1.0, high_open=True)


def test_check_int_refuses_bool_float_and_out_of_range() -> None:
    assert check_int("steps", 3, low=1) == 3
    for bad in (True, 2.0, "3", 0):
        with pytest.raises(ValidationError, match="steps"):
            check_int("steps", bad, low=1)


def test_check_bool_and_choice() -> None:
    assert check_bool("flag", False) is False
    with pytest.raises(ValidationError, match="a bool"):
        check_bool("flag", 1)
    assert check_choice("norm", "l2", ["linf", "l2"]) == "l2"
    with pytest.raises(ValidationError, match="one of 'linf', 'l2'"):
        check_choice("norm", "l1", ["linf", "l2"])


def test_describe_truncates_long_values() -> None:
    text = describe("x", "a" * 500)
    assert len(text) < 120
    assert text.endswith("(type=str)")


def test_validation_survives_python_optimize_flag() -> None:
    import subprocess
    import sys

    code = (
        "from bastion.core.validation import check_number\n"
        "try:\n    check_number('epsilon', -1, low=0)\n"
        "except ValueError as e:\n    print('raised', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("raised Expected epsilon")


def test_check_bounds_returns_floats_and_refuses_bad_pairs() -> None:
    assert check_bounds("bounds", [0, 255]) == (0.0, 255.0)
    for bad in ((0.0, float("nan")), (1, 1), (0,), "0,1"):
        with pytest.raises(ValidationError, match="bounds"):
            check_bounds("bounds", bad)
