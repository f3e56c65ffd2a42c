# The two entry points are `make demo` and `make test` (README.md). Everything else is a step.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test setup system-deps testenv lint fmt crds images clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[engine,dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP) system-deps

system-deps:
	@bash hack/system-deps.sh

testenv:
	@bash hack/testenv.sh >/dev/null

# `make demo DEMO_ARGS=--scale-to-zero`: idle -> 0 replicas -> a burst at zero -> wake.
DEMO_ARGS ?=
demo: setup testenv
	$(VENV)/bin/sloserve demo $(DEMO_ARGS)

test: setup testenv
	bash hack/test.sh

lint: setup
	bash hack/lint.sh

fmt: setup
	$(VENV)/bin/ruff format engine operator tests
	$(VENV)/bin/ruff check --fix engine operator tests

crds: setup
	$(PY) -m sloserve_operator.crdgen

# Both images, tagged as the chart and CRD defaults; without docker/podman/buildah it says what to run.
images:
	@bash hack/images.sh

clean-venv:
	rm -rf $(VENV)
