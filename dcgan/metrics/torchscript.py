"""A numpy-only reader of TorchScript archives (`torch.jit.save` zips): the module tree and its tensors, without torch.

A TorchScript file is a zip holding `<prefix>/data.pkl` (a pickle of the module objects whose tensors are
persistent references to raw storages) and `<prefix>/data/<key>` (the storages, little-endian). We unpickle it with
a restricted `pickle.Unpickler`: module classes (`__torch__.*`) become `ScriptModule` records, tensors become numpy
arrays (strided views of their storage, copied), and any other global is refused, so a file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchScriptFormatError(ValueError):
    """The file is not a TorchScript archive this reader understands."""


@dataclass
class ScriptModule:
    """One `__torch__.*` object of the archive: its TorchScript class name and its attributes (tensors are numpy)."""

    type_name: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["attributes"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('type_name', '?')} has no attribute {name!r}") from None

    @property
    def class_name(self) -> str:
        """The class name without its module path and mangling (`Conv2dLayer`, `InceptionE`, ...)."""
        return self.type_name.rsplit(" ", 1)[-1].rsplit(".", 1)[-1]

    def children(self) -> dict[str, ScriptModule]:
        return {k: v for k, v in self.attributes.items() if isinstance(v, ScriptModule)}

    def tensors(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every tensor under this module, by dotted path."""
        out = {}
        for k, v in self.attributes.items():
            if isinstance(v, np.ndarray):
                out[prefix + k] = v
            elif isinstance(v, ScriptModule):
                out.update(v.tensors(f"{prefix}{k}."))
        return out


def _script_class(type_name: str) -> type:
    """A stand-in class for one TorchScript class: NEWOBJ creates it, BUILD passes its state dict."""

    def setstate(self, state):  # noqa: ANN001
        if not isinstance(state, dict):
            raise TorchScriptFormatError(f"unexpected state of {type_name}: {type(state).__name__}")
        self.__dict__["type_name"] = type_name
        self.__dict__["attributes"] = dict(state)

    return type("_Script", (ScriptModule,), {"__setstate__": setstate, "__init__": lambda self: None})


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> np.ndarray:
    itemsize = storage.dtype.itemsize
    if not size:
        return storage[offset].copy()
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if needed > storage.size:
        raise TorchScriptFormatError(f"tensor of size {size} stride {stride} overruns its storage ({storage.size})")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride), writeable=False)
    return np.ascontiguousarray(view)


def _build_intlist(values: list) -> list[int]:
    return [int(v) for v in values]


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):  # noqa: ANN001
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _script_class(f"{module} {name}")
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return _build_intlist
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a TorchScript archive")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            if array.size < numel:
                raise TorchScriptFormatError(f"storage {key} holds {array.size} values, expected {numel}")
            self._storages[key] = array.astype(np.dtype(dtype), copy=False)
        return self._storages[key]


def load_torchscript(path: str) -> ScriptModule:
    """Read the module tree of a TorchScript file (the object `torch.jit.load` would return, as plain data)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise TorchScriptFormatError(f"{path} is not a TorchScript archive (not a zip file)") from e
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            raise TorchScriptFormatError(f"{path} is not a TorchScript archive (no <name>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            root = _Unpickler(f, archive, prefix).load()
    if not isinstance(root, ScriptModule):
        raise TorchScriptFormatError(f"{path}: the archive's root object is a {type(root).__name__}, not a module")
    return root
