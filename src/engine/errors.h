// What went wrong in the engine, as data: a code plus the numbers that explain it. The engine
// never words a client-facing message (it does not know which command, option or reply format
// the request came from); src/commands/errors.cpp turns an engine_error into the reply text, in
// one place. describe() is for logs and test failure output only.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace infer {

enum class error_code {
    none,
    unloaded,                   // the executor stopped (UNLOAD, shutdown); running: during_generation
    internal,                   // an exception in a step; detail: its what()
    cancelled,                  // cancelled before it started (embedder)
    tokenize_failed,            // the tokenizer rejected the text; detail: llama.cpp's reason
    prompt_empty,               // a generation prompt of 0 tokens
    prompt_over_context,        // prompt_tokens + max_tokens > limit
    chat_too_long,              // session (prompt_tokens) + turn + max_tokens > limit
    chat_template_unsupported,  // llama.cpp does not know the model's template (chat turn)
    rag_template_unsupported,   // the same, building a RAG prompt
    decode_failed,              // llama_decode returned rc
    input_empty,                // an embedding input of 0 tokens
    input_over_context,         // an embedding input of prompt_tokens > limit
    embed_failed,               // no pooled vector after a decode that returned rc
    not_an_embedding_model,     // an embed request posted to a generation model
    not_a_generation_model,     // a generate request posted to an embedding model
    // model::load's checks of the load parameters against each other
    batch_below_context,        // embedding: batch (got) < context (limit)
    batch_not_multiple_of_slots,  // embedding: batch (got) % slots (limit) != 0
    slots_above_batch,          // slots (got) > batch (limit)
    // the registry's memory checks before a load reads the weights: got = the estimate (weights
    // + kv + compute), limit = the bound (infer.max-model-memory, or MemAvailable), used = other models
    over_memory_limit,          // used + got > limit (infer.max-model-memory)
    over_memory_available,      // got > limit (MemAvailable, a load into host memory)
    load_failed,                // any other load failure; detail: the cause
};

struct engine_error {
    error_code code = error_code::none;
    int64_t got = 0;            // the measured size: prompt or input tokens, batch, slots
    int64_t turn = 0;           // chat_too_long: the new turn's tokens
    int64_t max_tokens = 0;     // the generation budget asked for
    int64_t limit = 0;          // the bound it broke: context, batch, slots
    int64_t weights = 0;        // over_memory_*: the estimate's weights bytes
    int64_t kv = 0;             // over_memory_*: the estimate's KV bytes
    int64_t compute = 0;        // over_memory_*: the estimate's compute bytes
    int64_t used = 0;           // over_memory_limit: bytes other loaded models take
    int32_t rc = 0;             // decode_failed, embed_failed: llama_decode's return
    bool during_generation = false;  // unloaded: the request had started
    bool truncating = false;    // chat_too_long: TRUNCATE was on and still not enough
    std::string detail;         // the underlying cause (llama.cpp's or an exception's words)

    bool empty() const { return code == error_code::none; }
    explicit operator bool() const { return !empty(); }
    std::string describe() const;  // for logs and tests: code name and fields
};

const char * error_code_name(error_code c);

inline std::ostream & operator<<(std::ostream & os, const engine_error & e) { return os << e.describe(); }

}  // namespace infer
