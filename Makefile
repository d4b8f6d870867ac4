# Two set-up commands for a fresh machine (see README):
#   make demo   creates .venv if missing, then pretrains on the embedded Sentinel-2 sample
#   make test   creates .venv if missing, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The torch/torchvision builds that lie on the development machines' disk; elsewhere pip
# downloads them. Override e.g. `make demo TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test test-all lint venv clean docker-image docker-test

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/rs-ssl pretrain --bands 13 --out runs/demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check rs_ssl tests benchmarks
	$(VENV)/bin/ruff format --check rs_ssl tests benchmarks
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 -m "" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check rs_ssl tests benchmarks
	$(VENV)/bin/ruff format --check rs_ssl tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache

# Docker without a registry (docker/README.md): a debootstrapped Debian base and a wheel folder
# resolved by the venv's pip, both cached outside the checkout. Needs a docker daemon (docker-test
# starts dockerd when root) and, the first time, debootstrap.
docker-image: $(VENV)/.installed
	RS_SSL_WHEEL_PYTHON=$(abspath $(PY)) bash docker/build-local.sh

docker-test: $(VENV)/.installed
	RS_SSL_WHEEL_PYTHON=$(abspath $(PY)) bash docker/docker-test.sh
