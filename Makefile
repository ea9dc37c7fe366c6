# `make demo` and `make test` are the README's two set-up commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lint bench-startup models install demo test docs-check gpu-check fuzz cli-reference bench-segment bench-parse bench-tokenize-sample bench-split-valid bench-similarity bench-attribute bench-qa-gen clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the local CPU wheel of torch first, so nothing pulls a CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nlptool segment data/sample_zh.txt --format text
	$(BIN)/nlptool segment data/sample_zh.txt --parse dependency --format conllu | head -20
	printf '今天天气很好\t今天天气不错\n今天天气很好\t股市大跌\n' | $(BIN)/nlptool similarity
	echo "这家酒店服务太差了" | $(BIN)/nlptool attribute --granularity word
	$(BIN)/nlptool qa-gen data/sample_passages.jsonl --seed 0
	echo "结婚的和尚未结婚的" | $(BIN)/nlptool tokenize-sample --nbest 2 --alpha inf

# every test, slow ones included (CI runs the same); the 15 slowest are listed at the end, so a test
# that grew slow shows up (tests/conftest.py sets one OpenMP thread per process: see the comment there)
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

# the console examples of README.md and docs/ run and compared with the pages, and the built wheel
# installed into a fresh venv and run (both are part of make test; this runs them alone)
docs-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_docs_examples.py tests/test_installed_wheel.py

# CUDA-vs-CPU parity of every command (docs/gpu.md); without CUDA it runs the CPU half and exits 0
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py

# the property-based suite with many more examples (make test runs it with HYPOTHESIS_PROFILE=ci)
# reproducible: the seed is printed and fixed (another: make fuzz FUZZ_SEED=N); a failure prints
# the example's @reproduce_failure line, which becomes a regression test
FUZZ_SEED ?= 0
fuzz: $(STAMP)
	@echo "fuzz seed $(FUZZ_SEED) (rerun: make fuzz FUZZ_SEED=$(FUZZ_SEED))"
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:cacheprovider --hypothesis-seed=$(FUZZ_SEED) tests/test_fuzz.py tests/test_io.py tests/test_contract.py

# regenerate docs/cli.md from the Typer app (a test fails when it is stale)
cli-reference: $(STAMP)
	$(BIN)/python scripts/gen_cli_reference.py

bench-startup: $(STAMP)
	$(BIN)/python benchmarks/bench_startup.py

bench-segment: $(STAMP)
	$(BIN)/python benchmarks/bench_segment.py

bench-parse: $(STAMP)
	$(BIN)/python benchmarks/bench_parse.py

bench-tokenize-sample: $(STAMP)
	$(BIN)/python benchmarks/bench_tokenize_sample.py

bench-split-valid: $(STAMP)
	$(BIN)/python benchmarks/bench_split_valid.py

bench-similarity: $(STAMP)
	$(BIN)/python benchmarks/bench_similarity.py

bench-attribute: $(STAMP)
	$(BIN)/python benchmarks/bench_attribute.py

bench-qa-gen: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/bench_qa_gen.py

# Rebuild every built-in model (corpus -> zh-bert-mini -> task models); see docs/models.md.
models: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" PY=$(BIN)/python sh scripts/build_models.sh

# headless Chromium + a CJK font for the attribute HTML/PNG tests (Debian, as root; .ci/run does the same)
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null; \
	else echo "run as root on Debian/Ubuntu: apt-get install chromium fonts-noto-cjk"; fi

clean:
	rm -rf $(VENV) build *.egg-info

# ruff over the whole tree and a type check of the public API (.ci/run runs it before the tests)
lint: $(STAMP)
	$(BIN)/ruff check nlptool tests benchmarks scripts examples
	$(BIN)/mypy --ignore-missing-imports --follow-imports=silent nlptool/engine.py nlptool/models.py nlptool/records.py nlptool/jsonl.py nlptool/paths.py nlptool/errors.py nlptool/workers.py
