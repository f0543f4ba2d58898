# Toolforge platform: the whole set-up is `make run` and `make test` (see README.md).
# Every target installs what it needs and skips what is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := python3 -m uv
RUN := $(UV) run --frozen

.PHONY: help deps apt uv python binaries images upstream-clients run up deploy down status test lint format clean-cache

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: apt python ## Install Debian packages (apt-get) and Python dependencies (uv)

apt:
	@bash devtools/scripts/apt-deps.sh

uv:
	@python3 -m uv --version >/dev/null 2>&1 || { echo "==> installing uv from PyPI"; python3 -m pip install --quiet --disable-pip-version-check uv; }

python: uv
	@echo "==> Python dependencies (uv sync --frozen)"
	@$(UV) sync --frozen --quiet

binaries: deps ## Build etcd, Kubernetes and CoreDNS with Go (cached by version)
	@echo "==> Go-built binaries (cache: $${TOOLFORGE_DEV_CACHE:-~/.cache/toolforge-dev}/bin)"
	@$(RUN) toolforge-dev build

images: deps ## Build the pause, bookworm and python3.11 OCI images (cached)
	@echo "==> OCI images"
	@$(RUN) toolforge-dev images

upstream-clients: python ## The upstream Toolforge clients (Python 3.13 venv, hash-pinned, cached)
	@$(RUN) python -m toolforge_dev.upstream_clients >/dev/null

run: binaries images ## Bring the platform up in the foreground; Ctrl-C stops everything
	@$(RUN) toolforge-dev run

up: binaries images ## Bring the platform up in the background
	@$(RUN) toolforge-dev up

deploy: binaries images ## Run the APIs as pods: build their images, helm install the charts (NodePort 30003)
	@$(RUN) toolforge-dev deploy

down: python ## Stop the background platform and clean up
	@$(RUN) toolforge-dev down

status: python ## Health of every cluster component
	@$(RUN) toolforge-dev status

lint: python ## ruff, mypy --strict and the import-linter layer contracts
	@echo "==> ruff"
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@echo "==> mypy --strict"
	@$(RUN) mypy
	@echo "==> import-linter (layers: pyproject.toml [tool.importlinter])"
	@$(RUN) lint-imports --no-cache

format: python
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

test: binaries images upstream-clients lint ## The full suite: lint, then pytest on the real local cluster
	@echo "==> pytest"
	@$(RUN) pytest

clean-cache: ## Remove the cached binaries and images (next run rebuilds them)
	rm -rf $${TOOLFORGE_DEV_CACHE:-$$HOME/.cache/toolforge-dev}
