# The two commands of README: `make run` (the main job) and `make test` (the test suite). Both set up .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench-setup clean test-kubeflow test-current run-current bench-stacks info docs docs-cli

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh $(ARGS)

test: setup
	@scripts/test.sh $(ARGS)

# The pipeline image built with a local container engine, and the compiled Kubeflow spec executed in it (README
# "Kubeflow"); installs Debian's docker.io when there is no dockerd.
test-kubeflow: setup
	@scripts/test_kubeflow.sh

# This machine for bug reports and benchmark tables: CPU, ISA flags, oneDNN, stack (`dcgan env`).
info: setup
	@$(VENV)/bin/dcgan env

lint: setup
	$(VENV)/bin/ruff check dcgan components pipeline serving tests bench scripts

# The documentation site (mkdocs.yml, docs/) on http://127.0.0.1:8000, rebuilt on every change; `make test` builds it
# with --strict. docs/cli.md is generated from the CLI's parser: `make docs-cli` after changing a command or flag.
docs: setup
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

docs-cli: setup
	$(PY) scripts/cli_reference.py

bench-setup:
	@scripts/setup_bench.sh

clean:
	rm -rf runs artifacts test-artifacts .pytest_cache site

# The `current` stack (TFX 1.21 / TF 2.21 / Python 3.13) in a Debian 13 root, from any Linux host where we are root
# (scripts/in_current_root.sh: the root is made once under /var/cache/dcgan and reused). docs/platforms.md.
# Tests marked stack_neutral (the studio page in Chromium, fleet rollouts, canary decisions: 20% of this lane's test
# time) run on the legacy stack only (docs/development.md).
test-current:
	@scripts/in_current_root.sh make test ARGS='-m "not stack_neutral"'

run-current:
	@DCGAN_CURRENT_WORK=dcgan-run scripts/in_current_root.sh make run ARGS="$(ARGS)"

# Train and FID img/s of both stacks in one run (bench/stacks_throughput.py; legacy = .venv, current = the root).
bench-stacks: setup
	@DCGAN_CURRENT_WORK=dcgan-bench scripts/in_current_root.sh --host $(PY) bench/stacks_throughput.py $(ARGS)
