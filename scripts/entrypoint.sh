#!/bin/sh
# Container entry point: run TorchServe in the foreground, serving style_transfer.
#
# Environment (the Dockerfile sets each one; tests/scripts/test_entrypoint.py runs this script
# outside Docker with temporary directories):
#   NST_APP            the project (nst/, handler/, scripts/, model-config.yaml)
#   NST_MODEL_STORE    holds style_transfer.mar, built when the image was built
#   NST_WEIGHTS        the weights that .mar packs
#   NST_STATE_DIR      writable: TorchServe's working directory (key_file.json lands here, never
#                      in the image), TMPDIR (pid file, worker sockets), busy markers for preStop
#   TS_CONFIG_FILE     config.properties (TorchServe reads this variable itself)
#   NST_MODEL_OVERRIDE optional YAML merged over model-config.yaml (a Kubernetes ConfigMap). If
#                      the result differs from what the image's .mar packs, the .mar is rebuilt
#                      into NST_STATE_DIR/model-store, so batchSize, responseTimeout and the
#                      handler's limits all come from one merged file.
set -eu

: "${NST_APP:?}" "${NST_MODEL_STORE:?}" "${NST_WEIGHTS:?}" "${NST_STATE_DIR:?}" "${TS_CONFIG_FILE:?}"
export TMPDIR="$NST_STATE_DIR/tmp"
mkdir -p "$TMPDIR"

store="$NST_MODEL_STORE"
if [ -n "${NST_MODEL_OVERRIDE:-}" ]; then
    build="python $NST_APP/scripts/build_mar.py --config $NST_APP/model-config.yaml"
    if ! $build --override "$NST_MODEL_OVERRIDE" --packed-in "$store"; then
        store="$NST_STATE_DIR/model-store"
        echo "entrypoint: applying $NST_MODEL_OVERRIDE, rebuilding the .mar in $store"
        $build --override "$NST_MODEL_OVERRIDE" --weights "$NST_WEIGHTS" --out "$store"
    fi
fi

cd "$NST_STATE_DIR"
exec torchserve --start --foreground --ncs --ts-config "$TS_CONFIG_FILE" \
    --model-store "$store" --models style_transfer=style_transfer.mar
