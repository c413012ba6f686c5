// See errors.h.
#include "engine/errors.h"

namespace infer {

const char * error_code_name(error_code c) {
    switch (c) {
    case error_code::none: return "none";
    case error_code::unloaded: return "unloaded";
    case error_code::internal: return "internal";
    case error_code::cancelled: return "cancelled";
    case error_code::tokenize_failed: return "tokenize_failed";
    case error_code::prompt_empty: return "prompt_empty";
    case error_code::prompt_over_context: return "prompt_over_context";
    case error_code::chat_too_long: return "chat_too_long";
    case error_code::chat_template_unsupported: return "chat_template_unsupported";
    case error_code::rag_template_unsupported: return "rag_template_unsupported";
    case error_code::decode_failed: return "decode_failed";
    case error_code::input_empty: return "input_empty";
    case error_code::input_over_context: return "input_over_context";
    case error_code::embed_failed: return "embed_failed";
    case error_code::not_an_embedding_model: return "not_an_embedding_model";
    case error_code::not_a_generation_model: return "not_a_generation_model";
    case error_code::batch_below_context: return "batch_below_context";
    case error_code::batch_not_multiple_of_slots: return "batch_not_multiple_of_slots";
    case error_code::slots_above_batch: return "slots_above_batch";
    case error_code::over_memory_limit: return "over_memory_limit";
    case error_code::over_memory_available: return "over_memory_available";
    case error_code::load_failed: return "load_failed";
    }
    return "unknown";
}

std::string engine_error::describe() const {
    if (empty()) return "";
    std::string s = error_code_name(code);
    s += " (got " + std::to_string(got) + ", turn " + std::to_string(turn) + ", max_tokens " + std::to_string(max_tokens) +
         ", limit " + std::to_string(limit) + ", rc " + std::to_string(rc) + (during_generation ? ", during generation" : "") +
         (truncating ? ", truncating" : "") +
         (weights || kv || used ? ", weights " + std::to_string(weights) + ", kv " + std::to_string(kv) + ", used " + std::to_string(used) : "") + ")";
    if (!detail.empty()) s += ": " + detail;
    return s;
}

}  // namespace infer
