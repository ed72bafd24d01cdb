# Two commands for a newcomer on a fresh machine:
#   make demo   render and check a WebSocketService with every default
#   make test   lint, type-check, layer-check, build the local control plane (cached), run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The venv is rebuilt when the pinned dependencies change.
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: demo test lint unit controlplane crd clean

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing pinned dependencies (first run: ~1 minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --progress-bar off -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	@echo ">> wsfleet render   (the built-in WebSocketService 'chat', every default)"
	@$(BIN)/wsfleet render
	@echo ">> wsfleet check"
	@$(BIN)/wsfleet check

lint: $(STAMP)
	@echo ">> ruff";          $(BIN)/ruff check operator workload tests bench && $(BIN)/ruff format --check operator workload tests bench
	@echo ">> mypy --strict"; $(BIN)/mypy
	@echo ">> import-linter"; $(BIN)/lint-imports
	@echo ">> generated files";  $(BIN)/wsfleet crd --check

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# kube-apiserver, controller-manager, scheduler, etcd and kwok from Go modules, cached under
# ~/.cache/wsfleet/k8s/<versions>/bin (a cold build takes several minutes and shows progress).
controlplane: $(STAMP)
	@$(BIN)/wsfleet dev-cluster build

test: lint controlplane
	$(BIN)/pytest tests

crd: $(STAMP)
	$(BIN)/wsfleet crd

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
