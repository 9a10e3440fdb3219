# Style-transfer server image: TorchServe + the nst engine + official VGG19 weights.
#
#   GPU (default): docker build -t nst-server .
#   CPU:           docker build -t nst-server:cpu --build-arg BASE_IMAGE=ubuntu:24.04 \
#                      --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .
#   Run:           docker run --gpus all -p 8080:8080 -p 8082:8082 nst-server
#                  (an API key is generated at start: docker exec <id> cat /home/model-server/run/api-keys)
#
# The steps are the ones the tests run outside Docker: nst-fetch-weights, nst-build-mar,
# scripts/entrypoint.sh (tests/nst_server/test_entrypoint.py) and scripts/healthcheck.py.
# Docker itself cannot run where this project is developed; see docs/deploy.md.

# CUDA 13.0 matches the CUDA build of torch 2.14.1 that constraints.txt pins. The "base"
# flavour carries only the CUDA runtime: torch's wheels bring their own cuDNN and cuBLAS.
ARG BASE_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04
FROM ${BASE_IMAGE}

# Extra package index for torch/torchvision (the CPU build lives on PyTorch's own index).
ARG TORCH_INDEX=""
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python 3.12 (Ubuntu 24.04's) and Java 17 for TorchServe's frontend.
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
    NST_WEIGHTS=/opt/nst/weights/vgg19-torchvision-features.safetensors \
    NST_MODEL_STORE=/opt/nst/model-store \
    NST_STATE_DIR=/home/model-server/run \
    NST_API_KEYS_FILE=/home/model-server/run/api-keys \
    TS_CONFIG_FILE=/opt/nst/deploy/config.properties \
    LOG_LOCATION=/home/model-server/logs \
    METRICS_LOCATION=/home/model-server/logs

WORKDIR /opt/nst
# The project and its runtime dependencies (pyproject.toml), each at the version
# constraints.txt fixes.
COPY pyproject.toml constraints.txt README.md ./
COPY nst/ nst/
COPY handler/ handler/
COPY nst_client/ nst_client/
COPY nst_server/ nst_server/
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -c constraints.txt .

# Official torchvision VGG19 weights, sha256-checked, converted to safetensors (no pickle
# at serving time).
RUN nst-fetch-weights -o "$NST_WEIGHTS"

COPY scripts/ scripts/
COPY model-config.yaml metrics.yaml ./
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

# Inference and metrics; management stays on 127.0.0.1 inside the container.
EXPOSE 8080 8082

# "Ready" means the model's worker is READY, not that the JVM answers /ping.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "/opt/nst/scripts/healthcheck.py", "ready"]

# The entrypoint shell stays PID 1 and turns SIGTERM into drain + stop + exit 0; give it the
# time a job may take: docker stop -t 330 (Kubernetes: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/nst/scripts/entrypoint.sh"]
