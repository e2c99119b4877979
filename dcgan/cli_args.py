"""Settings from text, generated from config dataclasses: every field becomes `--field-name` on a command line, and
`parse_value` is the one place where a string becomes a field's value (the CLI flags here, the pipeline's
`--set section.field=value`). Configuration stays data (one definition) and every value is overridable."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

NONE_WORDS = ("none", "null")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, True) or (hint, False)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def type_name(hint: Any) -> str:
    inner, optional = _optional(hint)
    if typing.get_origin(inner) is tuple:
        name = f"comma-separated {typing.get_args(inner)[0].__name__}s"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def is_settable(hint: Any) -> bool:
    """Whether `parse_value` can produce a value of this type (bool, int, float, str, tuples of them, optionals)."""
    inner, _ = _optional(hint)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        return len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float, str)
    return inner in (bool, int, float, str)


def parse_value(raw: str, hint: Any) -> Any:
    """The value of type `hint` that `raw` spells: bool (1/0, true/false, yes/no, on/off), int, float, str, a tuple
    (comma-separated), or `X | None` ("none"/"null" → None). Raises ValueError("expected <type>, got '<raw>'")."""
    inner, optional = _optional(hint)
    text = raw.strip()
    if optional and text.lower() in NONE_WORDS:
        return None
    try:
        if inner is bool:
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise ValueError(text)
        if inner is int:
            return int(text)
        if inner is float:
            return float(text)
        if typing.get_origin(inner) is tuple:
            item = typing.get_args(inner)[0]
            return tuple(item(part.strip()) for part in text.split(",") if part.strip())
        if inner is str:
            return raw
    except ValueError:
        pass
    raise ValueError(f"expected {type_name(hint)}, got {raw!r}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _argparse_type(hint: Any):  # noqa: ANN202
    def convert(text: str) -> Any:
        try:
            return parse_value(text, hint)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    convert.__name__ = type_name(hint)
    return convert


def field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = (),
                            prefix: str = "", help_text: dict[str, str] | None = None,
                            aliases: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Add one optional flag per (non-dataclass) field of `cls`; a flag not given leaves no attribute (so only given
    flags override, and `--x none` can set an optional field to None).
    Nested dataclass fields are flattened (their own field names). `aliases` adds more spellings of a field's flag.
    Returns the destination names added."""
    hints = typing.get_type_hints(cls)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            added += add_dataclass_arguments(parser, hint, exclude=exclude, prefix=prefix, help_text=help_text,
                                             aliases=aliases)
            continue
        if not is_settable(hint):
            continue
        dest = prefix + f.name
        default = field_default(f)
        text = (help_text or {}).get(f.name, "")
        text = f"{text} (default: {default!r})" if text else f"default: {default!r}"
        flags = [_flag(prefix + f.name), *(aliases or {}).get(f.name, ())]
        if hint is bool:
            parser.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=text)
        else:
            parser.add_argument(*flags, dest=dest, type=_argparse_type(hint), default=argparse.SUPPRESS,
                                metavar=f.name.upper(), help=text)
        added.append(dest)
    return added


def overrides(args: argparse.Namespace, names: list[str], prefix: str = "") -> dict[str, Any]:
    """The flags that were given, as {field_name: value}."""
    return {dest[len(prefix):]: getattr(args, dest) for dest in names if hasattr(args, dest)}


def positive_int(text: str) -> int:
    """argparse `type=` for counts: a clear error for 0, negatives and non-numbers."""
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from e
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
