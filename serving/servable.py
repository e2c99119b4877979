"""One loaded model version: a SavedModel's signature defs (for metadata and REST input typing) and its concrete
signature functions, called with TF Serving's request validation (predict_util.cc) in front of them."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving import tensors
from serving.errors import Code, ServingError, from_tf_error, invalid_argument

log = logging.getLogger(__name__)

PREDICT_METHODS = ("tensorflow/serving/predict", "tensorflow/serving/classify", "tensorflow/serving/regress")
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


@dataclass(frozen=True)
class PreparedCall:
    """A validated request: the signature to run, its inputs, and which outputs to return."""

    signature: str
    inputs: dict[str, np.ndarray]
    output_aliases: tuple[str, ...]


def read_meta_graph(path: str, tags: Sequence[str] = ("serve",)):
    """The MetaGraphDef of `path` whose tags are exactly `tags` (TF Serving's --saved_model_tags)."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if os.path.isfile(pb):
        with open(pb, "rb") as f:
            data = f.read()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the C++ parser only warns about trailing garbage
                saved_model.ParseFromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise ServingError(Code.DATA_LOSS, f"Can't parse {pb} as binary proto: {e}") from e
        if not saved_model.meta_graphs:
            raise ServingError(Code.DATA_LOSS, f"{pb} holds no MetaGraphDef (an empty or corrupt SavedModel)")
    elif os.path.isfile(pbtxt):
        with open(pbtxt) as f:
            try:
                text_format.Parse(f.read(), saved_model)
            except text_format.ParseError as e:
                raise ServingError(Code.DATA_LOSS, f"Can't parse {pbtxt} as text proto: {e}") from e
    else:
        raise ServingError(Code.NOT_FOUND, "Could not find SavedModel .pb or .pbtxt at supplied export directory "
                                           f"path: {path}")
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    found = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingError(Code.NOT_FOUND, f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
                                       f"Available tags: {found}")


class Servable:
    """A SavedModel version loaded for serving."""

    def __init__(self, name: str, version: int, path: str, tags: Sequence[str] = ("serve",),
                 warmup: bool = True, max_tensor_elements: int = tensors.DEFAULT_MAX_ELEMENTS):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, path
        self.max_tensor_elements = max_tensor_elements
        start = time.monotonic()
        self.meta_graph = read_meta_graph(path, tags)
        self.signature_defs = dict(self.meta_graph.signature_def)
        try:
            self._module = tf.saved_model.load(path, tags=list(tags))
        except tf.errors.OpError as e:
            raise from_tf_error(e) from e
        except Exception as e:  # noqa: BLE001 - Keras/TF raise many kinds on broken exports
            raise ServingError(Code.DATA_LOSS, f"Failed to load SavedModel at {path}: {type(e).__name__}: {e}") from e
        self._functions = dict(self._module.signatures)
        self.input_infos: dict[str, dict[str, tensors.InputInfo]] = {}
        for key, sig in self.signature_defs.items():
            infos = {}
            for alias, info in sig.inputs.items():
                shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
                infos[alias] = (info.dtype, shape)
            self.input_infos[key] = infos
        self.warmup_requests = self._warmup() if warmup else 0
        self.load_seconds = time.monotonic() - start

    # -- requests -----------------------------------------------------------------------------------------------------
    def signature_inputs(self, signature_name: str) -> dict[str, tensors.InputInfo]:
        """The inputs of a signature, as the REST handler needs them (GetInfoMap: INVALID_ARGUMENT if unknown)."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
        return self.input_infos[key]

    def prepare(self, signature_name: str, inputs: Mapping[str, np.ndarray],
                output_filter: Sequence[str] = ()) -> PreparedCall:
        """Validate a predict request against the signature (TF Serving's RunPredict / PreProcessPrediction)."""
        key = signature_name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(key)
        if sig is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        if sig.method_name not in PREDICT_METHODS:
            raise ServingError(Code.INTERNAL, "Expected prediction signature method_name to be one of {"
                               + ", ".join(PREDICT_METHODS) + f"}}. Was: {sig.method_name}")
        expected, sent = set(sig.inputs), set(inputs)
        if expected != sent:
            extra, missing = sorted(sent - expected), sorted(expected - sent)
            if len(sent) != len(expected):
                sent_text, expected_text = ",".join(sorted(sent)), ",".join(sorted(expected))
                raise invalid_argument(
                    f"input size does not match signature: {len(sent)}!={len(expected)} len({{{sent_text}}}) != "
                    f"len({{{expected_text}}}). Sent extra: {{{','.join(extra)}}}. Missing but required: "
                    f"{{{','.join(missing)}}}.")
            raise invalid_argument(f"input tensor alias not found in signature: {extra[0]}. Inputs expected to be in "
                                   f"the set {{{','.join(sorted(expected))}}}.")
        aliases = sorted(sig.inputs)
        for index, alias in enumerate(aliases):
            info = sig.inputs[alias]
            array = inputs[alias]
            got = tensors.dtype_of(array)
            if got != info.dtype:
                raise invalid_argument(f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                                       f"{tensors.dtype_name(got)} is provided")
            if not info.tensor_shape.unknown_rank:
                want = [d.size for d in info.tensor_shape.dim]
                if len(want) != array.ndim or any(w not in (-1, g) for w, g in zip(want, array.shape, strict=True)):
                    raise invalid_argument(f"input tensor '{alias}' of signature '{key}' must have shape "
                                           f"{_shape(want)}, got {_shape(array.shape)}")
        seen: list[str] = []
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                                       f"the set {{{','.join(sorted(sig.outputs))}}}.")
            if alias in seen:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return PreparedCall(key, dict(inputs), tuple(seen) or tuple(sorted(sig.outputs)))

    def execute(self, signature: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on already validated (possibly batched) inputs; returns every output."""
        import tensorflow as tf

        try:
            feeds = {k: tf.constant(v) for k, v in inputs.items()}
            result = self._functions[signature](**feeds)
            return {k: v.numpy() for k, v in result.items()}
        except tf.errors.OpError as e:
            raise from_tf_error(e) from None
        except (TypeError, ValueError) as e:
            raise invalid_argument(str(e).splitlines()[0] if str(e) else type(e).__name__) from None

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> tuple[str, dict[str, np.ndarray]]:
        call = self.prepare(signature_name, inputs, output_filter)
        outputs = self.execute(call.signature, call.inputs)
        return call.signature, {k: outputs[k] for k in call.output_aliases}

    # -- loading ------------------------------------------------------------------------------------------------------
    def _warmup(self) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests` (PredictionLog TFRecords), as TF Serving does at load; a
        request that fails makes the load fail. Returns how many requests were replayed."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if entry.WhichOneof("log_type") != "predict_log":
                continue  # classify/regress/multi-inference logs: not served here
            request = entry.predict_log.request
            inputs = {k: tensors.tensor_proto_to_ndarray(v, self.max_tensor_elements)
                      for k, v in request.inputs.items()}
            self.run(request.model_spec.signature_name, inputs, list(request.output_filter))
            count += 1
        log.info("warmed up %s version %d with %d requests", self.name, self.version, count)
        return count


def _shape(dims) -> str:
    return "[" + ",".join(str(int(d)) for d in dims) + "]"
