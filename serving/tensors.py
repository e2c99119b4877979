"""Tensors on the wire: numpy ⇄ `tensorflow.TensorProto` (gRPC) and numpy ⇄ TF Serving's REST JSON.

The JSON side follows TF Serving's `util/json_tensor.cc` rule for rule, with its error messages:
row format (`"instances"`: one entry per batch item, objects when the signature has several inputs) and columnar
format (`"inputs"`: one value, or an object of named values); `{"b64": ...}` for binary strings; NaN/Infinity accepted;
integers that a float32 cannot hold exactly refused; outputs whose name ends in `_bytes` written as `{"b64": ...}`;
responses `{"predictions": ...}` for row requests and `{"outputs": ...}` for columnar ones.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
from collections.abc import Callable, Mapping

import numpy as np

from serving.errors import invalid_argument

# tensorflow.DataType values (types.proto) → numpy dtype and TF's DataTypeString.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16, DT_HALF, DT_UINT32, DT_UINT64 = 9, 10, 17, 19, 22, 23

NUMPY_DTYPES: dict[int, np.dtype] = {
    DT_FLOAT: np.dtype(np.float32), DT_DOUBLE: np.dtype(np.float64), DT_INT32: np.dtype(np.int32),
    DT_UINT8: np.dtype(np.uint8), DT_INT16: np.dtype(np.int16), DT_INT8: np.dtype(np.int8),
    DT_STRING: np.dtype(object), DT_INT64: np.dtype(np.int64), DT_BOOL: np.dtype(np.bool_),
    DT_UINT16: np.dtype(np.uint16), DT_HALF: np.dtype(np.float16), DT_UINT32: np.dtype(np.uint32),
    DT_UINT64: np.dtype(np.uint64),
}
TF_NAMES: dict[int, str] = {
    DT_FLOAT: "float", DT_DOUBLE: "double", DT_INT32: "int32", DT_UINT8: "uint8", DT_INT16: "int16",
    DT_INT8: "int8", DT_STRING: "string", DT_INT64: "int64", DT_BOOL: "bool", DT_UINT16: "uint16",
    DT_HALF: "half", DT_UINT32: "uint32", DT_UINT64: "uint64",
}
_FROM_NUMPY = {v: k for k, v in NUMPY_DTYPES.items() if k != DT_STRING}
_INT_RANGES = {DT_INT32: (-2**31, 2**31 - 1), DT_INT16: (-2**15, 2**15 - 1), DT_INT8: (-128, 127), DT_UINT8: (0, 255),
               DT_UINT16: (0, 2**16 - 1), DT_INT64: (-2**63, 2**63 - 1), DT_UINT32: (0, 2**32 - 1),
               DT_UINT64: (0, 2**64 - 1)}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT16_MAX = float(np.finfo(np.float16).max)

# Default cap on the elements of one request tensor (64 MiB of float32): a TensorProto can declare a huge shape with
# one value (TF semantics: the last value is repeated), which must not be allowed to allocate gigabytes.
DEFAULT_MAX_ELEMENTS = 16 * 1024 * 1024


def dtype_name(dtype: int) -> str:
    return TF_NAMES.get(dtype, f"DataType({dtype})")


def dtype_of(array: np.ndarray) -> int:
    if array.dtype.kind in ("O", "S", "U"):
        return DT_STRING
    try:
        return _FROM_NUMPY[array.dtype]
    except KeyError:
        raise invalid_argument(f"unsupported numpy dtype {array.dtype}") from None


# -- TensorProto ------------------------------------------------------------------------------------------------------
def tensor_proto_to_ndarray(proto, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """A TensorProto from a client → numpy, with TF's Tensor::FromProto rules (tensor_content, or the typed `*_val`
    field where fewer values than elements repeat the last one). Raises ServingError(INVALID_ARGUMENT)."""
    dtype = proto.dtype
    if dtype not in NUMPY_DTYPES:
        raise invalid_argument(f"unsupported dtype {dtype_name(dtype)}")
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument("tensor shape has unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise invalid_argument(f"tensor shape {list(shape)} has a negative dimension")
    n = math.prod(shape)
    if n > max_elements:
        raise invalid_argument(f"tensor of shape {list(shape)} has {n} elements, over this server's limit of "
                               f"{max_elements}")
    np_dtype = NUMPY_DTYPES[dtype]
    if dtype == DT_STRING:
        values = list(proto.string_val)
        out = np.empty(n, dtype=object)
        _fill(out, values, n, b"")
        return out.reshape(shape)
    if proto.tensor_content:
        if len(proto.tensor_content) != n * np_dtype.itemsize:
            raise invalid_argument(f"tensor_content has {len(proto.tensor_content)} bytes; shape {list(shape)} of "
                                   f"{dtype_name(dtype)} needs {n * np_dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=np_dtype.newbyteorder("<")).astype(np_dtype).reshape(shape)
    if dtype == DT_FLOAT:
        values = proto.float_val
    elif dtype == DT_DOUBLE:
        values = proto.double_val
    elif dtype in (DT_INT32, DT_INT16, DT_INT8, DT_UINT8, DT_UINT16):
        values = proto.int_val
    elif dtype == DT_INT64:
        values = proto.int64_val
    elif dtype == DT_BOOL:
        values = proto.bool_val
    elif dtype == DT_HALF:
        values = np.asarray(proto.half_val, np.uint16).view(np.float16)
    elif dtype == DT_UINT32:
        values = proto.uint32_val
    else:
        values = proto.uint64_val
    if len(values) > n:
        raise invalid_argument(f"tensor has {len(values)} values but shape {list(shape)} holds {n}")
    if dtype in _PACKED_FIXED and len(values) == n and n > 64:
        return _packed_values(proto, dtype).reshape(shape)
    out = np.zeros(n, dtype=np_dtype)
    _fill(out, values, n, 0)
    return out.reshape(shape)


def _fill(out: np.ndarray, values, n: int, zero) -> None:
    k = len(values)
    if k == 0 or n == 0:
        if n:
            out[:] = zero
        return
    out[:k] = np.asarray(values, dtype=out.dtype) if out.dtype != object else values
    if k < n:
        out[k:] = values[k - 1]


# The typed value field TF's Tensor::AsProtoField fills for each dtype (what TF Serving puts in a PredictResponse).
_VALUE_FIELDS = {DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val", DT_UINT8: "int_val",
                 DT_INT16: "int_val", DT_INT8: "int_val", DT_UINT16: "int_val", DT_INT64: "int64_val",
                 DT_BOOL: "bool_val", DT_UINT32: "uint32_val", DT_UINT64: "uint64_val"}


_PACKED_FIXED = {DT_FLOAT: (5, "<f4"), DT_DOUBLE: (6, "<f8")}  # TensorProto field numbers of float_val, double_val


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_key(field: int) -> bytes:
    return _varint(field << 3 | 2)  # wire type 2: length-delimited (packed)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _packed_values(proto, dtype: int) -> np.ndarray:
    """float_val / double_val read from the TensorProto's wire bytes (one C++ serialisation, then a view of the packed
    values: no Python float per element)."""
    field, wire_dtype = _PACKED_FIXED[dtype]
    data = proto.SerializeToString()
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
            continue
        if wire != 2:
            break  # not expected in a TensorProto; fall back below
        length, pos = _read_varint(data, pos)
        if number == field:
            return np.frombuffer(data, dtype=wire_dtype, count=length // np.dtype(wire_dtype).itemsize,
                                 offset=pos).astype(NUMPY_DTYPES[dtype])
        pos += length
    values = proto.float_val if dtype == DT_FLOAT else proto.double_val
    return np.asarray(values, dtype=NUMPY_DTYPES[dtype])


def ndarray_to_tensor_proto(array: np.ndarray, dtype: int | None = None):
    """numpy → TensorProto with the values in the typed fields (`float_val`, `int64_val`, `string_val`, ...), as TF
    Serving writes responses (Tensor::AsProtoField): clients read `outputs['y'].float_val` or `tf.make_ndarray`."""
    from tensorflow.core.framework import tensor_pb2

    array = np.asarray(array)
    dtype = dtype if dtype is not None else dtype_of(array)
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for d in array.shape:
        proto.tensor_shape.dim.add(size=d)
    if dtype == DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel())
    elif dtype in _PACKED_FIXED:
        # float_val / double_val are packed fixed-width fields: their wire bytes are the little-endian values, so
        # the field is appended as bytes and parsed by protobuf's C++ code (no Python float per element).
        field, wire_dtype = _PACKED_FIXED[dtype]
        data = np.ascontiguousarray(array, dtype=wire_dtype).tobytes()
        proto.MergeFromString(_field_key(field) + _varint(len(data)) + data)
    elif dtype in _PACKED_FIXED:
        # float_val / double_val are packed fixed-width fields: their wire bytes are the little-endian values, so
        # the field is appended as bytes and parsed by protobuf's C++ code (no Python float per element).
        field, wire_dtype = _PACKED_FIXED[dtype]
        data = np.ascontiguousarray(array, dtype=wire_dtype).tobytes()
        proto.MergeFromString(_field_key(field) + _varint(len(data)) + data)
    elif dtype == DT_HALF:
        proto.half_val.extend(np.asarray(array, dtype=np.float16).view(np.uint16).ravel().tolist())
    else:
        getattr(proto, _VALUE_FIELDS[dtype]).extend(np.asarray(array, dtype=NUMPY_DTYPES[dtype]).ravel().tolist())
    return proto


# -- JSON requests ----------------------------------------------------------------------------------------------------
class JsonFormat(enum.Enum):
    ROW = "row"  # "instances" → "predictions"
    COLUMNAR = "columnar"  # "inputs" → "outputs"


InputInfo = tuple[int, tuple[int, ...] | None]  # (DataType, shape or None for unknown rank) of a signature input


def _json_text(value, limit: int = 200) -> str:
    try:
        text = json.dumps(value, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value, dtype: int):
    return invalid_argument(f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of expected type: "
                            f"{dtype_name(dtype)}")


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise invalid_argument("Unable to base64 decode") from None


def _convert_scalar(value, dtype: int):
    """One JSON leaf → a Python value for dtype (AddValueToTensor's checks)."""
    if dtype in (DT_FLOAT, DT_DOUBLE, DT_HALF):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        if isinstance(value, int):
            limit = {DT_FLOAT: 2**24 - 1, DT_DOUBLE: 2**53 - 1, DT_HALF: 2**11 - 1}[dtype]
            if abs(value) > limit:
                raise invalid_argument(f"Cannot convert JSON value: {value} to {dtype_name(dtype)} without loss of "
                                       "precision.")
        elif math.isfinite(value):
            limit = {DT_FLOAT: _FLOAT32_MAX, DT_DOUBLE: math.inf, DT_HALF: _FLOAT16_MAX}[dtype]
            if abs(value) > limit:
                raise invalid_argument(f"Cannot convert JSON value: {_json_text(value)} to {dtype_name(dtype)} "
                                       "without loss of precision.")
        return value
    if dtype in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(value, dtype)
        low, high = _INT_RANGES[dtype]
        if not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if dtype == DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == DT_STRING:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict):
            return _decode_b64(value)
        raise _type_error(value, dtype)
    raise invalid_argument(f"Conversion of JSON Value: {_json_text(value)} to type: {dtype_name(dtype)}")


