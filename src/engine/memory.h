// How much memory a model takes, measured after load and estimated before it, so an operator
// can see it (INFO infer) and bound it (infer.max-model-memory) before a load reads gigabytes.
//
// Measured: llama.cpp's own per-buffer-type breakdown of a context (the model's weights, the
// context's KV cache, its compute buffers), split into host and device by the buffer type.
// Estimated: from the GGUF header alone (no tensor data is read): the tensors' sizes plus a KV
// cache of f16 K and V for every cell the context will have, plus, for a generation model, the
// logits of one ubatch (n_vocab x min(BATCH, 512) floats: with a 152k vocabulary that is 311 MB,
// the bulk of the compute buffers). An embedding model's compute buffers (attention over whole
// inputs) are not estimated.
// All functions are thread-safe; the estimate reads the file's header (cheap, but file I/O:
// the loader thread calls it, not the Redis main thread).
#pragma once

#include "engine/model.h"

#include <cstdint>
#include <string>

struct llama_context;

namespace infer {

struct memory_usage {
    uint64_t weights_cpu = 0;  // bytes of weights in host memory
    uint64_t weights_gpu = 0;  // bytes of weights in device (GPU) memory
    uint64_t kv = 0;           // bytes of KV cache (and recurrent state), host and device
    uint64_t compute = 0;      // bytes of compute buffers, host and device
    uint64_t total() const { return weights_cpu + weights_gpu + kv + compute; }
};

// What llama.cpp allocated for ctx and its model. Call once the context exists.
memory_usage context_memory_usage(const llama_context * ctx);

struct memory_estimate {
    uint64_t weights = 0;  // sum of the GGUF's tensor sizes
    uint64_t kv = 0;       // n_layer * cells * (n_embd_k_gqa + n_embd_v_gqa) * 2 bytes (f16)
    uint64_t compute = 0;  // generation: n_vocab * n_ubatch * 4 (a ubatch's logits); embedding: 0
    uint64_t total() const { return weights + kv + compute; }
};

// Estimates what loading params.path with params (sizes 0 = defaults, as model::load resolves
// them) will take. Returns false with err set when the header cannot be read or lacks the
// shape; the caller then leaves the verdict to model::load, which reports the real cause.
bool memory_estimate_gguf(const model_params & params, memory_estimate & out, std::string & err);

// MemAvailable from /proc/meminfo, in bytes; -1 when unknown (no procfs, no such line). The
// REDIS_INFER_MEMINFO environment variable names another file: tests use it to play a
// machine with little memory.
int64_t memory_available();

// Whether llama.cpp has a GPU device to put layers on (else GPU_LAYERS is ignored and every
// byte lands in host memory).
bool memory_has_gpu();

}  // namespace infer
