"""What this machine is and which kernels TensorFlow runs (dcgan.runtime): oneDNN switched on for every x86 CPU
before TensorFlow is imported, by every package of the project, with a value the user set winning; the CPU model
and ISA flags read as the benchmarks, `dcgan env`, the pipeline's summary and CI's log print them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from dcgan import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X86 = platform.machine().lower() in ("x86_64", "amd64")

# The first processor of /proc/cpuinfo on the two CPUs these machines come with (flags shortened).
ZEN3 = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC
flags		: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes

processor	: 1
model name	: ignored
"""
ZEN4 = """processor	: 0
cpu family	: 25
model		: 17
model name	: AMD EPYC 9R14
flags		: fpu sse2 fma avx avx2 avx512f avx512dq avx512_bf16 avx512_vnni avx512vl
"""


@pytest.mark.parametrize("machine, value, expected, on", [
    ("x86_64", None, "1", True),   # TensorFlow would leave oneDNN off on an AVX2-only CPU: switched on
    ("x86_64", "0", "0", False),   # the user's choice wins
    ("x86_64", "1", "1", True),
    ("aarch64", None, None, False),  # not x86: TensorFlow's own default stays
])
def test_onednn_is_switched_on_for_x86_unless_the_user_chose(monkeypatch, machine, value, expected, on):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    env = {} if value is None else {runtime.ONEDNN_VARIABLE: value}
    assert runtime.enable_onednn(env) is on
    assert env.get(runtime.ONEDNN_VARIABLE) == expected


@pytest.mark.skipif(not X86, reason="oneDNN is switched on for x86 CPUs only")
def test_tensorflow_in_this_process_runs_onednn_because_the_project_was_imported_first():
    import tensorflow as tf  # noqa: F401 - tests/conftest.py imported dcgan before anything imported TensorFlow

    asked = os.environ[runtime.ONEDNN_VARIABLE] == "1"  # set by dcgan, unless whoever ran the tests chose
    assert runtime.onednn_enabled() is asked
    assert runtime.onednn_text().startswith("oneDNN on (AVX") is asked


def test_a_onednn_isa_cap_is_named_where_onednn_runs(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 is how an AVX2-only CPU is emulated on an AVX-512 one (issue 27): figures taken so
    say it. Without oneDNN the cap means nothing and is not named."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: True)
    assert runtime.onednn_text().endswith("; limited to AVX2 by ONEDNN_MAX_CPU_ISA)")
    monkeypatch.setattr(runtime, "onednn_enabled", lambda: False)
    assert "ONEDNN_MAX_CPU_ISA" not in runtime.onednn_text()


@pytest.mark.parametrize("package", ["dcgan", "components", "pipeline", "serving"])
def test_every_package_switches_onednn_on_when_imported_before_tensorflow(package):
    """A process that imports any of the project's packages first (the CLI, the TFX executors and the container
    entrypoint, the model server, the studio) asks TensorFlow for oneDNN; checked without importing TensorFlow."""
    env = {k: v for k, v in os.environ.items() if k != runtime.ONEDNN_VARIABLE}
    code = (f"import os, sys, {package}; assert 'tensorflow' not in sys.modules, 'imported TensorFlow'; "
            f"print(os.environ.get('{runtime.ONEDNN_VARIABLE}'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == ("1" if X86 else "None")


def test_the_pipeline_image_asks_for_onednn_too():
    """TFX's container entrypoint may import TensorFlow before the project: the image sets the variable itself."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        assert "TF_ENABLE_ONEDNN_OPTS=1" in f.read()


@pytest.mark.parametrize("text, model, isa, flags", [
    (ZEN3, "AMD EPYC (family 25 model 1)", "AVX2", "AVX2 FMA"),
    (ZEN4, "AMD EPYC 9R14 (family 25 model 17)", "AVX-512", "AVX2 FMA AVX512F AVX512_VNNI AVX512_BF16"),
])
def test_cpu_model_and_isa_flags_are_read_from_cpuinfo(tmp_path, text, model, isa, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    cpu = runtime.cpu_info(str(path))
    assert (cpu.model, cpu.isa, cpu.flags_text) == (model, isa, flags)
    assert cpu.describe() == f"{model}, {cpu.cores} cores, {isa} ({flags})"


def test_ci_names_the_same_cpu_and_isa_without_python():
    out = subprocess.run([os.path.join(REPO, "scripts", "machine.sh")], capture_output=True, text=True, check=True)
    cpu = runtime.cpu_info()
    assert out.stdout.startswith(f"{cpu.model}, {cpu.isa} ({cpu.flags_text}), {cpu.cores} cores, "), out.stdout


def test_dcgan_env_reports_onednn_as_tensorflow_sees_it_and_a_users_zero_wins():
    env = {**os.environ, runtime.ONEDNN_VARIABLE: "0"}
    out = subprocess.run([sys.executable, "-m", "dcgan.cli", "env", "--json"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    facts = json.loads(out.stdout)
    cpu = runtime.cpu_info()
    assert (facts["cpu"], facts["isa"], facts["isa_flags"], facts["cores"]) == (cpu.model, cpu.isa, cpu.flags_text,
                                                                              cpu.cores)
    assert facts["onednn"] is False
    assert facts["tensorflow"].endswith(f"oneDNN off ({runtime.ONEDNN_VARIABLE}=0)"), facts["tensorflow"]
    assert facts["stack"].split()[0] in ("legacy", "current")