def json_to_ndarray(value, dtype: int) -> np.ndarray:
    """A (nested-list) JSON value → numpy array of dtype: the dense shape is read from the first elements and every
    list must match it (GetDenseTensorShape + FillTensorProto)."""
    shape: list[int] = []
    v = value
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        v = v[0]
    rank = len(shape)
    flat: list = []

    def fill(v, level: int) -> None:
        if not isinstance(v, list):
            if level != rank:
                raise invalid_argument(f"JSON Value: {_json_text(v)} found at incorrect level: {level + 1} in the "
                                       f"JSON DOM. Expected at level: {rank}")
            if isinstance(v, dict) and dtype != DT_STRING:
                raise _type_error(v, dtype)
            flat.append(_convert_scalar(v, dtype))
            return
        if level >= rank:
            raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(v) != shape[level]:
            raise invalid_argument(f"Encountered list at unexpected size: {len(v)} at level: {level} expected size: "
                                   f"{shape[level]}")
        if level == rank - 1:  # innermost lists: leaves only
            for x in v:
                if isinstance(x, list):
                    raise invalid_argument(f"Encountered list at unexpected level: {level + 1} expected < {rank}")
                if isinstance(x, dict) and dtype != DT_STRING:
                    raise _type_error(x, dtype)
                flat.append(_convert_scalar(x, dtype))
            return
        for x in v:
            fill(x, level + 1)

    fill(value, 0)
    np_dtype = NUMPY_DTYPES[dtype]
    if dtype == DT_STRING:
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    return np.asarray(flat, dtype=np_dtype).reshape(shape)


