"""Which of the two locked stacks this environment is (docs/platforms.md), and the few things that differ
between them, in one place:

- `legacy`: TFX 1.16 / TensorFlow 2.16 / Keras 3.12 / protobuf 3.20 on Python 3.10 (requirements.lock);
- `current`: TFX 1.21 / TensorFlow 2.21 / Keras 3.15 / protobuf 6 on Python 3.13 (requirements-current.lock).

The stack is read from the installed TensorFlow's version (package metadata, no import), so it is right whichever way
the environment was made."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

LEGACY = "legacy"
CURRENT = "current"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorflow_version() -> tuple[int, int]:
    """(major, minor) of the installed TensorFlow, (0, 0) if none."""
    v = _version("tensorflow") or _version("tensorflow-cpu") or "0.0"
    major, minor = (int(p) for p in v.split(".")[:2])
    return major, minor


def name() -> str:
    """`legacy` (TF < 2.21) or `current` (TF >= 2.21)."""
    return CURRENT if tensorflow_version() >= (2, 21) else LEGACY


def describe() -> str:
    """e.g. "current (TensorFlow 2.21.0, Python 3.13.5)"."""
    return (f"{name()} (TensorFlow {_version('tensorflow') or 'not installed'}, "
            f"Python {sys.version.split()[0]})")


def s3_support() -> str | None:
    """None if s3:// works through tf.io.gfile on this stack, else why not (a sentence naming the stack).

    TensorFlow's S3 filesystem lives in tensorflow-io since TF 2.6. Its last release, 0.37.1, is built for TF 2.16
    and Python <= 3.12: the current stack (TF 2.21, Python 3.13) has no tensorflow-io, hence no s3:// in TensorFlow."""
    if importlib.util.find_spec("tensorflow_io") is not None:
        return None
    if name() == CURRENT:
        return (f"s3:// paths are not supported on the {describe()} stack: TensorFlow reads S3 through tensorflow-io, "
                "whose last release (0.37.1) is built for TensorFlow 2.16 and has no Python 3.13 wheel. Use gs:// "
                "or a local/mounted path, or the legacy stack (DCGAN_STACK=legacy make setup) for s3://.")
    return (f"s3:// paths need tensorflow-io, which is not installed in this {describe()} environment "
            "(make setup installs it on the legacy stack).")


def message_class(descriptor):  # noqa: ANN001, ANN201 - a protobuf Descriptor in, its generated message class out
    """The message class of a protobuf descriptor: protobuf 6 (current) has `message_factory.GetMessageClass` and no
    longer `MessageFactory.GetPrototype`; protobuf 3.20 (legacy) has only the latter."""
    from google.protobuf import message_factory

    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def message_to_json(message, **options) -> str:  # noqa: ANN001 - a protobuf message
    """`json_format.MessageToJson` with fields at their default value printed (as TF Serving's JSON does): the option
    is `including_default_value_fields` in protobuf 3.20 (legacy) and `always_print_fields_with_no_presence` since
    protobuf 5 (current)."""
    import inspect

    from google.protobuf import json_format

    params = inspect.signature(json_format.MessageToJson).parameters
    key = ("always_print_fields_with_no_presence" if "always_print_fields_with_no_presence" in params
           else "including_default_value_fields")
    return json_format.MessageToJson(message, **{key: True}, **options)


# The official TF Serving image matching each stack's TensorFlow (kubernetes/base pins the legacy one; README
# "Supported platforms" says how an overlay sets the current one with `kustomize edit set image`).
SERVING_IMAGES = {LEGACY: "tensorflow/serving:2.16.1", CURRENT: "tensorflow/serving:2.21.0"}
