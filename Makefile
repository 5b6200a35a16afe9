# The two commands: `make demo` and `make test`. Both install into .venv first if needed.
# `make docs` builds the documentation site into site/ (ignored by git).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test docs bench clean

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

# tests/test_docs.py runs `mkdocs build --strict` too: a broken link, a page left out of the
# navigation or an option missing from the command reference fails `make test`
test: install
	$(BIN)/python -m pytest -q

# NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2.0, printed on every build
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site
	@echo "open site/index.html"

clean:
	rm -rf $(VENV) site checkpoints/*.pt checkpoints/*.model checkpoints/metrics.jsonl
