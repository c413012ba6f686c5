// See tokens.h.
#include "engine/tokens.h"

#include <cstring>

namespace infer {

blob_check tokens_append_blob(std::string_view blob, int32_t n_vocab, size_t max_tokens, std::vector<token> & out) {
    blob_check r;
    if (blob.size() % 4 != 0) {
        r.status = blob_status_bad_length;
        return r;
    }
    const size_t n = blob.size() / 4;
    if (n > max_tokens || out.size() > max_tokens - n) {
        r.status = blob_status_too_long;
        return r;
    }
    const auto * p = reinterpret_cast<const unsigned char *>(blob.data());
    for (size_t i = 0; i < n; ++i) {  // validate everything before touching `out`
        const uint32_t v = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 |
                           uint32_t(p[4 * i + 3]) << 24;
        if (n_vocab <= 0 || v >= uint32_t(n_vocab)) {
            r.status = blob_status_bad_token;
            r.index = i;
            r.value = v;
            return r;
        }
    }
    const size_t base = out.size();
    out.resize(base + n);
    for (size_t i = 0; i < n; ++i) {
        out[base + i] = token(uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 |
                              uint32_t(p[4 * i + 3]) << 24);
    }
    return r;
}

std::string tokens_to_blob(std::span<const token> tokens) {
    std::string s(tokens.size() * 4, '\0');
    for (size_t i = 0; i < tokens.size(); ++i) {
        const uint32_t v = uint32_t(tokens[i]);
        s[4 * i] = char(v & 0xff);
        s[4 * i + 1] = char((v >> 8) & 0xff);
        s[4 * i + 2] = char((v >> 16) & 0xff);
        s[4 * i + 3] = char((v >> 24) & 0xff);
    }
    return s;
}

}  // namespace infer
