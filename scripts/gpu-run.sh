#!/usr/bin/env bash
# Runs on the GPU machine (the `device` tool), which has CUDA, CMake and ninja but no network:
# everything third-party comes from .gpu/ (scripts/gpu-kit.sh made it here).
#
#   scripts/gpu-run.sh build     llama.cpp with GGML_CUDA (sm_90), Redis, the module, the models
#   scripts/gpu-run.sh bench06   qwen3-0.6b Q8_0: redis-infer vs llama-server vs llama-batched-bench
#   scripts/gpu-run.sh bench4b   the same on qwen3-4b Q4_K
#   scripts/gpu-run.sh prefix    the prefix-reuse benchmark on qwen3-0.6b
# Builds persist between calls while the machine stays warm (they live in the working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
export REDIS_INFER_NO_APT=1 REDIS_INFER_CUDA=1 REDIS_INFER_CUDA_ARCH=90
export REDIS_INFER_JOBS=${REDIS_INFER_JOBS:-$(nproc)}
export REDIS_INFER_CACHE=$PWD/.gpu/cache
export REDIS_INFER_LLAMA_TARBALL=$PWD/.gpu/llama-src.tar.gz
REDIS_INFER_REDIS_TARBALL=$(ls "$PWD"/.gpu/redis_*.orig.tar.gz)
export REDIS_INFER_REDIS_TARBALL
# No -march=native anywhere; AVX2 is on every x86 server CPU that hosts an H100.
export REDIS_INFER_CPU_FLAGS="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
export REDIS_INFER_LLAMA_TOOLS="llama-server llama-batched-bench"
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH CUDACXX=/usr/local/cuda/bin/nvcc
# ggml-cuda links NCCL; the image has it in its Python environment.
NCCL_HOME=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
export NCCL_HOME

case "${1:-build}" in
build)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    lscpu | grep -E 'Model name|^CPU\(s\)' || true
    # shellcheck source=scripts/deps.sh
    source scripts/deps.sh
    time deps_all
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release $(deps_cmake_flags) >/dev/null
    time cmake --build build --target redis_infer bench make-test-model test_models
    mkdir -p .bench/models
    time build/make-test-model --shape qwen3-0.6b --type q8_0 --vocab "$LLAMA_PREFIX/vocab/ggml-vocab-qwen2.gguf" --out .bench/models/qwen3-0.6b-q8_0.gguf
    # Smoke test: the module on the GPU answers a generation.
    "$REDIS_SERVER" --port 6399 --daemonize yes --save "" --logfile /tmp/smoke.log \
        --loadmodule "$PWD/build/redis_infer.so" MODEL tiny tiny-q8_0.gguf GPU_LAYERS -1 --infer.model-dir "$PWD/build/models"
    for _ in $(seq 100); do "$REDIS_CLI" -p 6399 INFER.INFO tiny 2>/dev/null | grep -qx ready && break; sleep 0.2; done
    "$REDIS_CLI" -p 6399 INFER.INFO | head -8 || { tail -5 /tmp/smoke.log; exit 1; }
    "$REDIS_CLI" -p 6399 INFER.GENERATE tiny TEXT "Hello" MAX_TOKENS 8 TEMPERATURE 0 WITHMETA
    "$REDIS_CLI" -p 6399 SHUTDOWN NOSAVE || true
    ;;
bench06)
    BENCH_SHAPE=qwen3-0.6b BENCH_TYPE=q8_0 BENCH_CONCURRENCY="1 8 32 64 128" BENCH_GPU_LAYERS=-1 BENCH_THREADS=8 \
        BENCH_BATCH=2048 BENCH_REQUESTS=${BENCH_REQUESTS:-3} BENCH_PEER_BACKEND_SAMPLING=1 bash scripts/bench.sh
    ;;
bench4b)
    source scripts/deps.sh && deps_all >/dev/null
    [ -f .bench/models/qwen3-4b-q4_k.gguf ] || time build/make-test-model --shape qwen3-4b --type q4_k \
        --vocab "$LLAMA_PREFIX/vocab/ggml-vocab-qwen2.gguf" --out .bench/models/qwen3-4b-q4_k.gguf
    BENCH_SHAPE=qwen3-4b BENCH_TYPE=q4_k BENCH_CONCURRENCY="1 8 32 64 128" BENCH_GPU_LAYERS=-1 BENCH_THREADS=8 \
        BENCH_BATCH=2048 BENCH_REQUESTS=${BENCH_REQUESTS:-3} BENCH_PEER_BACKEND_SAMPLING=1 bash scripts/bench.sh
    ;;
prefix)
    BENCH_SHAPE=qwen3-0.6b BENCH_TYPE=q8_0 BENCH_GPU_LAYERS=-1 BENCH_THREADS=8 BENCH_SHARED_CLIENTS=16 bash scripts/bench-prefix.sh
    ;;
*) echo "unknown phase $1" >&2; exit 2 ;;
esac
