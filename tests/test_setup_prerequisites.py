"""The set-up on a bare system: README "Quickstart" names every host package it needs (one `apt-get install` line per
distribution, read by scripts/prerequisites.sh), and scripts/setup.sh on a host without the build tools stops before
making anything, with one message naming the packages to install.

The bare-host cases run scripts/setup.sh in real Debian 13 roots (debootstrap, through scripts/in_root.sh) made from
README's Debian 13 list minus the build tools, cached under /var/cache/dcgan (cold: 2–3 minutes per root on a busy
2-core machine; warm: about a second). They need root, as CI has; inside make test-current's own root they skip
(no nested debootstrap): there the last test checks instead that the lane's root holds exactly README's list."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTS = "/var/cache/dcgan"
ROOT_STAMP = "/.dcgan-root"  # scripts/debian_root.sh writes it at the top of every root it makes
IN_A_PROJECT_ROOT = os.path.exists(ROOT_STAMP)
# What scripts/setup.sh reads; nothing else of the repo goes into the bare roots.
SETUP_FILES = ["scripts", "README.md", "pyproject.toml", "requirements.lock", "requirements-current.lock",
               "requirements-nodeps.lock"]
# The set-up, then what it left in the copy of the repo (to show that no .venv was made).
SETUP_THEN_LIST = 'scripts/setup.sh; status=$?; echo "left in the repo: $(ls -A | tr "\\n" " ")"; exit $status'

def needs_debootstrap(test):
    """The marks of a test that makes Debian roots: slow when cold, root only, never inside such a root."""
    test = pytest.mark.slow(test)
    test = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, chroot, mount), as CI runs it")(test)
    return pytest.mark.skipif(IN_A_PROJECT_ROOT, reason="runs inside a root of scripts/debian_root.sh "
                              "(make test-current): no nested debootstrap; the host lane (make test) runs it")(test)


def readme_prerequisites(distribution: str) -> list[str]:
    """The packages README's prerequisites table lists for a distribution."""
    out = subprocess.run(["scripts/prerequisites.sh", distribution], cwd=REPO, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def setup_in_debian_13(root_name: str, without: tuple[str, ...]) -> subprocess.CompletedProcess:
    """scripts/setup.sh in a Debian 13 root with README's Debian 13 packages except `without`."""
    wanted = readme_prerequisites("Debian 13")
    assert set(without) <= set(wanted), f"README's Debian 13 line no longer lists {without}: {wanted}"
    packages = ",".join(p for p in wanted if p not in without)
    return subprocess.run(["scripts/in_root.sh", "trixie", f"{ROOTS}/{root_name}", packages, *SETUP_FILES,
                           "--", "bash", "-c", SETUP_THEN_LIST],
                          cwd=REPO, capture_output=True, text=True, timeout=900)


def setup_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("setup:")]


@pytest.mark.parametrize("distribution", ["Debian 13", "Ubuntu 24.04", "Ubuntu 22.04", "Debian 12"])
def test_readme_names_the_compiler_for_every_supported_distribution(distribution):
    packages = readme_prerequisites(distribution)
    assert "g++" in packages and "make" in packages
    if distribution != "Debian 12":  # Debian 12 has no Python 3.10 package: pyenv's or conda's carry their headers
        assert "python3-dev" in packages and "python3-venv" in packages


def test_prerequisites_for_a_distribution_the_readme_does_not_list_is_an_error_naming_it():
    out = subprocess.run(["scripts/prerequisites.sh", "Fedora 41"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert "README.md has no prerequisites row for 'Fedora 41'" in out.stderr


def test_the_environment_holds_the_compiled_bytecode_of_its_packages():
    """scripts/setup.sh compiles every package at install (uv --compile-bytecode): where PYTHONDONTWRITEBYTECODE is
    set (CI's containers), Python never writes .pyc itself and every process compiled TensorFlow and TFX again."""
    for name in ("tensorflow", "tfx.orchestration.local.local_dag_runner", "apache_beam", "tensorflow_data_validation"):
        source = importlib.util.find_spec(name).origin
        assert os.path.isfile(importlib.util.cache_from_source(source)), f"no .pyc beside {source}"


def test_setup_names_every_package_this_environment_had_to_build_from_source():
    """setup.sh's SOURCE_BUILDS (what its compiler check is for) against the wheels in this environment that are not
    from PyPI's portable builds (manylinux/musllinux/any), i.e. that uv compiled here."""
    with open(os.path.join(REPO, "scripts", "setup.sh")) as f:
        declared = set(re.search(r"^SOURCE_BUILDS=\(([^)]*)\)", f.read(), re.M).group(1).split())
    built_here = set()
    for dist in importlib.metadata.distributions():
        tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag:")]
        if tags and not any(t.endswith("-any") or "manylinux" in t or "musllinux" in t for t in tags):
            built_here.add(dist.metadata["Name"].lower())
    assert built_here == declared


@needs_debootstrap
def test_setup_on_debian_13_without_g_plus_plus_and_python3_dev_stops_with_one_apt_get_line_and_makes_nothing():
    out = setup_in_debian_13("trixie-bare", without=("g++", "python3-dev"))
    assert out.returncode == 1, out.stderr
    lines = setup_lines(out.stderr)
    assert len(lines) == 1, out.stderr  # one message, no attempt at installing
    assert lines[0].startswith("setup: stack 'current' (glibc 2.41 >= 2.39; Python 3.13.")
    assert "at /usr/bin/python3.13): cannot install requirements-current.lock here." in lines[0]
    assert "pyfarmhash==0.3.2 (locked; PyPI has no Linux wheel of it) is built from source" in out.stderr
    assert "x86_64-linux-gnu-gcc x86_64-linux-gnu-g++ not found" in out.stderr
    assert "/usr/include/python3.13/Python.h is missing" in out.stderr
    assert "\n    apt-get install g++ python3-dev\n" in out.stderr
    left = out.stdout.strip()
    assert left.startswith("left in the repo: ") and ".venv" not in left.split(), left


@needs_debootstrap
def test_setup_on_debian_13_with_g_plus_plus_but_without_python3_dev_asks_for_python3_dev_only():
    out = setup_in_debian_13("trixie-no-python3-dev", without=("python3-dev",))
    assert out.returncode == 1, out.stderr
    assert len(setup_lines(out.stderr)) == 1, out.stderr
    assert "/usr/include/python3.13/Python.h is missing" in out.stderr
    assert "not found" not in out.stderr  # the compilers are there
    assert "\n    apt-get install python3-dev\n" in out.stderr
    assert ".venv" not in out.stdout.split(), out.stdout


@pytest.mark.skipif(not IN_A_PROJECT_ROOT, reason="checks the root of make test-current, from inside it")
def test_the_debian_13_lane_runs_in_a_root_of_exactly_the_readme_prerequisites():
    with open(ROOT_STAMP) as f:
        suite, packages = f.read().split()
    assert suite == "trixie"
    assert packages.split(",") == readme_prerequisites("Debian 13")
