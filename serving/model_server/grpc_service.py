"""gRPC front end: `tensorflow.serving.PredictionService` and `tensorflow.serving.ModelService`, implemented on the
official servicer base classes of tensorflow-serving-api, so the official stubs (and any TF Serving client) work."""

from __future__ import annotations

import logging

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import tensors
from serving.errors import Code, ServingError, invalid_argument
from serving.model_server.core import ModelRequest, ServerCore
from serving.model_server.metrics import ServingMetrics
from serving.model_server.responses import SIGNATURE_DEF_FIELD, metadata_response, predict_response, status_response

log = logging.getLogger(__name__)

_UNIMPLEMENTED = ("{method} is not supported by this model server: it serves DCGAN generators, whose signatures take "
                  "tensors (z, seed, z0/z1/steps), not tf.Example inputs. Use Predict.")


def _abort(context: grpc.ServicerContext, error: ServingError):
    context.abort(error.grpc_code(), error.message)


def _internal(context: grpc.ServicerContext, method: str, error: BaseException):
    log.exception("%s failed", method)
    context.abort(grpc.StatusCode.INTERNAL, f"{method} failed: {type(error).__name__}: {error}")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServerCore, metrics: ServingMetrics):
        self.core, self.metrics = core, metrics

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        try:
            with self.metrics.track("grpc", "predict", request.model_spec.name) as record:
                spec = ModelRequest.from_model_spec(request.model_spec)
                servable = self.core.resolve(spec)
                record.version = servable.version
                inputs = {}
                for alias, proto in request.inputs.items():
                    try:
                        inputs[alias] = tensors.tensor_proto_to_ndarray(proto, self.core.options.max_tensor_elements)
                    except ServingError as e:
                        raise invalid_argument(f"tensor parsing error: {alias}: {e.message}") from None
                servable, signature, outputs = self.core.predict(spec, inputs, list(request.output_filter),
                                                                 timeout=context.time_remaining(), servable=servable)
                return predict_response(servable, signature, outputs)
        except ServingError as e:
            _abort(context, e)
        except Exception as e:  # noqa: BLE001
            _internal(context, "Predict", e)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,  # noqa: N802
                         context: grpc.ServicerContext):
        try:
            with self.metrics.track("grpc", "metadata", request.model_spec.name) as record:
                if not request.HasField("model_spec"):
                    raise invalid_argument("Missing ModelSpec")
                if not request.metadata_field:
                    raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
                for name in request.metadata_field:
                    if name != SIGNATURE_DEF_FIELD:
                        raise invalid_argument(f"Metadata field {name} is not supported")
                servable = self.core.resolve(ModelRequest.from_model_spec(request.model_spec))
                record.version = servable.version
                return metadata_response(servable)
        except ServingError as e:
            _abort(context, e)
        except Exception as e:  # noqa: BLE001
            _internal(context, "GetModelMetadata", e)

    def Classify(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _UNIMPLEMENTED.format(method="Classify"))

    def Regress(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _UNIMPLEMENTED.format(method="Regress"))

    def MultiInference(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, _UNIMPLEMENTED.format(method="MultiInference"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServerCore, metrics: ServingMetrics):
        self.core, self.metrics = core, metrics

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            with self.metrics.track("grpc", "status", request.model_spec.name):
                return status_response(self.core, request)
        except ServingError as e:
            _abort(context, e)
        except Exception as e:  # noqa: BLE001
            _internal(context, "GetModelStatus", e)

    def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,  # noqa: N802
                                  context: grpc.ServicerContext):
        try:
            with self.metrics.track("grpc", "reload_config", ""):
                if request.config.WhichOneof("config") != "model_config_list":
                    raise invalid_argument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                           "Only ModelConfigList is currently supported")
                self.core.reload_config(request.config, source="grpc")
                response = model_management_pb2.ReloadConfigResponse()
                response.status.error_code = int(Code.OK)
                return response
        except ServingError as e:
            log.error("ReloadConfig failed: %s", e.message)
            _abort(context, e)
        except Exception as e:  # noqa: BLE001
            _internal(context, "HandleReloadConfigRequest", e)
