// See errors.h.
#include "commands/errors.h"

#include <algorithm>

namespace infer::cmd {
namespace {

std::string n(int64_t v) { return std::to_string(v); }
std::string model_q(std::string_view m) { return "'" + std::string(m) + "'"; }

}  // namespace

std::string prompt_over_context_text(size_t prompt_tokens, long long max_tokens, size_t n_ctx) {
    return "ERR prompt plus MAX_TOKENS exceeds the context - got " + std::to_string(prompt_tokens) + "+" +
           std::to_string(max_tokens) + " tokens, expected at most " + std::to_string(n_ctx);
}

std::string kind_error_text(std::string_view model, bool want_embedding) {
    return want_embedding
        ? "ERR model " + model_q(model) + " is not an embedding model - load one with INFER.LOAD ... EMBEDDING"
        : "ERR model " + model_q(model) + " is an embedding model - it cannot generate";
}

std::string load_error_text(const engine_error & e) {
    switch (e.code) {
    case error_code::batch_below_context:
        return "BATCH must be at least CTX for an embedding model - got BATCH " + n(e.got) + ", CTX " + n(e.limit);
    case error_code::batch_not_multiple_of_slots:
        return "BATCH must be a multiple of SLOTS for an embedding model - got BATCH " + n(e.got) + ", SLOTS " + n(e.limit);
    case error_code::slots_above_batch:
        return "SLOTS must not exceed BATCH - got SLOTS " + n(e.got) + ", BATCH " + n(e.limit);
    case error_code::over_memory_limit:
        return "it needs about " + n(e.got) + " bytes (weights " + n(e.weights) + " + KV " + n(e.kv) + " + compute " + n(e.compute) +
               "), infer.max-model-memory leaves " + n(std::max<int64_t>(0, e.limit - e.used)) + " of " + n(e.limit) +
               " (other models use " + n(e.used) + ")";
    case error_code::over_memory_available:
        return "it needs about " + n(e.got) + " bytes (weights " + n(e.weights) + " + KV " + n(e.kv) + " + compute " + n(e.compute) +
               "), the machine has " + n(e.limit) + " available (MemAvailable)";
    default:
        return e.detail.empty() ? std::string(error_code_name(e.code)) : e.detail;
    }
}

std::string error_text(const engine_error & e, std::string_view model) {
    switch (e.code) {
    case error_code::none: return "";
    case error_code::unloaded:
        return "ERR model " + model_q(model) + " was unloaded" + (e.during_generation ? " during generation" : "");
    case error_code::internal: return "ERR internal error in model " + model_q(model) + " - " + e.detail;
    case error_code::cancelled: return "ERR request cancelled";
    case error_code::tokenize_failed: return "ERR the text cannot be tokenized - " + e.detail;
    case error_code::prompt_empty: return "ERR the prompt is empty - got 0 tokens, expected at least 1";
    case error_code::prompt_over_context: return prompt_over_context_text(size_t(e.got), e.max_tokens, size_t(e.limit));
    case error_code::chat_too_long:
        return "ERR chat session too long - got " + n(e.got) + "+" + n(e.turn) + "+" + n(e.max_tokens) +
               " tokens (session+turn+MAX_TOKENS), expected at most " + n(e.limit) +
               (e.truncating ? "" : " - TRUNCATE drops the oldest messages");
    case error_code::chat_template_unsupported:
        return "ERR the model's chat template is not supported by llama.cpp - use INFER.GENERATE with your own markup";
    case error_code::rag_template_unsupported:
        return "ERR the model's chat template is not supported by llama.cpp - build the prompt yourself and use "
               "INFER.GENERATE";
    case error_code::decode_failed: return "ERR inference failed - llama_decode returned " + n(e.rc);
    case error_code::input_empty: return "ERR the input is empty - got 0 tokens, expected at least 1";
    case error_code::input_over_context:
        return "ERR embedding input too long - got " + n(e.got) + " tokens, expected at most " + n(e.limit) +
               " (the model's CTX)";
    case error_code::embed_failed:
        return "ERR embedding failed in llama.cpp (decode returned " + n(e.rc) + ", see the server log)";
    case error_code::not_an_embedding_model: return kind_error_text(model, true);
    case error_code::not_a_generation_model: return kind_error_text(model, false) + "; use INFER.EMBED";
    case error_code::batch_below_context:
    case error_code::batch_not_multiple_of_slots:
    case error_code::slots_above_batch:
    case error_code::over_memory_limit:
    case error_code::over_memory_available:
    case error_code::load_failed:
        return "ERR cannot load model " + model_q(model) + " - " + load_error_text(e);
    }
    return "ERR internal error";
}

std::string submit_error_text(executor & sched, submit_status st) {
    if (st == submit_status_ok) return "";
    if (st == submit_status_queue_full) {
        const auto s = sched.stats();
        return "ERR queue full for model '" + sched.name() + "' - " + std::to_string(s.queue_depth) +
               " requests waiting, limit " + std::to_string(s.queue_max);
    }
    return "ERR model '" + sched.name() + "' is being unloaded";
}

}  // namespace infer::cmd
