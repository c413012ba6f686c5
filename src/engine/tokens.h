// Token keys: a Redis STRING of packed little-endian uint32 token ids, 4 bytes per token.
// These helpers turn such a blob into validated ids and back. Pure functions, thread-safe.
// Validation happens here, before anything reaches llama.cpp: an out-of-range id makes ggml
// assert, and an assert takes the whole Redis process down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace infer {

using token = int32_t;  // llama_token

enum blob_status {
    blob_status_ok,
    blob_status_bad_length,    // size not a multiple of 4
    blob_status_bad_token,     // an id >= n_vocab
    blob_status_too_long,      // more tokens than max_tokens allows
};

struct blob_check {
    blob_status status = blob_status_ok;
    size_t index = 0;     // bad_token: position of the first bad id
    uint32_t value = 0;   // bad_token: the id
};

// Validates `blob` and appends its ids to `out`. On error `out` is left unchanged.
// max_tokens bounds the size of `out` after appending (checked before any copy).
blob_check tokens_append_blob(std::string_view blob, int32_t n_vocab, size_t max_tokens, std::vector<token> & out);

// Packs ids into the token-key format.
std::string tokens_to_blob(std::span<const token> tokens);

}  // namespace infer