# A JSON request is checked before json.loads builds Python objects (~30x the bytes for a list of numbers): no tensor
# can be nested deeper than TF's largest rank (254) plus the request's own objects, nor hold more values than the
# per-tensor element cap; so neither limit refuses a request TF Serving could answer.
MAX_JSON_DEPTH = 254 + 4
_SCAN_CHUNK = 1 << 20


def check_json_limits(body: bytes, max_elements: int = DEFAULT_MAX_ELEMENTS, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse (INVALID_ARGUMENT) a JSON body with more than `max_elements` values or nested deeper than `max_depth`,
    scanning the bytes in chunks (brackets and commas inside strings count too: an upper bound)."""
    data = np.frombuffer(body, dtype=np.uint8)
    commas = int(np.count_nonzero(data == ord(",")))
    if commas + 1 > max_elements:
        raise invalid_argument(f"JSON request holds more than {max_elements} values (about {commas + 1}); "
                               "split it into smaller requests")
    depth = 0
    for start in range(0, len(data), _SCAN_CHUNK):
        chunk = data[start:start + _SCAN_CHUNK]
        step = ((chunk == ord("[")) | (chunk == ord("{"))).astype(np.int32)
        step -= ((chunk == ord("]")) | (chunk == ord("}"))).astype(np.int32)
        if not step.any():
            continue
        levels = np.cumsum(step) + depth
        if int(levels.max()) > max_depth:
            raise invalid_argument(f"JSON request is nested deeper than {max_depth} levels (no tensor has a rank "
                                   "that high)")
        depth = int(levels[-1])


def parse_predict_json(body: bytes, input_infos: Callable[[str], Mapping[str, InputInfo]],
                       max_elements: int = DEFAULT_MAX_ELEMENTS) -> tuple[str, dict[str, np.ndarray], JsonFormat]:
    """A REST predict body → (signature_name, {input alias: array}, format). `input_infos(signature_name)` returns the
    signature's inputs (and raises the server's error for an unknown model/signature)."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    check_json_limits(body, max_elements)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise invalid_argument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string ({e})") from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: The document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {_json_text(doc)} Is not object")
    signature = doc.get("signature_name", "")
    if not isinstance(signature, str):
        raise invalid_argument(f"JSON Value: {_json_text(doc)} not formatted correctly. 'signature_name' key must be "
                               "a string value.")
    infos = input_infos(signature)
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(f"JSON Value: {_json_text(doc)} Not formatted correctly expecting only one of 'inputs' "
                               "or 'instances' keys to exist ")
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(f"JSON Value: {_json_text(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument(f"JSON Value: {_json_text(doc)} No values in 'instances' array")
        return signature, _from_instances(instances, infos), JsonFormat.ROW
    if has_inputs:
        return signature, _from_inputs(doc["inputs"], infos), JsonFormat.COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _from_instances(instances: list, infos: Mapping[str, InputInfo]) -> dict[str, np.ndarray]:
    if not _is_named_object(instances[0]) and len(infos) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple input tensors "
                               "required as per tensorinfo_map")
    objects = _is_named_object(instances[0])
    names = sorted(infos)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for i, item in enumerate(instances):
        if objects:
            if not _is_named_object(item):
                raise invalid_argument(f"Expecting object but got list at item {i} of input list")
            for name, value in item.items():
                try:
                    _add_instance_item(value, name, infos, rows)
                except Exception as e:
                    raise invalid_argument(f"Failed to process element: {i} key: {name} of 'instances' list. "
                                           f"Error: INVALID_ARGUMENT: {getattr(e, 'message', e)}") from None
            if set(item) != set(names):
                raise invalid_argument(f"Failed to process element: {i} of 'instances' list. JSON object: "
                                       f"{_json_text(item)} must only have keys: {','.join(names)}")
        else:
            if _is_named_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {i} of input list")
            try:
                _add_instance_item(item, names[0], infos, rows)
            except Exception as e:
                raise invalid_argument(f"Failed to process element: {i} of 'instances' list. Error: "
                                       f"INVALID_ARGUMENT: {getattr(e, 'message', e)}") from None
    return {name: np.stack(parts) for name, parts in rows.items() if parts}


