# Tetris Trainer: `make run` starts the whole stack, `make test` runs the whole suite.
# Both set up a fresh clone first: .venv, pinned requirements, migrations.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: run test lint bench bench-learning soak install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Keep pip's byte-compiling: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines)
# nothing else writes .pyc files, and every process would compile torch and Django again.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# Both files in one pip call: a second call re-reads the whole environment (95 s -> 71 s
# from a fresh venv here).
$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

run: install
	$(BIN)/python -m tetris_site.stack run

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev lint
	$(BIN)/python -m tetris_site.stack prepare
	$(BIN)/python -m pytest
	@if [ -n "$$TEST_POSTGRES_URL" ]; then \
	  echo "== database-facing tests again, on PostgreSQL =="; \
	  DATABASE_URL="$$TEST_POSTGRES_URL" $(BIN)/python -m pytest -m django_db -p no:cacheprovider; \
	else \
	  echo "SKIPPED: the PostgreSQL pass (TEST_POSTGRES_URL is unset; .ci/run starts one and sets it)"; \
	fi

# Benchmarks and soak runs are separate from the tests; results go in docs/.
bench: install-dev
	$(BIN)/python bench/env_speed.py
	$(BIN)/python bench/admin_scale.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/evaluation_workers.py

# Hours: learning curves, the learning targets over 10 seeds, dqn stability over 8.
bench-learning: install-dev
	$(BIN)/python bench/learning.py
	$(BIN)/python bench/learning_targets.py --preset quick --minutes 2
	$(BIN)/python bench/dqn_stability.py --seeds 1 2 3 4 5 6 7 8 \
	  --variant off=replay_endings=0 --variant on=replay_endings=20000

soak: install-dev
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/shared_load.py
	$(BIN)/python bench/experiment_stack.py --kill

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
