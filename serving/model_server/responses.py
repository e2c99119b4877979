"""Responses of the model server, built in one place for both front ends: the gRPC protos (PredictResponse,
GetModelMetadataResponse, GetModelStatusResponse) and their REST JSON forms, as TF Serving writes them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from dcgan import stack
from serving import tensors
from serving.errors import invalid_argument
from serving.model_server.core import ModelRequest, ServerCore

SIGNATURE_DEF_FIELD = "signature_def"  # GetModelMetadataImpl::kSignatureDef


def predict_response(servable, signature: str, outputs: Mapping[str, np.ndarray]) -> predict_pb2.PredictResponse:
    """PredictResponse: the model spec that answered and each output in the typed value fields."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(tensors.ndarray_to_tensor_proto(array))
    return response


def predict_json(outputs: Mapping[str, np.ndarray], fmt: tensors.JsonFormat) -> str:
    """The REST predict answer: {"predictions": ...} for row requests, {"outputs": ...} for columnar ones."""
    return tensors.make_json_from_tensors(outputs, fmt)


def metadata_response(servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(sig)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def status_response(core: ServerCore, request: get_model_status_pb2.GetModelStatusRequest
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatusImpl: all versions, or the one asked for by number (a label is not resolved, as in TF Serving)."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in core.model_status(spec.name, version):
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = int(status.error_code)
        entry.status.error_message = status.error_message
    return response


def status_json(core: ServerCore, request: ModelRequest) -> str:
    """GET /v1/models/{name}[/versions/{v}|/labels/{l}]: the GetModelStatusResponse as TF Serving's JSON."""
    proto = get_model_status_pb2.GetModelStatusRequest()
    proto.model_spec.name = request.name
    if request.version is not None:
        proto.model_spec.version.value = request.version
    elif request.label is not None:
        proto.model_spec.version_label = request.label
    response = status_response(core, proto)
    return stack.message_to_json(response, indent=1)


def metadata_json(servable) -> str:
    """GET .../metadata: the GetModelMetadataResponse in the shape TF Serving writes (ToJsonString)."""
    response = metadata_response(servable)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    options = {"preserving_proto_field_name": True, "indent": 1}
    model_spec = stack.message_to_json(response.model_spec, **options)
    signature_defs = stack.message_to_json(signature_map, **options)
    return '{\n"model_spec":' + model_spec + ',\n"metadata": {"signature_def": ' + signature_defs + "}\n}\n"
