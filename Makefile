# Visual Curation — `make demo` runs the demo, `make test` runs the tests (each sets up .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false
export HF_HUB_OFFLINE := 1
export SENTRY_OPT_OUT := 1
export FIFTYONE_PLUGINS_DIR ?= $(CURDIR)/$(VENV)/fiftyone-plugins

.PHONY: setup test test-fast demo bench train-demo-model clean

setup:
	@VENV=$(VENV) bash tools/setup.sh

test: setup
	$(PY) -m pytest tests $(ARGS)

test-fast: setup
	$(PY) -m pytest tests -m "not e2e and not slow" $(ARGS)

demo: setup
	$(PY) tools/demo.py $(ARGS)

bench: setup
	$(PY) bench/run.py $(ARGS)

train-demo-model: setup
	$(PY) tools/train_demo_clip.py $(ARGS)

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
