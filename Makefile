# Two entry points for a fresh machine: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TA := $(BIN)/ta
export TINY_AUDIO_HOME ?= $(HOME)/.cache/tiny_audio
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# Debian packages the code calls: audio tools, offline TTS voices, browser, sshd, Slurm, npm
# (a program already on PATH counts: e.g. npm bundled by a nodejs from another source).
APT_PACKAGES := sox libsox-fmt-all espeak-ng flite festival festvox-kallpc16k \
	festvox-kdlpc16k festvox-us-slt-hts chromium openssh-server tmux rsync \
	wordnet-base fortunes-min wamerican npm slurm-wlm munge

.PHONY: setup system venv models run test test-fast lint bench clean

setup: system venv models

system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing system packages: $$missing"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
		else \
			echo "missing system packages (install them as root): $$missing"; \
		fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

venv: $(VENV)/.installed

models: venv
	$(TA) models pull --defaults

run: setup
	$(TA) quickstart

test: setup
	$(BIN)/pytest -q

# The contributor's quick loop: tests/unit and the quick files of tests/integration, nothing marked
# slow, no tests/e2e (browser, sshd, Slurm, training runs, installs, real weights). Run
# `make setup` once first: some of these tests call flite and sox.
FAST_SKIP := test_data_synth test_hub_push test_eval_runner test_errors_zoo test_lact_transcribe \
	test_debug test_dev_commands
test-fast: venv
	$(BIN)/pytest -q -m "not slow" tests/unit tests/integration \
		$(foreach f,$(FAST_SKIP),--ignore=tests/integration/$(f).py)

lint: venv
	$(BIN)/ruff check tiny_audio tests
	$(BIN)/ruff format --check tiny_audio tests
	$(BIN)/mypy tiny_audio

bench: setup
	$(TA) bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
