"""Configuration files of the model server, in TF Serving's own text-proto formats, so one `models.config`,
`batching_parameters.txt` and `monitoring.config` work with this server and with the `tensorflow/serving` image.

- `ModelServerConfig` (`--model_config_file`): the official proto from tensorflow-serving-api
  (`model_config_list { config { name base_path model_platform model_version_policy version_labels } }`).
- `BatchingParameters` (`--batching_parameters_file`) and `MonitoringConfig` (`--monitoring_config_file`) are not
  shipped in the pip package; their messages are declared here field-for-field from TF Serving's
  `session_bundle_config.proto` and `monitoring_config.proto` and parsed with the same text-format parser.

Version directories are `<base_path>/<integer>/`; anything else (`.dcgan.tmp-...` written by dcgan.export while an
export is in progress, `tmp`, files) is ignored, as TF Serving's file-system source does.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool, text_format, wrappers_pb2

from dcgan import stack
from dcgan.fileio import ensure_filesystem, is_remote
from serving.errors import Code, ServingError, invalid_argument
from serving.model_server.options import DEFAULT_PROMETHEUS_PATH

TENSORFLOW_PLATFORM = "tensorflow"
_VERSION_DIR = re.compile(r"^[0-9]+$")


def _model_server_config_pb2():
    from tensorflow_serving.config import model_server_config_pb2  # imports TF's protos; keep it lazy

    return model_server_config_pb2


# -- ModelServerConfig ------------------------------------------------------------------------------------------------
def parse_model_server_config(text: str, source: str = "<string>"):
    """Text proto → ModelServerConfig. Raises ServingError(INVALID_ARGUMENT) naming the file and the parse error."""
    pb2 = _model_server_config_pb2()
    config = pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        # TF Serving's own wording (ParseProtoTextFile), which tools and its test suite look for.
        raise invalid_argument(f"Error parsing text-format tensorflow.serving.ModelServerConfig: {e} "
                               f"(Invalid protobuf file: '{source}')") from e
    return config


def read_model_server_config(path: str):
    try:
        text = read_text(path)
    except OSError as e:
        raise ServingError(Code.NOT_FOUND, f"Could not read model config file '{path}': {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise invalid_argument(f"Invalid protobuf file: '{path}': not UTF-8 text ({e})") from e
    return parse_model_server_config(text, path)


def format_model_server_config(config) -> str:
    return text_format.MessageToString(config)


def write_model_server_config(path: str, config) -> str:
    """Write `config` to `path` atomically (temp file in the same directory, fsync, rename): a server polling the
    file never reads half of it."""
    text = format_model_server_config(config)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def empty_model_server_config():
    return _model_server_config_pb2().ModelServerConfig()


def single_model_config(name: str, base_path: str):
    """The config `--model_name/--model_base_path` stand for (TF Serving's BuildSingleModelConfig)."""
    config = _model_server_config_pb2().ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def validate_model_server_config(config) -> None:
    """TF Serving's checks (ServerCore::ReloadConfig / ValidateModelConfigList), with its messages."""
    kind = config.WhichOneof("config")
    if kind is None:
        return  # an empty config: nothing to serve (TF Serving takes no action)
    if kind != "model_config_list":
        raise ServingError(Code.FAILED_PRECONDITION,
                           "ServerModelConfig type not supported. Only ModelConfigList is currently supported")
    names: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise invalid_argument("ModelConfig has no name specified.")
        if model.name in names:
            raise invalid_argument(f"Illegal to list model {model.name} multiple times in config list")
        names.add(model.name)
        if not (os.path.isabs(model.base_path) or "://" in model.base_path):
            raise invalid_argument(f"Expected model {model.name} to have an absolute path or URI; "
                                   f"got base_path()={model.base_path}")
        if model.model_type != 0 and model.model_platform:
            raise invalid_argument("Illegal setting both ModelServerConfig::model_type (deprecated) "
                                   "and ModelServerConfig::model_platform.")
        platform = model_platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(f"Model {model.name} requests unsupported platform {platform}")
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise invalid_argument(f"Model {model.name}: latest.num_versions must not be negative")


def model_platform(model) -> str:
    """The model's platform; unset means TensorFlow here (configs written by this project always set it)."""
    if model.model_type == 1:  # deprecated ModelType.TENSORFLOW
        return TENSORFLOW_PLATFORM
    return model.model_platform or TENSORFLOW_PLATFORM


def model_configs(config) -> dict:
    """{name: ModelConfig} of a ModelServerConfig (empty for an empty config)."""
    if config.WhichOneof("config") != "model_config_list":
        return {}
    return {m.name: m for m in config.model_config_list.config}


# -- version directories and policies ---------------------------------------------------------------------------------
def list_version_dirs(base_path: str) -> dict[int, str]:
    """{version: path} of the integer-named sub-directories of `base_path` (others are ignored). Local, `gs://` or
    `s3://` (through tf.io.gfile); raises OSError when the base path cannot be listed."""
    if not is_remote(base_path):
        out: dict[int, str] = {}
        with os.scandir(base_path) as entries:
            for entry in entries:
                if _VERSION_DIR.match(entry.name) and entry.is_dir():
                    out[int(entry.name)] = entry.path
        return out
    import tensorflow as tf

    ensure_filesystem(base_path)
    try:
        names = tf.io.gfile.listdir(base_path)
    except tf.errors.OpError as e:
        raise OSError(store_error(base_path, e)) from e
    out = {}
    for name in names:
        name = name.rstrip("/")
        if _VERSION_DIR.match(name):
            out[int(name)] = base_path.rstrip("/") + "/" + name
    return out


def store_error(path: str, error: BaseException) -> str:
    """A clear message for an object store that cannot be read: the URL, and for s3:// the endpoint variable."""
    message = getattr(error, "message", None) or str(error)
    text = f"cannot read {path}: {message.splitlines()[0] if message else type(error).__name__}"
    if path.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        text += (f" (S3 endpoint AWS_ENDPOINT_URL={endpoint})" if endpoint else
                 " (no AWS_ENDPOINT_URL set: AWS S3 itself; set AWS_ENDPOINT_URL for MinIO or another S3 store)")
    return text


def read_text(path: str) -> str:
    """The text of a local, `gs://` or `s3://` file; OSError (with a clear message) when it cannot be read."""
    if not is_remote(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    if path.startswith("s3://"):
        # One GET through boto3: tensorflow-io reads an object in several ranged requests, and a config file replaced
        # between them (every rollout step) came back cut short ("Expected '}'") on a replica's poll.
        from serving.config_store import ConfigStoreError, S3ConfigStore

        try:
            return S3ConfigStore(path).read().text
        except FileNotFoundError:
            raise
        except ConfigStoreError as e:
            raise OSError(str(e)) from None
    import tensorflow as tf

    ensure_filesystem(path)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read().decode("utf-8")
    except tf.errors.NotFoundError as e:
        raise FileNotFoundError(f"{path}: no such object") from e
    except tf.errors.OpError as e:
        raise OSError(store_error(path, e)) from e


def policy_description(model) -> str:
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return "all"
    if kind == "specific":
        return "specific " + ",".join(str(v) for v in sorted(policy.specific.versions))
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return f"latest {n}"


def select_versions(model, on_disk: Iterable[int]) -> set[int]:
    """The versions the policy wants loaded among those on disk (TF Serving's latest/all/specific; unset: latest 1)."""
    versions = sorted(set(on_disk))
    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(versions)
    if kind == "specific":
        return set(versions) & set(policy.specific.versions)
    n = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return set(versions[-n:]) if versions else set()


# -- BatchingParameters and MonitoringConfig --------------------------------------------------------------------------
def _build_messages() -> dict[str, type]:
    """Declare TF Serving's BatchingParameters / MonitoringConfig messages (same names, fields and numbers) in a
    private descriptor pool, so their text files parse with protobuf's own text-format parser."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(name="dcgan_serving/tf_serving_configs.proto",
                                           package="tensorflow.serving", syntax="proto3",
                                           dependency=["google/protobuf/wrappers.proto"])
    T = descriptor_pb2.FieldDescriptorProto  # noqa: N806
    opt, rep = T.LABEL_OPTIONAL, T.LABEL_REPEATED

    def field(msg, name, number, ftype, label=opt, type_name=None):
        fd = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            fd.type_name = type_name

    batching = f.message_type.add(name="BatchingParameters")  # session_bundle_config.proto
    for name, number in (("max_batch_size", 1), ("batch_timeout_micros", 2), ("max_enqueued_batches", 3),
                         ("num_batch_threads", 4)):
        field(batching, name, number, T.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value")
    field(batching, "thread_pool_name", 5, T.TYPE_MESSAGE, type_name=".google.protobuf.StringValue")
    field(batching, "allowed_batch_sizes", 6, T.TYPE_INT64, rep)
    field(batching, "pad_variable_length_inputs", 7, T.TYPE_BOOL)

    prometheus = f.message_type.add(name="PrometheusConfig")  # monitoring_config.proto
    field(prometheus, "enable", 1, T.TYPE_BOOL)
    field(prometheus, "path", 2, T.TYPE_STRING)
    monitoring = f.message_type.add(name="MonitoringConfig")
    field(monitoring, "prometheus_config", 1, T.TYPE_MESSAGE, type_name=".tensorflow.serving.PrometheusConfig")

    pool.Add(f)
    return {name: stack.message_class(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in ("BatchingParameters", "MonitoringConfig")}


_MESSAGES: dict[str, type] = {}


def _message(name: str):
    if not _MESSAGES:
        _MESSAGES.update(_build_messages())
    return _MESSAGES[name]()


def _parse_text_file(path: str, message):
    try:
        with open(path, encoding="utf-8") as f:
            text_format.Parse(f.read(), message)
    except OSError as e:
        raise invalid_argument(f"Could not read '{path}': {e.strerror}") from e
    except text_format.ParseError as e:
        raise invalid_argument(f"Invalid protobuf file: '{path}': {e}") from e
    return message


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Server-side batching, TF Serving's defaults (SharedBatchScheduler / BasicBatchScheduler options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0 = number of CPUs (TF Serving: port::MaxParallelism())
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def validate(self) -> BatchingOptions:
        if self.max_batch_size <= 0:
            raise invalid_argument(f"max_batch_size must be positive, got {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise invalid_argument(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        if self.max_enqueued_batches <= 0:
            raise invalid_argument(f"max_enqueued_batches must be positive, got {self.max_enqueued_batches}")
        if self.num_batch_threads < 0:
            raise invalid_argument(f"num_batch_threads must be >= 1, got {self.num_batch_threads}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] <= 0:
                raise invalid_argument("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise invalid_argument("final entry in allowed_batch_sizes must equal max_batch_size")
        if self.pad_variable_length_inputs:
            raise invalid_argument("pad_variable_length_inputs is not supported by this server")
        return self

    @property
    def threads(self) -> int:
        return self.num_batch_threads or (os.cpu_count() or 1)


def parse_batching_parameters(path: str | None) -> BatchingOptions:
    """`--batching_parameters_file` (text BatchingParameters) → BatchingOptions; no file = TF Serving's defaults."""
    if not path:
        return BatchingOptions().validate()
    msg = _parse_text_file(path, _message("BatchingParameters"))
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if msg.HasField(name):
            values[name] = int(getattr(msg, name).value)
    values["allowed_batch_sizes"] = tuple(int(v) for v in msg.allowed_batch_sizes)
    values["pad_variable_length_inputs"] = bool(msg.pad_variable_length_inputs)
    return BatchingOptions(**values).validate()


def parse_monitoring_config(path: str) -> str | None:
    """`--monitoring_config_file` → the Prometheus path, or None when `prometheus_config.enable` is false."""
    msg = _parse_text_file(path, _message("MonitoringConfig"))
    if not msg.prometheus_config.enable:
        return None
    return msg.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
