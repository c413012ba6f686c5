// See memory.h.
#include "engine/memory.h"

#include "engine/backend.h"

#include <ggml-backend.h>
#include <gguf.h>
#include <llama.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

// llama.cpp's breakdown of a context's memory by buffer type. The pinned llama.cpp exports it
// from libllama but keeps the declaration in its private src/llama-context.h; it is restated
// here (a free function: the return type is not part of the mangled name, so only the layout
// matters). The layout - model, context, compute, three size_t - was checked against the
// pinned build's disassembly of llama_context::memory_breakdown (stores at value offsets 0, 8,
// 16); the unit test memory_test.cpp checks the numbers against llama_model_size.
struct llama_memory_breakdown_data {
    size_t model = 0;    // the model's weights in this buffer type
    size_t context = 0;  // KV cache / recurrent state
    size_t compute = 0;  // compute buffers
};
std::map<ggml_backend_buffer_type_t, llama_memory_breakdown_data> llama_get_memory_breakdown(const llama_context * ctx);

namespace infer {
namespace {

bool buft_is_device(ggml_backend_buffer_type_t buft) {
    if (ggml_backend_buft_is_host(buft)) return false;
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (!dev) return false;
    const auto t = ggml_backend_dev_type(dev);
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

struct gguf_deleter {
    void operator()(gguf_context * c) const { gguf_free(c); }
};
using gguf_ptr = std::unique_ptr<gguf_context, gguf_deleter>;

// An integer scalar, or -1 when the key is missing or not an integer.
int64_t get_int(const gguf_context * g, const std::string & key) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return -1;
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(g, id);
    case GGUF_TYPE_UINT64: return int64_t(gguf_get_val_u64(g, id));
    case GGUF_TYPE_INT64: return gguf_get_val_i64(g, id);
    default: return -1;
    }
}

// A per-layer value: a scalar for every layer, or an array of n_layer integers (models whose
// layers differ, e.g. head_count_kv 0 on layers without attention). Empty when missing.
std::vector<int64_t> get_per_layer(const gguf_context * g, const std::string & key, int64_t n_layer) {
    const int64_t id = gguf_find_key(g, key.c_str());
    if (id < 0) return {};
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_ARRAY) {
        const int64_t v = get_int(g, key);
        return v < 0 ? std::vector<int64_t>{} : std::vector<int64_t>(size_t(n_layer), v);
    }
    if (int64_t(gguf_get_arr_n(g, id)) != n_layer) return {};
    const void * d = gguf_get_arr_data(g, id);
    std::vector<int64_t> out(static_cast<size_t>(n_layer), 0);
    for (int64_t i = 0; i < n_layer; ++i) {
        switch (gguf_get_arr_type(g, id)) {
        case GGUF_TYPE_UINT32: out[size_t(i)] = static_cast<const uint32_t *>(d)[i]; break;
        case GGUF_TYPE_INT32: out[size_t(i)] = static_cast<const int32_t *>(d)[i]; break;
        default: return {};
        }
    }
    return out;
}

}  // namespace

memory_usage context_memory_usage(const llama_context * ctx) {
    memory_usage u;
    for (const auto & [buft, d] : llama_get_memory_breakdown(ctx)) {
        (buft_is_device(buft) ? u.weights_gpu : u.weights_cpu) += d.model;
        u.kv += d.context;
        u.compute += d.compute;
    }
    return u;
}

bool memory_estimate_gguf(const model_params & params, memory_estimate & out, std::string & err) {
    out = {};
    gguf_init_params gp{};
    gp.no_alloc = true;  // metadata and tensor infos only: no tensor data is read
    gp.ctx = nullptr;
    gguf_ptr g;
    try {
        abort_guard guard;  // as model::load: an assert on the file's contents is a refusal, not an abort
        g.reset(gguf_init_from_file(params.path.c_str(), gp));
    } catch (const ggml_abort_error &) {
    }
    if (!g) {
        err = "the GGUF header cannot be read";
        return false;
    }
    for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) out.weights += gguf_get_tensor_size(g.get(), i);

    const int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
    if (arch_id < 0 || gguf_get_kv_type(g.get(), arch_id) != GGUF_TYPE_STRING) {
        err = "no general.architecture";
        return false;
    }
    const std::string arch = gguf_get_val_str(g.get(), arch_id);
    const auto key = [&arch](const char * k) { return arch + "." + k; };
    if (!params.embedding) {
        // The scheduler's n_ubatch (scheduler.cpp); the vocabulary is the tokens array.
        const int64_t tok = gguf_find_key(g.get(), "tokenizer.ggml.tokens");
        model_params p = params;
        model_params_resolve_sizes(p, 0);  // only n_batch matters here, and it needs no n_ctx_train
        if (tok >= 0) out.compute = uint64_t(gguf_get_arr_n(g.get(), tok)) * std::min<uint32_t>(p.n_batch, 512) * 4;
    }
    // BERT-family encoders attend over one input at a time and llama.cpp gives them no KV
    // cache at all (its create_memory returns none for them).
    if (arch.find("bert") != std::string::npos) return true;

    const int64_t n_layer = get_int(g.get(), key("block_count"));
    const int64_t n_embd = get_int(g.get(), key("embedding_length"));
    const auto n_head = get_per_layer(g.get(), key("attention.head_count"), n_layer);
    auto n_head_kv = get_per_layer(g.get(), key("attention.head_count_kv"), n_layer);
    if (n_layer <= 0 || n_embd <= 0 || n_head.empty()) {
        err = "the GGUF lacks block_count, embedding_length or attention.head_count";
        return false;
    }
    if (n_head_kv.empty()) n_head_kv = n_head;  // no GQA: one KV head per head
    model_params p = params;
    const int64_t n_ctx_train = get_int(g.get(), key("context_length"));
    model_params_resolve_sizes(p, int32_t(n_ctx_train > 0 ? std::min<int64_t>(n_ctx_train, INT32_MAX) : 0));
    // Cells in the context, as scheduler.cpp and embedder.cpp create it.
    const uint64_t cells = p.embedding ? p.n_batch : uint64_t(p.n_ctx) * p.n_slots;
    const int64_t k_len = get_int(g.get(), key("attention.key_length"));
    const int64_t v_len = get_int(g.get(), key("attention.value_length"));
    uint64_t per_cell = 0;  // K and V elements of one cell over all layers
    for (int64_t l = 0; l < n_layer; ++l) {
        const int64_t heads = n_head[size_t(l)];
        const int64_t head_dim = heads > 0 ? n_embd / heads : 0;
        per_cell += uint64_t(n_head_kv[size_t(l)]) * uint64_t((k_len > 0 ? k_len : head_dim) + (v_len > 0 ? v_len : head_dim));
    }
    out.kv = cells * per_cell * 2;  // f16 K and V, llama.cpp's default cache type
    return true;
}

int64_t memory_available() {
    const char * path = std::getenv("REDIS_INFER_MEMINFO");
    std::ifstream in(path && *path ? path : "/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("MemAvailable:", 0) != 0) continue;
        std::istringstream fields(line.substr(13));
        int64_t kb = -1;
        std::string unit;
        fields >> kb >> unit;
        return kb < 0 ? -1 : kb * 1024;  // the kernel writes "kB" and means KiB
    }
    return -1;
}

bool memory_has_gpu() {
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto t = ggml_backend_dev_type(ggml_backend_dev_get(i));
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return true;
    }
    return false;
}

}  // namespace infer
