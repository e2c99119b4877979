"""TFX execution parameters generated from a settings dataclass: one parameter per field, optional where the field
may be None, so a component's parameter table is never written by hand next to the dataclass it feeds."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def parameter_types(cls: type) -> dict[str, tuple[type, bool]]:
    """Field name → (the field's type without None, whether it may be None)."""
    out: dict[str, tuple[type, bool]] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        out[f.name] = (args[0], True) if args else (hints[f.name], False)
    return out


def typed_values(values: dict[str, Any], types: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """`values` converted to their parameter types (e.g. an int given for a float parameter); None stays None."""
    return {name: (value if value is None else types[name][0](value)) for name, value in values.items()}


def from_exec_properties(exec_properties: dict[str, Any], types: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """The fields an execution was given: optional ones as recorded (None = off), required ones where present (the
    dataclass's default otherwise)."""
    return {name: exec_properties.get(name) for name, (_, optional) in types.items()
            if name in exec_properties or optional}
