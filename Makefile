# bastion: `make demo` runs an assessment on the embedded default; `make test` runs every check.
# Both create .venv on first use (scripts/bootstrap.sh).
VENV ?= .venv
BIN := $(VENV)/bin
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test lint typecheck unit bench bootstrap clean

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	$(BIN)/bastion assess --out report

lint: bootstrap
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: bootstrap
	$(BIN)/mypy

unit: bootstrap
	$(BIN)/pytest -q

test: lint typecheck unit

bench: bootstrap
	@bash scripts/bench-deps.sh
	$(BIN)/python -m bench.run        # PGD per iteration vs a bare loop, torchattacks, ART
	$(BIN)/python -m bench.evasion    # white-box attacks on the 8x8 and 32x32 CNNs vs torchattacks, ART, Foolbox
	$(BIN)/python -m bench.seeds      # APGD strength as a mean over 16 random starts
	$(BIN)/python -m bench.blackbox   # score- and decision-based attacks vs ART and Foolbox
	$(BIN)/python -m bench.scanners   # model-file scanner vs picklescan, modelscan, fickling
	$(BIN)/python -m bench.gateway    # latency the guards add vs a bare FastAPI endpoint
	$(BIN)/python -m bench.gateway_detection  # Square/HSJ through the gateway: queries to first flag; benign false positives
	$(BIN)/python -m bench.autoattack # standard evaluation vs torchattacks' and ART's AutoAttack
	$(BIN)/python -m bench.new_attacks # JSMA, Sign-OPT, FAB, L1 PGD, EOT vs the peers

clean:
	rm -rf report .pytest_cache .mypy_cache .ruff_cache
