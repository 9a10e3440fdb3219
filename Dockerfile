# Style-transfer server image: TorchServe + the nst engine + VGG19 weights.
#
#   GPU (default): docker build -t nst-server .
#   CPU:           docker build -t nst-server:cpu --build-arg BASE_IMAGE=debian:bookworm \
#                      --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu .
#   Air-gapped:    put vgg19-dcbb9e9d.pth into image-weights/ and add
#                      --build-arg WEIGHTS_FILE=vgg19-dcbb9e9d.pth
#   Run:           docker run --gpus all -p 8080:8080 -p 8082:8082 nst-server
#                  (an API key is generated at start: docker exec <id> cat /home/model-server/run/api-keys)
#
# `make test-image` builds this file on a local Debian base with podman and runs the image the
# way deploy/k8s/deployment.yaml does (tests/image/); docs/deploy.md says what it checks.

# CUDA 13.0 matches the CUDA build of torch 2.14.1 that constraints.txt pins. The "base"
# flavour carries only the CUDA runtime: torch's wheels bring their own cuDNN and cuBLAS.
# CUDA 13 needs an NVIDIA driver >= 580 on the node and a Turing or newer GPU (no V100/P100).
# Older drivers or GPUs: --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04
# --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu126 (docs/deploy.md).
# Any Debian or Ubuntu base with Python >= 3.11 and OpenJDK 17 packages works for CPUs.
ARG BASE_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04
FROM ${BASE_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
# pip's settings for this build only (never stored in the image): another index (PyTorch's
# CPU wheels: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu), a local wheel
# folder or file:// index mounted into the build (podman build -v /wheels:/wheels:ro), the CA
# bundle of a TLS-inspecting proxy (PIP_CERT, mounted the same way).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python (3.12 on Ubuntu 24.04, 3.11 on Debian 12) and Java 17 for TorchServe's frontend.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv openjdk-17-jre-headless ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# DL3008 (pin apt versions) is ignored on purpose: Ubuntu's archive drops superseded
# versions, so pins break rebuilds; the base image tag fixes the release instead.

# DL3064 (sensitive data in ENV) is ignored on purpose: NST_API_KEYS_FILE is the path of
# the keys file, made at start in the state directory, not a secret.
# hadolint ignore=DL3064
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NST_APP=/opt/nst \
    NST_WEIGHTS=/opt/nst/weights/vgg19-features.safetensors \
    NST_MODEL_STORE=/opt/nst/model-store \
    NST_STATE_DIR=/home/model-server/run \
    NST_API_KEYS_FILE=/home/model-server/run/api-keys \
    NST_METRICS_ADDRESS=0.0.0.0:8083 \
    NST_JOBS_ADDRESS=0.0.0.0:8085 \
    NST_KEY_PROXY_ADDRESS=0.0.0.0:8080 \
    NST_TORCHSERVE_ADDRESS=http://127.0.0.1:8079 \
    TS_CONFIG_FILE=/opt/nst/deploy/config.properties \
    LOG_LOCATION=/home/model-server/logs \
    METRICS_LOCATION=/home/model-server/logs

WORKDIR /opt/nst
# The runtime dependencies of pyproject.toml, each at the version constraints.txt fixes, in
# a layer of their own: code changes rebuild only the small layers after it.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/venv \
    && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# The project itself (its console scripts: nst-fetch-weights, nst-build-mar, ...).
COPY README.md LICENSE ./
COPY nst/ nst/
COPY handler/ handler/
COPY nst_server/ nst_server/
RUN pip install --no-cache-dir --no-deps -c constraints.txt .

# Official torchvision VGG19 weights, downloaded, sha256-checked and converted to safetensors
# (no pickle at serving time). Builds without the internet put the file into image-weights/
# and name it with WEIGHTS_FILE: the checkpoint (checked against the official hash) or a
# .safetensors with WEIGHTS_SHA256. The folder is mounted for this step only, never a layer.
ARG WEIGHTS_FILE=""
ARG WEIGHTS_SHA256=""
RUN --mount=type=bind,source=image-weights,target=/tmp/image-weights \
    nst-fetch-weights -o "$NST_WEIGHTS" \
        ${WEIGHTS_FILE:+--from "/tmp/image-weights/$WEIGHTS_FILE"} \
        ${WEIGHTS_SHA256:+--sha256 "$WEIGHTS_SHA256"}

COPY scripts/ scripts/
COPY nst_server/resources/metrics.yaml ./
COPY deploy/config.properties deploy/log4j2.xml deploy/
RUN nst-build-mar --weights "$NST_WEIGHTS" --out "$NST_MODEL_STORE"

# Non-root. Ubuntu 24.04 images already own uid 1000 ("ubuntu"), hence 10001. The only
# writable places are the state directory (TorchServe's working directory: key_file.json,
# pid file, worker sockets) and the logs; neither is part of the image's content.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin model-server \
    && install -d -o 10001 -g 10001 -m 0700 "$NST_STATE_DIR" \
    && install -d -o 10001 -g 10001 -m 0755 "$LOG_LOCATION"
USER 10001:10001
WORKDIR /home/model-server

# Inference (the key proxy in front of TorchServe's 127.0.0.1:8079), TorchServe's metrics, the
# workers' histograms (with the jobs API's series), the async jobs API; management stays on
# 127.0.0.1.
EXPOSE 8080 8082 8083 8085

# "Ready" means the model's worker is READY, not that the JVM answers /ping.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "/opt/nst/scripts/healthcheck.py", "ready"]

# The entrypoint shell stays PID 1 and turns SIGTERM into drain + stop + exit 0; give it the
# time a job may take: docker stop -t 330 (Kubernetes: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/nst/scripts/entrypoint.sh"]
