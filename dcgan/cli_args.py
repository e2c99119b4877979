"""Command-line flags generated from config dataclasses: every field becomes `--field-name`, so configuration stays
data (one definition) and every value is overridable from the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                            prefix: str = "", help_text: dict[str, str] | None = None) -> list[str]:
    """Add one optional flag per (non-dataclass) field of `cls`; defaults are None so only given flags override.
    Nested dataclass fields are flattened (their own field names). Returns the destination names added."""
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            added += add_dataclass_arguments(parser, hint, exclude=exclude, prefix=prefix, help_text=help_text)
            continue
        dest = prefix + f.name
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        text = (help_text or {}).get(f.name, "")
        text = f"{text} (default: {default!r})" if text else f"default: {default!r}"
        base = typing.get_origin(hint) or hint
        if base is bool:
            parser.add_argument(_flag(prefix + f.name), dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        elif base in (int, float, str):
            parser.add_argument(_flag(prefix + f.name), dest=dest, type=base, default=None, metavar=f.name.upper(),
                                help=text)
        else:
            continue
        added.append(dest)
    return added


def overrides(args: argparse.Namespace, names: list[str], prefix: str = "") -> dict[str, Any]:
    """The flags that were given, as {field_name: value}."""
    out = {}
    for dest in names:
        value = getattr(args, dest, None)
        if value is not None:
            out[dest[len(prefix):]] = value
    return out


def positive_int(text: str) -> int:
    """argparse `type=` for counts: a clear error for 0, negatives and non-numbers."""
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from e
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
