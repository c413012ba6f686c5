// libFuzzer target: token-key validation, infer::tokens_append_blob, against an independent
// oracle. Every PROMPT key, chat session and RAG chunk passes through it before llama.cpp sees an
// id, and an id >= n_vocab that slips through makes ggml assert and takes Redis down.
//
// Input: [n_vocab: int32 LE][max_tokens: uint32 LE][tokens already in `out`: 1 byte][blob...]
// max_tokens >= 0xFFFFFF00 maps to SIZE_MAX - (0xFFFFFFFF - value), to reach the overflow edge.
// The blob is copied into a heap block of exactly its size, so ASan catches a read past it.
//
// Invariants checked (abort on violation, which libFuzzer records as a crash):
// - bad_length iff the size is not a multiple of 4; then too_long iff the result would exceed
//   max_tokens; then bad_token at the first id >= n_vocab, with its index and value; else ok.
// - ok: out grew by exactly size/4, the earlier tokens are untouched, every new id is in
//   [0, n_vocab) and equals the little-endian word. Any error: out is unchanged.
// n_vocab <= 0 never reaches the function in the module (model::load refuses a model without
// tokens), so for it only the length and "out unchanged" rules are checked unless
// REDIS_INFER_FUZZ_STRICT=1; see docs/robustness.md for what the strict mode finds.
#include "engine/tokens.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace {

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tokens_blob: invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

uint32_t le32(const uint8_t * p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

const bool g_strict = [] {
    const char * s = getenv("REDIS_INFER_FUZZ_STRICT");
    return s && *s == '1';
}();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size < 9) return 0;
    const int32_t n_vocab = int32_t(le32(data));
    const uint32_t mt = le32(data + 4);
    const size_t max_tokens = mt >= 0xFFFFFF00u ? SIZE_MAX - (0xFFFFFFFFu - mt) : size_t(mt);
    const size_t prefix = data[8];
    const size_t len = size - 9;

    std::unique_ptr<char[]> blob(new char[len ? len : 1]);  // exactly len readable bytes
    if (len) memcpy(blob.get(), data + 9, len);
    std::vector<infer::token> out(prefix);
    for (size_t i = 0; i < prefix; ++i) out[i] = infer::token(0x5a5a0000 + i);
    const std::vector<infer::token> before = out;

    const infer::blob_check r = infer::tokens_append_blob(std::string_view(blob.get(), len), n_vocab, max_tokens, out);

    const auto * p = reinterpret_cast<const uint8_t *>(blob.get());
    const size_t n = len / 4;
    FUZZ_CHECK((r.status == infer::blob_status_bad_length) == (len % 4 != 0));
    if (r.status != infer::blob_status_ok) FUZZ_CHECK(out == before);
    if (r.status == infer::blob_status_ok) {
        FUZZ_CHECK(out.size() == prefix + n);
        FUZZ_CHECK(std::equal(before.begin(), before.end(), out.begin()));
        for (size_t i = 0; i < n; ++i) FUZZ_CHECK(uint32_t(out[prefix + i]) == le32(p + 4 * i));
    }
    if (n_vocab <= 0 && !g_strict) return 0;

    // The oracle: the documented order of checks, with a mathematically exact id comparison.
    infer::blob_status want = infer::blob_status_ok;
    size_t bad_index = 0;
    uint32_t bad_value = 0;
    if (len % 4 != 0) {
        want = infer::blob_status_bad_length;
    } else if (n > max_tokens || prefix > max_tokens - n) {
        want = infer::blob_status_too_long;
    } else {
        for (size_t i = 0; i < n; ++i) {
            const uint32_t v = le32(p + 4 * i);
            if (int64_t(v) >= int64_t(n_vocab)) {
                want = infer::blob_status_bad_token;
                bad_index = i;
                bad_value = v;
                break;
            }
        }
    }
    FUZZ_CHECK(r.status == want);
    if (want == infer::blob_status_bad_token) FUZZ_CHECK(r.index == bad_index && r.value == bad_value);
    if (want == infer::blob_status_ok) {
        for (size_t i = 0; i < n; ++i) FUZZ_CHECK(out[prefix + i] >= 0 && out[prefix + i] < n_vocab);
        // Round trip: packing the new ids gives the blob back.
        const auto again = infer::tokens_to_blob(std::span<const infer::token>(out).subspan(prefix));
        FUZZ_CHECK(again.size() == len && memcmp(again.data(), p, len) == 0);
    }
    return 0;
}