def _add_instance_item(value, name: str, infos: Mapping[str, InputInfo], rows: dict[str, list]) -> None:
    if name not in infos:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    array = json_to_ndarray(value, infos[name][0])
    parts = rows[name]
    if parts:
        first = parts[0]
        if first.size != array.size:
            raise invalid_argument(f"Expecting tensor size: {first.size} but got: {array.size}")
        if first.shape != array.shape:
            raise invalid_argument(f"Expecting shape {_shape_text(first.shape)} but got: {_shape_text(array.shape)}")
    parts.append(array)


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _from_inputs(value, infos: Mapping[str, InputInfo]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(infos) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple input tensors "
                                   "required as per tensorinfo_map")
        name = next(iter(infos))
        return {name: json_to_ndarray(value, infos[name][0])}
    out = {}
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = json_to_ndarray(value[name], infos[name][0])
    return out


# -- JSON responses ---------------------------------------------------------------------------------------------------
def _leaf_strings(array: np.ndarray, name: str) -> np.ndarray:
    """Each element as its JSON text. Floats use the shortest text that reads back to the same value (TF Serving
    writes the same values, formatted with %g/%.9g), NaN/±Infinity as JSON5 tokens like TF Serving."""
    kind = array.dtype.kind
    if kind == "f":
        text = array.astype(str)
        if not np.all(np.isfinite(array)):
            text = text.astype(object)
            text[np.isnan(array)] = "NaN"
            text[np.isposinf(array)] = "Infinity"
            text[np.isneginf(array)] = "-Infinity"
        return text
    if kind in "iu":
        return array.astype(str)
    if kind == "b":
        return np.where(array, "true", "false")
    as_bytes = name.endswith("_bytes")
    out = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(array.reshape(-1)):
        v = v if isinstance(v, bytes) else str(v).encode("utf-8")
        if as_bytes:
            flat[i] = '{"b64": "' + base64.b64encode(v).decode("ascii") + '"}'
        else:
            flat[i] = json.dumps(v.decode("utf-8", errors="replace"), ensure_ascii=False)
    return out


