# Every command of the README is a target here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= nst-server:$(VERSION)
# The development copy of the weights, beside this checkout: what `make serve`, `make test` and
# the demos use unless NST_WEIGHTS names other weights. The package itself never looks there.
DEV_WEIGHTS := $(abspath ../shared/weights/vgg19-caffe-imagenet-conv5_1.safetensors)
ifeq ($(NST_WEIGHTS),)
export NST_WEIGHTS := $(wildcard $(DEV_WEIGHTS))
endif
REGISTRY ?= registry.example.com

.PHONY: venv tools image-tools lint test test-fast test-install test-image bench bench-gpu bench-client gallery load demo docs clean \
	serve stop mar weights image image-cpu image-push

venv: $(VENV)/.installed

# The server and the client (two distributions) in editable mode with the dev tools, every
# version fixed by constraints.txt.
$(VENV)/.installed: pyproject.toml client/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e ./client -e ".[dev]"
	touch $@

# Prometheus and promtool for the monitoring tests, Chromium and its driver for the web page's
# test, Redis for the jobs API's shared store: Debian's packages, installed if missing (needs
# root, as on CI; elsewhere install them yourself:
# apt-get install prometheus chromium chromium-driver redis-server).
SYSTEM_TOOLS := prometheus chromium chromium-driver redis-server
tools:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null \
		&& command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& command -v redis-server >/dev/null || { \
		apt-get install -y --no-install-recommends $(SYSTEM_TOOLS) >/dev/null || { \
		apt-get update >/dev/null && apt-get install -y --no-install-recommends $(SYSTEM_TOOLS) >/dev/null; }; }

weights: venv  ## official VGG19 weights into the torch hub cache (hash-checked; needs the internet)
	$(VENV)/bin/nst-fetch-weights --if-missing

mar: venv  ## model_store/style_transfer.mar (fetches the weights when none are found)
	$(VENV)/bin/nst-build-mar

# nst-server start rebuilds the archive only when it does not pack this code, this
# model-config.yaml and these weights (a rebuild takes seconds: the weights are checked).
serve: venv  ## TorchServe on 127.0.0.1:8080/8081/8082, returns once the model is READY
	$(VENV)/bin/nst-server start --model-config nst_server/resources/model-config.yaml \
		$(if $(NST_WEIGHTS),--weights $(NST_WEIGHTS))

stop: venv
	$(VENV)/bin/nst-server stop

# podman, runc and debootstrap for the image test: Debian's packages, installed if missing.
image-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
		apt-get install -y --no-install-recommends podman runc debootstrap >/dev/null || { \
		apt-get update >/dev/null && apt-get install -y --no-install-recommends podman runc debootstrap >/dev/null; }; }

lint: venv  ## ruff (lint and format) and mypy: seconds, so the tests run them first
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint tools  ## lint, then every test
	$(PY) -m pytest

test-fast: lint tools  ## skip the slow end-to-end optimisations
	$(PY) -m pytest -m "not slow and not image"

test-install: venv  ## pip install into a fresh venv, then nst-server start/stop from an empty folder
	$(PY) -m pytest -m install tests/install

test-image: venv image-tools  ## build the CPU image with podman, run it as the Deployment does
	$(PY) -m pytest -m image tests/image

docs: venv  ## the parameter table of docs/api.md and docs/openapi.yaml, from nst/params.py
	$(PY) -m docgen

bench: venv  ## engine vs a plain Gatys loop at 256 px, the pyramid on several pairs, and the fixed cost of a run (docs/benchmarks.md)
	$(PY) bench/bench_engine.py --size 256 --steps 100
	$(PY) bench/bench_parameterization.py --size 256 --steps 70
	$(PY) bench/bench_startup.py --size 256 --steps 20

bench-gpu: venv  ## every GPU figure of docs/benchmarks.md, on cuda:0
	$(PY) bench/bench_gpu.py

gallery: venv  ## every style statistic and colour mode at equal time (writes docs/gallery.md)
	$(PY) bench/bench_quality.py gallery --size 256 --seconds 20 --write docs/gallery.md
	$(PY) bench/bench_quality.py mask --size 256 --seconds 20 --write docs/gallery.md

bench-client: venv  ## a folder and a clip through `make serve` with nst-client (docs/benchmarks.md)
	$(PY) bench/bench_client.py

load: venv  ## the long load run against `make serve` (see docs/reliability.md)
	$(PY) bench/load.py --clients 24 --requests 4 --size 64 --steps 5

EXAMPLES := nst_server/resources/examples
demo: venv  ## the CLI on the shared images, writes out/demo.png
	mkdir -p out && $(VENV)/bin/nst $(EXAMPLES)/astronaut.jpg $(EXAMPLES)/starry_night.jpg \
		-o out/demo.png --size 256 --steps 150

image:  ## the GPU image (Docker; BUILD_ARGS="--build-arg ..." for CPU or air-gapped builds)
	docker build $(BUILD_ARGS) -t $(IMAGE) .

image-cpu: venv image-tools  ## the CPU image with podman on this machine (localhost/nst-server:cpu)
	$(PY) -m tests.image.podman build

image-push: image
	docker tag $(IMAGE) $(REGISTRY)/$(IMAGE)
	docker push $(REGISTRY)/$(IMAGE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache model_store logs .run
