"""One loaded model version, run the way tensorflow_model_server runs it: the SavedModel's MetaGraph is loaded into a
TF1 session (`tf.compat.v1.saved_model.loader.load`, as TF Serving's SavedModelBundle does) and a predict request
feeds the signature's input tensors and fetches its output tensors. TF1 graph exports and TF2 `tf.saved_model.save`
exports behave alike; shapes are whatever the graph accepts (the declared SignatureDef shapes are not enforced, as on
TF Serving), and errors raised by the graph (e.g. the generator's in-graph checks) keep their canonical codes. The
request validation in front is TF Serving's (predict_util.cc): input aliases, dtypes, output filter."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dcgan.fileio import ensure_filesystem
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
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    ensure_filesystem(path)  # s3:// needs tensorflow-io registered
    gfile = tf.io.gfile
    saved_model = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    if gfile.exists(pb):
        with gfile.GFile(pb, "rb") as f:
            data = f.read()
        # Trailing garbage: protobuf's upb parser (current stack) raises; the C++ one (legacy) only warns and parses
        # fewer bytes, so the count is checked. Not with warnings.catch_warnings(): its filters are the whole
        # process's, and this runs on the server's loader thread (any warning in another thread, e.g. an unclosed
        # file, was raised as an error while a version loaded).
        try:
            consumed = saved_model.MergeFromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise ServingError(Code.DATA_LOSS, f"Can't parse {pb} as binary proto: {e}") from e
        if consumed is not None and consumed != len(data):
            raise ServingError(Code.DATA_LOSS, f"Can't parse {pb} as binary proto: {len(data) - consumed} bytes after "
                                               "the message were not converted")
        if not saved_model.meta_graphs:
            raise ServingError(Code.DATA_LOSS, f"{pb} holds no MetaGraphDef (an empty or corrupt SavedModel)")
    elif gfile.exists(pbtxt):
        with gfile.GFile(pbtxt, "rb") as f:
            try:
                text_format.Parse(f.read().decode("utf-8"), saved_model)
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
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        try:
            with self._graph.as_default():
                tf.compat.v1.saved_model.loader.load(self._session, list(tags), path)
        except tf.errors.OpError as e:
            self._session.close()
            raise from_tf_error(e) from e
        except Exception as e:  # noqa: BLE001 - TF raises many kinds on broken exports
            self._session.close()
            raise ServingError(Code.DATA_LOSS, f"Failed to load SavedModel at {path}: {type(e).__name__}: {e}") from e
        self._callables: dict[tuple, object] = {}
        self._callables_lock = threading.Lock()
        self._functions: dict | None = None  # set when the session cannot run this export (see below)
        unset = self._uninitialized_variables()
        if unset:
            # The restore op of this SavedModel does not write the variables its signatures read: a Keras 3 model
            # saved with tf.saved_model.save inside a tf.Module has this defect (its functions capture the inner
            # tf.Variables, the checkpoint restores copies). TF Serving cannot run such an export ("Could not find
            # variable"); TF2's object loader can, so it runs the signatures here, still with the client's shapes.
            log.warning("%s: %d variable(s) of the graph are not restored by its saver (e.g. %s): tensorflow_model_"
                        "server would fail on it; running it through TF2's object loader. Export Keras 3 models "
                        "with model.export() or track each variable's .value.", path, len(unset), unset[0])
            self._session.close()
            try:
                module = tf.saved_model.load(path, tags=list(tags))
            except tf.errors.OpError as e:
                raise from_tf_error(e) from e
            except Exception as e:  # noqa: BLE001 - TF raises many kinds on broken exports
                raise ServingError(Code.DATA_LOSS, f"Failed to load SavedModel at {path}: {type(e).__name__}: "
                                                   f"{e}") from e
            self._module = module
            self._functions = dict(module.signatures)
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
        seen: list[str] = []
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                                       f"the set {{{','.join(sorted(sig.outputs))}}}.")
            if alias in seen:
                raise invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return PreparedCall(key, dict(inputs), tuple(seen) or tuple(sorted(sig.outputs)))

    def execute(self, signature: str, inputs: Mapping[str, np.ndarray],
                outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Run a signature on already validated (possibly batched) inputs in the session: feed its input tensors,
        fetch `outputs` (default: every output). The graph decides which shapes it accepts."""
        import tensorflow as tf

        sig = self.signature_defs[signature]
        feed_aliases = tuple(sorted(inputs))
        fetch_aliases = tuple(outputs) or tuple(sorted(sig.outputs))
        if self._functions is not None:
            return self._run_function(signature, inputs, fetch_aliases)
        run = self._callable(signature, feed_aliases, fetch_aliases)
        try:
            values = run(*(inputs[a] for a in feed_aliases))
        except tf.errors.OpError as e:
            raise from_tf_error(e) from None
        except (TypeError, ValueError) as e:
            raise invalid_argument(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        return dict(zip(fetch_aliases, values, strict=True))

    def _uninitialized_variables(self) -> list[str]:
        """Resource variables of the loaded graph that hold no value after the restore (see __init__)."""
        import tensorflow as tf

        handles = [op for op in self._graph.get_operations() if op.type == "VarHandleOp"]
        if not handles:
            return []
        with self._graph.as_default():
            checks = [tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles]
        values = self._session.run(checks)
        return [op.get_attr("shared_name").decode() or op.name for op, ok in zip(handles, values, strict=True)
                if not ok]

    def _run_function(self, signature: str, inputs: Mapping[str, np.ndarray],
                      fetches: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Run a TF2 signature function on the tensors as sent (its flat call: no Python-side shape check, the graph
        decides, like a session)."""
        import tensorflow as tf

        fn = self._functions[signature]
        try:
            args = [tf.constant(inputs[k]) for k in fn._arg_keywords]  # noqa: SLF001 - the flat input order
            result = fn._call_flat(args, fn.captured_inputs)  # noqa: SLF001
        except tf.errors.OpError as e:
            raise from_tf_error(e) from None
        except (TypeError, ValueError, KeyError) as e:
            raise invalid_argument(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        return {k: result[k].numpy() for k in fetches}

    def _callable(self, signature: str, feeds: tuple[str, ...], fetches: tuple[str, ...]):
        """A cached session callable for one (signature, inputs, outputs): no per-call graph lookups."""
        key = (signature, feeds, fetches)
        run = self._callables.get(key)
        if run is None:
            sig = self.signature_defs[signature]
            with self._callables_lock:
                run = self._callables.get(key)
                if run is None:
                    from tensorflow.core.protobuf import config_pb2

                    # A callable made from options feeds the tensors as they are, like TF Serving's Session::Run
                    # (Session.run/make_callable would first refuse shapes the placeholder declares).
                    options = config_pb2.CallableOptions(feed=[sig.inputs[a].name for a in feeds],
                                                         fetch=[sig.outputs[a].name for a in fetches])
                    run = self._session._make_callable_from_options(options)  # noqa: SLF001 - as Keras 2 did
                    self._callables[key] = run
        return run

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> tuple[str, dict[str, np.ndarray]]:
        call = self.prepare(signature_name, inputs, output_filter)
        return call.signature, self.execute(call.signature, call.inputs, call.output_aliases)

    # -- loading ------------------------------------------------------------------------------------------------------
    def _warmup(self) -> int:
        """Replay `assets.extra/tf_serving_warmup_requests` (PredictionLog TFRecords), as TF Serving does at load; a
        request that fails makes the load fail. Returns how many requests were replayed."""
        import tensorflow as tf

        path = os.path.join(self.path, WARMUP_FILE)
        if not tf.io.gfile.exists(path):
            return 0
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

