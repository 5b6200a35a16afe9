# The two commands: `make demo` and `make test`. Both install into .venv first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench clean

install: $(STAMP)

# torch is pinned and installed first: an unpinned torch pulls several GB of CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/sentvae train --overwrite
	@echo "--- 5 samples from the prior"
	$(BIN)/sentvae sample -n 5
	@echo "--- an interpolation"
	$(BIN)/sentvae interpolate "the old man read a book in the park ." "did the dogs chase two cats ?"

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) checkpoints/*.pt checkpoints/*.model checkpoints/metrics.jsonl
