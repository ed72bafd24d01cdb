# Two commands for a newcomer on a fresh machine:
#   make demo   the fleet on two real nodes (root): builds the binaries and images (cached), brings up
#               the dev cluster, installs the operator as a user would, applies an example, waits for
#               Ready and prints the demo page's URL; `make demo-down` stops it
#   make test   install the Debian packages the tests use (as root; otherwise it says what to run),
#               lint, type-check, layer-check, build the local control plane and the images (cached),
#               run every test
PYTHON ?= python3
# Go from the machine image's usual place, if it is not on PATH (the control plane is built with it).
export PATH := $(PATH):/usr/local/go/bin
VENV   := .venv
BIN    := $(VENV)/bin
# The venv is rebuilt when the pinned dependencies change.
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: demo demo-down test lint unit controlplane images crd clean tools promtool
# The official JS socket.io-client for the workload tests (test-only), reinstalled when the lock changes.
JSSTAMP := tests/js/node_modules/.installed-$(shell sha256sum tests/js/package-lock.json | cut -c1-16)

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing pinned dependencies (first run: ~1 minute)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --progress-bar off -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: tools $(STAMP)
	@$(BIN)/wsfleet dev-cluster demo

demo-down: $(STAMP)
	@$(BIN)/wsfleet dev-cluster down

lint: $(STAMP)
	@echo ">> ruff";          $(BIN)/ruff check common operator workload devcluster tests bench && $(BIN)/ruff format --check common operator workload devcluster tests bench
	@echo ">> mypy --strict"; $(BIN)/mypy
	@echo ">> import-linter"; $(BIN)/lint-imports
	@echo ">> generated files";  $(BIN)/wsfleet crd --check
	@echo ">> hadolint";      $(BIN)/hadolint Dockerfile.operator Dockerfile.workload

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# kube-apiserver, controller-manager, scheduler, etcd and kwok from Go modules, cached under
# ~/.cache/wsfleet/k8s/<versions>/bin, the real nodes' kubelet, kube-proxy, containerd, runc, pause and
# CoreDNS under ~/.cache/wsfleet/node/<versions>/bin, Traefik under ~/.cache/wsfleet/gateway and
# metrics-server under ~/.cache/wsfleet/metrics (a cold build takes 20 to 30 minutes on 2 cores and
# shows progress).
controlplane: $(STAMP)
	@$(BIN)/wsfleet dev-cluster build

# The operator and workload images from Dockerfile.operator and Dockerfile.workload, built with buildah
# on a Python base made from Debian packages (cached by their versions; a cold build takes about two
# minutes, an unchanged one seconds); docs/images.md.
images: tools $(STAMP)
	@$(BIN)/wsfleet dev-cluster images

$(JSSTAMP): tests/js/package-lock.json
	@echo ">> npm ci (tests/js: socket.io-client)"
	@npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	@rm -f tests/js/node_modules/.installed-* && touch $@

# The Debian packages the tests use (redis-server, haproxy, chromium, node, npm, the image tools and
# the package lists promtool comes from), checked before anything is built: installed with apt-get as root,
# otherwise it stops at once with the command to run.
tools:
	@hack/install-tools.sh

# promtool checks the PromQL of the alerts and the dashboard (tests/unit/test_promql.py): the binary
# from Debian's prometheus package, extracted (no daemon, no postinst), cached by package version.
PROMTOOL_VERSION = $(shell apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $$2}')
PROMTOOL_DIR = $(HOME)/.cache/wsfleet/promtool
promtool:
	@v="$(PROMTOOL_VERSION)"; out="$(PROMTOOL_DIR)/$$v/promtool"; \
	if command -v promtool >/dev/null || [ -x "$$out" ]; then exit 0; fi; \
	if [ -z "$$v" ] || [ "$$v" = "(none)" ]; then \
	  ls $(PROMTOOL_DIR)/*/promtool >/dev/null 2>&1 && exit 0; \
	  echo "promtool: no prometheus package in the apt lists (run apt-get update; .ci/run does)"; exit 1; fi; \
	echo ">> promtool $$v (Debian's prometheus package, the binary only) -> $$out"; \
	d=$$(mktemp -d) && (cd $$d && apt-get download -q "prometheus=$$v" 2>/dev/null && dpkg-deb -x prometheus_*.deb x) && \
	mkdir -p "$$(dirname $$out)" && cp $$d/x/usr/bin/promtool "$$out" && rm -rf $$d && "$$out" --version | head -1

test: tools lint controlplane images promtool $(JSSTAMP)
	$(BIN)/pytest tests
	@echo ">> the workload tier again on the stock path (WSFLEET_FAST_PATH=off; docs/workload.md)"
	WSFLEET_FAST_PATH=off $(BIN)/pytest tests/integration/workload

crd: $(STAMP)
	$(BIN)/wsfleet crd

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
