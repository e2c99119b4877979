"""Process-wide TensorFlow runtime settings and what this machine is, in one place (training, ingest workers, the
model server, the benchmarks and `dcgan env` use them).

oneDNN: TensorFlow's x86 wheels carry oneDNN kernels but switch them on by themselves only on CPUs with AVX-512
VNNI/BF16-class features (TensorFlow RFC 400); on an AVX2-only CPU (e.g. AMD EPYC Zen 3) they stay off and Eigen's
kernels run, 2-3x slower for the transposed convolutions of G. `enable_onednn()` switches them on for every x86 CPU
before TensorFlow is imported; every package of this project calls it in its `__init__`, and the pipeline image sets
the same variable. A value the user set (TF_ENABLE_ONEDNN_OPTS=0 or 1) wins. `onednn_enabled()` asks TensorFlow
itself (the flag its `oneDNN custom operations are on` log line reports), once it is imported.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
_X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
# The ISA extensions that decide which kernels TensorFlow, oneDNN and PyTorch run, as /proc/cpuinfo names them.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def is_x86() -> bool:
    return platform.machine().lower() in _X86_MACHINES


def enable_onednn(environ: MutableMapping[str, str] | None = None) -> bool:
    """Switch TensorFlow's oneDNN kernels on for this process (and the processes it starts) on an x86 CPU, unless
    TF_ENABLE_ONEDNN_OPTS is already set. Effective only before TensorFlow is imported. Returns whether the variable
    now asks for oneDNN."""
    environ = os.environ if environ is None else environ
    if is_x86():
        environ.setdefault(ONEDNN_VARIABLE, "1")
    return environ.get(ONEDNN_VARIABLE, "").strip().lower() in ("1", "true")


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels, as TensorFlow reports it (None: TensorFlow not imported yet)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


@dataclass(frozen=True)
class CpuInfo:
    """The CPU this process runs on: model name, the ISA flags in ISA_FLAGS it has, and the cores it may use."""

    model: str
    flags: tuple[str, ...]
    cores: int

    @property
    def isa(self) -> str:
        """The widest vector ISA: "AVX-512", "AVX2" or "SSE" (what the project's figures are quoted by)."""
        return "AVX-512" if "avx512f" in self.flags else "AVX2" if "avx2" in self.flags else "SSE"

    @property
    def flags_text(self) -> str:
        """The flags, as TensorFlow's start-up line writes them, e.g. "AVX2 FMA" or "AVX2 FMA AVX512F AVX512_BF16"."""
        return " ".join(f.upper() for f in self.flags) or "none of " + " ".join(ISA_FLAGS)

    def describe(self) -> str:
        """e.g. "AMD EPYC (family 25 model 1), 2 cores, AVX2 (AVX2 FMA)"."""
        return f"{self.model}, {self.cores} cores, {self.isa} ({self.flags_text})"


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> CpuInfo:
    """Read the CPU's model and ISA flags (Linux /proc/cpuinfo; elsewhere what `platform` knows)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']} model {fields['model']})"
    present = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model=model, flags=tuple(f for f in ISA_FLAGS if f in present), cores=cores)


def onednn_text() -> str:
    """"oneDNN on (AVX2 FMA)" / "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"; what TensorFlow reports once it is imported,
    else what the variable asks for."""
    flag = onednn_enabled()
    value = os.environ.get(ONEDNN_VARIABLE)
    if flag is None:
        flag = (value or "").strip().lower() in ("1", "true")
        state = "oneDNN requested" if flag else "oneDNN not requested"
    else:
        state = "oneDNN on" if flag else "oneDNN off"
    why = cpu_info().flags_text if flag else (f"{ONEDNN_VARIABLE}={value}" if value is not None
                                              else f"{ONEDNN_VARIABLE} unset")
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if flag and limit:  # oneDNN's own cap on the code it runs: how an AVX2-only CPU is emulated on an AVX-512 one
        why += f"; limited to {limit} by ONEDNN_MAX_CPU_ISA"
    return f"{state} ({why})"


def describe_tensorflow() -> str:
    """One line for a run's log and summary, e.g. "tensorflow 2.16.2: oneDNN on (AVX2 FMA)"."""
    import tensorflow as tf

    return f"tensorflow {tf.__version__}: {onednn_text()}"


def machine_facts() -> dict[str, object]:
    """What `dcgan env` prints and every benchmark table heads with: CPU model, ISA and flags, cores, load average,
    TensorFlow and whether its oneDNN kernels run (imports TensorFlow), the stack."""
    from dcgan import stack

    cpu = cpu_info()
    tensorflow = describe_tensorflow()
    return {"cpu": cpu.model, "isa": cpu.isa, "isa_flags": cpu.flags_text, "cores": cpu.cores,
            "load_average": [round(x, 2) for x in os.getloadavg()], "tensorflow": tensorflow,
            "onednn": onednn_enabled(), "stack": stack.describe(), "platform": platform.platform()}


def machine_line() -> str:
    """The header line of every benchmark table: "machine: AMD EPYC (family 25 model 1), 2 cores, AVX2 (AVX2 FMA);
    tensorflow 2.16.2: oneDNN on (AVX2 FMA); load average 0.12 0.30 0.40" (imports TensorFlow). Figures from
    different CPUs or with oneDNN on and off are not comparable; ratios from one run are."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"machine: {cpu_info().describe()}; {describe_tensorflow()}; load average {load}"


def configure_tf_threads(intra_op: int = 0, inter_op: int = 0) -> bool:
    """Set TensorFlow's intra-/inter-op thread pools (0 = leave TF's default). They can only be set before the
    first TF op runs: returns False when TensorFlow was already initialised and the settings could not apply."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        return False
    return True
