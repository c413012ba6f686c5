// The typed unit of work between the command layer and a model's scheduler.
// A request is created on the Redis main thread, moved into the scheduler's bounded queue and
// from then on owned by the scheduler thread. Its on_done is called exactly once, on the
// scheduler thread (or, if the scheduler is already stopped when it is posted, not at all:
// submit() says so and the caller answers the client itself).
#pragma once

#include "engine/errors.h"
#include "engine/tokens.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace infer {

using clock_type = std::chrono::steady_clock;

inline double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

enum request_kind {
    request_kind_generate,    // prompt (tokens or text) -> generated text
    request_kind_tokenize,    // text -> ids
    request_kind_detokenize,  // ids -> text
    request_kind_embed,       // prompt (tokens or text) -> one pooled vector (embedding models)
};

enum finish_reason {
    finish_reason_none,
    finish_reason_eos,        // the model produced an end-of-generation token
    finish_reason_length,     // max_tokens reached
    finish_reason_stop,       // a stop string appeared; the text is cut before it
    finish_reason_timeout,    // the request's deadline passed; partial text
    finish_reason_cancelled,  // the client went away or was unblocked
};

const char * finish_reason_name(finish_reason r);

struct sampling_params {
    float    temperature;     // <= 0 = greedy
    int32_t  top_k;           // 0 = off
    float    top_p;           // 1 = off
    float    min_p;           // 0 = off
    float    repeat_penalty;  // 1 = off
    int32_t  repeat_last_n;   // tokens the penalty looks back over
    uint32_t seed;            // 0xFFFFFFFF = random
};

sampling_params sampling_default_params();

// Shared between the caller and the engine: the caller may cancel at any time (disconnect,
// CLIENT UNBLOCK); the scheduler checks it between steps.
struct request_control {
    std::atomic<bool> cancelled{false};
};

class model;

// INFER.RAG's prompt, assembled on the scheduler thread (tokenizing is not main-thread work):
// the chat template around a system message and a user message holding the retrieved chunks
// (already token ids, read from their keys) and the question. See rag_prompt.h.
struct rag_input {
    std::string system;
    std::vector<token> system_tokens;        // if not empty, used instead of `system`
    std::vector<std::vector<token>> chunks;  // in rank order
    std::string question;
};

struct chat_message {
    std::string role;     // "system", "user", "assistant"
    std::string content;
};

struct infer_result {
    engine_error error;           // set: the request failed (commands/errors.h words the reply)
    std::string text;             // generate: the text; detokenize: the text
    std::vector<token> tokens;    // tokenize: the ids; generate: the generated ids; embed with
                                  // token_model: the text's ids in that model's vocabulary
    std::vector<uint32_t> offsets;  // tokenize WITHOFFSETS: byte where each token's text starts
    std::vector<float> embedding; // embed: the pooled vector (n_embd floats)
    std::vector<token> prompt;    // generate with return_prompt: the prompt as run
    finish_reason finish = finish_reason_none;
    int32_t prompt_tokens = 0;
    int32_t completion_tokens = 0;
    int32_t cached_tokens = 0;    // prompt tokens whose KV was reused, not prefilled
    int32_t dropped_utf8_bytes = 0;  // generate: bytes of a last character cut short, dropped
    std::vector<token> session;   // chat: the whole conversation after this turn, as tokens
    double queue_ms = 0;          // posted -> admitted to a slot
    double prefill_ms = 0;        // admitted -> first token sampled
    double decode_ms = 0;         // first token -> finished
};

struct infer_request {
    request_kind kind = request_kind_generate;
    std::vector<token> prompt;     // generate/detokenize: ids, already validated against n_vocab
    std::string text;              // generate with TEXT, tokenize: input text
    bool parse_special = true;     // text input: "<|im_start|>" is a control token
    bool with_offsets = false;     // tokenize: also report each token's byte offset in the text
    bool normalize = false;        // embed: scale the vector to unit length
    // embed (INFER.INGEST): also tokenize `text` with this generation model, into result.tokens.
    std::shared_ptr<const model> token_model;
    std::shared_ptr<rag_input> rag;  // generate: build the prompt from this instead of `prompt`
    bool return_prompt = false;    // generate: copy the prompt as run into result.prompt
    sampling_params sampling = sampling_default_params();
    int32_t max_tokens = 256;      // generated tokens at most
    bool ignore_eos = false;       // keep going past end-of-generation tokens (benchmarks)
    bool use_cache = true;         // look up the prefix cache (NO_CACHE turns it off)
    std::vector<std::string> stop; // stop strings
    clock_type::time_point deadline = clock_type::time_point::max();
    clock_type::time_point posted = clock_type::now();
    // Chat: `prompt` holds the session so far; these messages are templated and appended.
    std::vector<chat_message> chat;
    bool chat_truncate = false;    // drop the oldest messages instead of failing when too long
    std::shared_ptr<request_control> control = std::make_shared<request_control>();
    // Generated tokens and the text that became final since the last call (text that could
    // still turn into a stop string is held back). Called on the scheduler thread, once per
    // step per request at most, and always before on_done.
    std::function<void(const std::vector<token> & ids, const std::string & text)> on_stream;
    std::function<void(infer_result &&)> on_done;
};

}  // namespace infer
