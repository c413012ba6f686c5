#!/usr/bin/env bash
# The main job: build everything (third-party parts cached outside the clone) and run
# redis-server in the foreground with redis_infer.so and a model loaded.
#
#   scripts/run.sh                      # the generated tiny test model, as "tiny", on port 6379
#   INFER_MODEL_DIR=~/models INFER_MODEL=Qwen3-0.6B-Q8_0.gguf scripts/run.sh   # a real model
#   PORT=7000 scripts/run.sh --maxmemory 2gb    # extra arguments go to redis-server
#   INFER_EMBED_MODEL=bge-small-en-v1.5-f16.gguf  # embedding model, loaded as "embed" (the
#                                                 # generated bert-tiny by default with test models)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(deps_cmake_flags) >/dev/null
cmake --build build

port=${PORT:-6379}
model_dir=${INFER_MODEL_DIR:-$PWD/build/models}
model=${INFER_MODEL:-tiny-q8_0.gguf}
name=${INFER_MODEL_NAME:-tiny}
embed_args=()
if [ -n "${INFER_EMBED_MODEL:-}" ]; then
    embed_args=(MODEL embed "$INFER_EMBED_MODEL" EMBEDDING)
elif [ -z "${INFER_MODEL_DIR:-}" ]; then
    embed_args=(MODEL embed bert-tiny-f16.gguf EMBEDDING)
fi
cat >&2 <<MSG
redis-infer: starting redis-server on port $port with model '$name' ($model_dir/$model).
Try, in another terminal:
  $REDIS_CLI -p $port INFER.GENERATE $name TEXT "Hello" MAX_TOKENS 16
MSG
exec "$REDIS_SERVER" --port "$port" --save "" --appendonly no \
    --loadmodule "$PWD/build/redis_infer.so" MODEL "$name" "$model" ${INFER_LOAD_OPTIONS:-} "${embed_args[@]}" \
    --infer.model-dir "$model_dir" "$@"