def _nest(strings: np.ndarray) -> str:
    """JSON text of an array of element texts, nested like the array."""
    strings = np.asarray(strings)
    if strings.ndim == 0:
        return str(strings.reshape(-1)[0])
    if strings.size == 0:
        def empty(shape):
            return "[" + ", ".join(empty(shape[1:]) for _ in range(shape[0])) + "]" if shape else "[]"
        return empty(strings.shape[:-1] + (0,)) if strings.shape[-1] == 0 else empty(strings.shape)
    parts = strings.reshape(-1).tolist()
    for size in reversed(strings.shape):
        parts = ["[" + ", ".join(parts[i:i + size]) + "]" for i in range(0, len(parts), size)]
    return parts[0]


def make_json_from_tensors(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> str:
    """Predict outputs → response JSON text (MakeRowFormatJsonFromTensors / MakeColumnarFormatJsonFromTensors)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    texts = {name: _leaf_strings(np.asarray(outputs[name]), name) for name in names}
    if fmt == JsonFormat.COLUMNAR:
        if len(names) == 1:
            return '{"outputs": ' + _nest(texts[names[0]]) + "}"
        body = ", ".join(json.dumps(n) + ": " + _nest(texts[n]) for n in names)
        return '{"outputs": {' + body + "}}"
    batch = 0
    for name in names:
        t = texts[name]
        if t.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if t.shape[0] < 1:
            raise invalid_argument(f"Tensor name: {name} has invalid batch size: {t.shape[0]}")
        if batch and batch != t.shape[0]:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {t.shape[0]} expecting: {batch}")
        batch = t.shape[0]
    if len(names) == 1:
        items = [_nest(row) for row in texts[names[0]]]
    else:
        items = ["{" + ", ".join(json.dumps(n) + ": " + _nest(texts[n][i]) for n in names) + "}"
                 for i in range(batch)]
    return '{"predictions": [' + ", ".join(items) + "]}"
