# Every command of the README is a target here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)

.PHONY: venv test test-fast bench load demo clean serve stop mar

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

mar: venv  ## model_store/style_transfer.mar
	$(PY) scripts/build_mar.py

serve: mar  ## TorchServe on 127.0.0.1:8080/8081/8082, returns once the model is READY
	$(PY) scripts/server.py start

stop: venv
	$(PY) scripts/server.py stop

test: venv  ## run every test
	$(PY) -m pytest

test-fast: venv  ## skip the slow end-to-end optimisations
	$(PY) -m pytest -m "not slow"

bench: venv  ## engine vs the seeds' loop at 256 px (see docs/benchmarks.md)
	$(PY) bench/bench_engine.py --size 256 --steps 100

load: venv  ## the long load run against `make serve` (see docs/reliability.md)
	$(PY) bench/load.py --clients 24 --requests 4 --size 64 --steps 5

demo: venv  ## the CLI on the shared images, writes out/demo.png
	mkdir -p out && $(PY) -m nst $(SHARED)/images/content/astronaut.png $(SHARED)/images/style/starry_night.jpg \
		-o out/demo.png --size 256 --steps 150

clean:
	rm -rf $(VENV) .pytest_cache model_store logs .run
