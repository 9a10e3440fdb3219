#!/bin/sh
# Container entry point: run TorchServe in the foreground, serving style_transfer.
#
# Environment (the Dockerfile sets each one; tests/scripts/test_entrypoint.py runs this script
# outside Docker with temporary directories):
#   NST_APP            the project's scripts/ and deploy/ (the packages are installed)
#   NST_MODEL_STORE    holds style_transfer.mar, built when the image was built
#   NST_WEIGHTS        the weights that .mar packs
#   NST_STATE_DIR      writable: TorchServe's working directory (key_file.json lands here, never
#                      in the image), TMPDIR (pid file, worker sockets), busy markers for preStop
#   TS_CONFIG_FILE     config.properties (TorchServe reads this variable itself)
#   NST_MODEL_OVERRIDE optional YAML merged over model-config.yaml (a Kubernetes ConfigMap). If
#                      the result differs from what the image's .mar packs, the .mar is rebuilt
#                      into NST_STATE_DIR/model-store, so batchSize, responseTimeout and the
#                      handler's limits all come from one merged file.
#   NST_API_KEYS_FILE  bearer keys the handler accepts, one per line (handler/auth.py): the one
#                      key source of both Docker and Kubernetes, so keys never expire under the
#                      operator. If the file is missing and lies in NST_STATE_DIR, one random key
#                      is generated into it (read it with: docker exec <id> cat <file>).
#   NST_KEY_PROXY_ADDRESS host:port of the key-checking front door (nst-auth-gate --upstream):
#                      with NST_API_KEYS_FILE set, it takes the public inference port and
#                      TorchServe's inference API moves to NST_TORCHSERVE_ADDRESS (default
#                      http://127.0.0.1:8079), so a request without a key never reaches its queue
#   NST_DRAIN_TIMEOUT_S longest wait for queued and running jobs after SIGTERM (default 310)
#   NST_METRICS_ADDRESS where the workers serve their histograms (handler/histograms.py); their
#                      shared files live in NST_STATE_DIR/prometheus, emptied at each start
#   NST_JOBS_ADDRESS   host:port of the async jobs API (nst-jobs; empty: not started). Its
#                      series are served on NST_METRICS_ADDRESS too.
#   NST_JOBS_STORE     its store: redis://host:port/db where several replicas share the jobs,
#                      else SQLite in NST_STATE_DIR/jobs.sqlite3 (one container)
#
# This shell stays PID 1: TorchServe's launcher ignores SIGTERM, so on SIGTERM (or SIGINT) the
# shell drains (scripts/healthcheck.py drain: nothing queued, no worker inside a batch), stops
# TorchServe, waits for it, stops the jobs API (whose running jobs have then ended) and the key
# proxy (which carried the last answers) and exits 0.
set -eu

: "${NST_APP:?}" "${NST_MODEL_STORE:?}" "${NST_WEIGHTS:?}" "${NST_STATE_DIR:?}" "${TS_CONFIG_FILE:?}"
export TMPDIR="$NST_STATE_DIR/tmp"
mkdir -p "$TMPDIR"
export PROMETHEUS_MULTIPROC_DIR="$NST_STATE_DIR/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

if [ -n "${NST_API_KEYS_FILE:-}" ] && [ ! -s "$NST_API_KEYS_FILE" ]; then
    case "$NST_API_KEYS_FILE" in
        "$NST_STATE_DIR"/*)
            (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(32))' \
                > "$NST_API_KEYS_FILE")
            echo "entrypoint: generated an API key in $NST_API_KEYS_FILE" ;;
        *)
            echo "entrypoint: NST_API_KEYS_FILE=$NST_API_KEYS_FILE is missing or empty" >&2
            exit 78 ;;
    esac
fi

store="$NST_MODEL_STORE"
if [ -n "${NST_MODEL_OVERRIDE:-}" ]; then
    build="python $NST_APP/scripts/build_mar.py"  # over the model-config.yaml the package ships
    if ! $build --override "$NST_MODEL_OVERRIDE" --packed-in "$store"; then
        store="$NST_STATE_DIR/model-store"
        echo "entrypoint: applying $NST_MODEL_OVERRIDE, rebuilding the .mar in $store"
        $build --override "$NST_MODEL_OVERRIDE" --weights "$NST_WEIGHTS" --out "$store"
    fi
fi

# The workers serve TorchServe's metrics page beside their histograms (one scrape port).
metrics_address="${TS_METRICS_ADDRESS:-http://127.0.0.1:8082}"
export NST_TORCHSERVE_METRICS_URL="${NST_TORCHSERVE_METRICS_URL:-$(echo "$metrics_address" \
    | sed 's#://0\.0\.0\.0#://127.0.0.1#')/metrics}"

if [ -n "${NST_JOBS_ADDRESS:-}" ]; then
    export NST_JOBS_METRICS_URL="http://127.0.0.1:${NST_JOBS_ADDRESS##*:}/metrics"
fi

cd "$NST_STATE_DIR"
proxy=""
if [ -n "${NST_KEY_PROXY_ADDRESS:-}" ] && [ -n "${NST_API_KEYS_FILE:-}" ]; then
    export TS_INFERENCE_ADDRESS="${NST_TORCHSERVE_ADDRESS:-http://127.0.0.1:8079}"
    python "$NST_APP/scripts/auth_gate.py" --upstream "$TS_INFERENCE_ADDRESS" \
        --host "${NST_KEY_PROXY_ADDRESS%:*}" --port "${NST_KEY_PROXY_ADDRESS##*:}" \
        --keys "$NST_API_KEYS_FILE" &
    proxy=$!
fi
torchserve --start --foreground --ncs --ts-config "$TS_CONFIG_FILE" \
    --log-config "$NST_APP/deploy/log4j2.xml" \
    --model-store "$store" --models style_transfer=style_transfer.mar &
server=$!

jobs=""
if [ -n "${NST_JOBS_ADDRESS:-}" ]; then
    # Straight to TorchServe (behind the key proxy when there is one), with a key of the file.
    upstream=$(echo "${TS_INFERENCE_ADDRESS:-http://127.0.0.1:8080}" | sed 's#://0\.0\.0\.0#://127.0.0.1#')
    python -m nst_server.jobs --address "$NST_JOBS_ADDRESS" --inference "$upstream" \
        --store "${NST_JOBS_STORE:-$NST_STATE_DIR/jobs.sqlite3}" --state-dir "$NST_STATE_DIR" \
        --model-config "$store/style_transfer.mar" &
    jobs=$!
fi

stop_helpers() {
    for pid in $jobs $proxy; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" || true
    done
}

shutdown() {
    trap '' TERM INT
    echo "entrypoint: stopping: draining for at most ${NST_DRAIN_TIMEOUT_S:-310} s"
    python "$NST_APP/scripts/healthcheck.py" drain --timeout "${NST_DRAIN_TIMEOUT_S:-310}" \
        || echo "entrypoint: drain timed out; stopping anyway"
    torchserve --stop --foreground >/dev/null || true
    wait "$server" || true
    stop_helpers
    echo "entrypoint: stopped"
    exit 0
}
trap shutdown TERM INT

# `wait` returns early when a trapped signal arrives; the trap then exits.
status=0
wait "$server" || status=$?
echo "entrypoint: TorchServe exited with status $status"
stop_helpers
exit "$status"
