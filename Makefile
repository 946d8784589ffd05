# Two commands for a fresh machine with nothing but Python:
#   make run    runs the whole course (offline profile, CPU) and writes build/
#   make test   runs the whole test suite (each solution notebook executes once)
#   make unit   the tests that execute no notebook
#   make integration  the slow end-to-end tests (other data, the workshop kit); CI runs them
#   make claims runs every lesson (offline) for seeds $(SEEDS) with strict findings and writes build/claims.md
# Both create .venv and install the course into it the first time.

PYTHON ?= python3
# PyTorch's CPU threads wait passively for each other: spinning stalls every operation on a busy 2-core machine
# (see course_tools/runner.py, CPU_WAIT_POLICY).
export OMP_WAIT_POLICY ?= PASSIVE
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test integration claims unit solutions build check lint benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/course run --profile offline --output build

test: $(STAMP)
	COURSE_PROFILE=smoke COURSE_DATA_DIR=$(CURDIR)/build/test-data COURSE_OUTPUT_DIR=$(CURDIR)/build/test-outputs \
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider

# The end-to-end runs that take minutes: lessons on a messy user folder and on a stand-in GTSRB in the full
# profile, and a student notebook installed from a workshop kit in a fresh environment. CI runs them too.
integration: $(STAMP)
	COURSE_PROFILE=smoke COURSE_DATA_DIR=$(CURDIR)/build/test-data COURSE_OUTPUT_DIR=$(CURDIR)/build/test-outputs \
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -m slow -p no:cacheprovider

# The claims run: every lesson's verdicts on the course's reference data (offline profile), one `course run` per
# seed with COURSE_STRICT_FINDINGS=1, then one table of all findings. Fails when a finding did not hold.
SEEDS ?= 0 1 2 3 4
claims: $(STAMP)
	rm -rf build/claims
	status=0; for seed in $(SEEDS); do \
	  COURSE_STRICT_FINDINGS=1 $(BIN)/course run --profile offline --output build/claims/seed-$$seed \
	    -p SEED $$seed || status=1; \
	done; \
	$(BIN)/python -m course_tools.claims build/claims build/claims.md || status=1; \
	exit $$status

# Everything but the tests marked `notebooks` (those execute notebooks): seconds, not minutes.
unit: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest tests -m "not notebooks" -p no:cacheprovider

# Execute the solution notebooks in place (offline profile, outputs kept), then regenerate notebooks/.
# The output folder is relative to the kernels' working folder (solutions/), so that the stored outputs print
# ../build/solutions/... rather than this machine's absolute path. It starts empty, so that the stored outputs
# show a first run (features computed and timed, not read from an earlier run's cache).
solutions: $(STAMP)
	rm -rf build/solutions
	COURSE_PROFILE=offline COURSE_OUTPUT_DIR=../build/solutions \
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 solutions/*.ipynb
	$(BIN)/course build

build: $(STAMP)
	$(BIN)/course build

check: $(STAMP)
	$(BIN)/course check

lint: $(STAMP)
	$(BIN)/ruff check course_utils course_tools tests benchmarks
	$(BIN)/lint-imports --no-cache

benchmark: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_synthetic.py
	$(BIN)/python benchmarks/bench_feature_cache.py
	$(BIN)/python benchmarks/bench_memory_format.py
	$(BIN)/python benchmarks/bench_fit_vs_loop.py
	$(BIN)/python benchmarks/bench_loader_workers.py

clean:
	rm -rf build
