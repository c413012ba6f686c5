#!/usr/bin/env bash
# The main job: build everything (third-party parts cached outside the clone) and run
# redis-server in the foreground with redis_infer.so and a model loaded.
#
#   scripts/run.sh                      # the generated tiny test model, as "tiny", on port 6379
#   INFER_MODEL_DIR=~/models INFER_MODEL=Qwen3-0.6B-Q8_0.gguf scripts/run.sh   # a real model
#   PORT=7000 scripts/run.sh --maxmemory 2gb    # extra arguments go to redis-server
#   INFER_EMBED_MODEL=bge-small-en-v1.5-f16.gguf  # embedding model in INFER_MODEL_DIR, loaded as
#                                                 # "embed"; without INFER_MODEL_DIR the generated
#                                                 # bert-tiny (random weights) by default. With
#                                                 # INFER_MODEL_DIR and no INFER_EMBED_MODEL none is
#                                                 # loaded (INGEST/RAG need one) and a notice says so.
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
embed_model=""
if [ -n "${INFER_EMBED_MODEL:-}" ]; then
    embed_model=$INFER_EMBED_MODEL
elif [ -z "${INFER_MODEL_DIR:-}" ]; then
    embed_model=bert-tiny-f16.gguf
fi
[ -z "$embed_model" ] || embed_args=(MODEL embed "$embed_model" EMBEDDING)
cat >&2 <<MSG
redis-infer: starting redis-server on port $port with model '$name' ($model_dir/$model)${embed_model:+
and embedding model 'embed' ($model_dir/$embed_model)}.
Try, in another terminal:
  $REDIS_CLI -p $port INFER.GENERATE $name TEXT "Hello" MAX_TOKENS 16
MSG
if [ -z "$embed_model" ]; then
    cat >&2 <<MSG
redis-infer: NOTICE: no embedding model loaded, so INFER.EMBED, INFER.INGEST and INFER.RAG will
  fail. Put an embedding GGUF (e.g. bge-small-en-v1.5-f16.gguf) in $model_dir and start with
    INFER_EMBED_MODEL=bge-small-en-v1.5-f16.gguf (loaded as 'embed'),
  or load one into the running server:
    $REDIS_CLI -p $port INFER.LOAD embed bge-small-en-v1.5-f16.gguf EMBEDDING
MSG
fi
exec "$REDIS_SERVER" --port "$port" --save "" --appendonly no \
    --loadmodule "$PWD/build/redis_infer.so" MODEL "$name" "$model" ${INFER_LOAD_OPTIONS:-} "${embed_args[@]}" \
    --infer.model-dir "$model_dir" "$@"
