#!/usr/bin/env bash
# Packs what the GPU machine needs and cannot download (it has no network) into .gpu/ (ignored
# by git, carried with `carry: [".gpu"]`): a trimmed llama.cpp source tree (the pinned one,
# without models, docs, tests and other backends) and Redis' upstream tarball as Debian's
# trixie source index names it (deps_fetch_redis_source).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_all >/dev/null
mkdir -p .gpu
tar cf .gpu/llama-src.tar -C "$(dirname "$LLAMA_SRC")" --anchored \
    --exclude='src/models/*' --exclude='src/docs' --exclude='src/gguf-py' --exclude='src/tests' \
    --exclude='src/.github' --exclude='src/media' --exclude='src/tools/ui/dist' \
    --exclude='src/examples/llama.android' --exclude='src/examples/llama.swiftui' \
    --exclude='src/ggml/src/ggml-vulkan' --exclude='src/ggml/src/ggml-sycl' --exclude='src/ggml/src/ggml-metal' \
    --exclude='src/ggml/src/ggml-opencl' --exclude='src/ggml/src/ggml-cann' --exclude='src/ggml/src/ggml-webgpu' \
    --exclude='src/ggml/src/ggml-hexagon' --exclude='src/ggml/src/ggml-zdnn' --exclude='src/ggml/src/ggml-openvino' \
    src
# ... but the two vocab files the test models copy their tokenizers from.
tar rf .gpu/llama-src.tar -C "$(dirname "$LLAMA_SRC")" src/models/ggml-vocab-qwen2.gguf src/models/ggml-vocab-bert-bge.gguf
gzip -f .gpu/llama-src.tar
rm -f .gpu/redis_*.orig.tar.*
deps_fetch_redis_source "$PWD/.gpu" >/dev/null
du -sh .gpu/*
