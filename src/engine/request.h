// The typed unit of work between the command layer and a model's scheduler.
// A request is created on the Redis main thread, moved into the scheduler's bounded queue and
// from then on owned by the scheduler thread. Its on_done is called exactly once, on the
// scheduler thread (or, if the scheduler is already stopped when it is posted, not at all:
// submit() says so and the caller answers the client itself).
#pragma once

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

enum request_kind {
    request_kind_generate,    // prompt (tokens or text) -> generated text
    request_kind_tokenize,    // text -> ids
    request_kind_detokenize,  // ids -> text
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

struct chat_message {
    std::string role;     // "system", "user", "assistant"
    std::string content;
};

struct infer_result {
    std::string error;            // non-empty: the request failed, this is the whole error reply
    std::string text;             // generate: the text; detokenize: the text
    std::vector<token> tokens;    // tokenize: the ids; generate: the generated ids
    finish_reason finish = finish_reason_none;
    int32_t prompt_tokens = 0;
    int32_t completion_tokens = 0;
    int32_t cached_tokens = 0;    // prompt tokens whose KV was reused, not prefilled
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
