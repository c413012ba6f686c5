// See utf8.h.
#include "engine/utf8.h"

namespace infer {
namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";

// Length of the valid UTF-8 prefix of a sequence starting at s[i], and whether it is complete.
// prefix 0: s[i] cannot start a sequence. Second-byte ranges per RFC 3629 table 3-7.
struct seq {
    size_t prefix;
    bool complete;
};

seq scan(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return (unsigned char) s[i + k]; };
    const unsigned char c = b(0);
    if (c < 0x80) return {1, true};
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) need = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) need = 3;
    else if (c == 0xED) need = 3, hi = 0x9F;  // no surrogates
    else if (c >= 0xEE && c <= 0xEF) need = 3;
    else if (c == 0xF0) need = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) need = 4, hi = 0x8F;  // nothing above U+10FFFF
    else return {0, false};
    size_t k = 1;
    for (; k < need && i + k < s.size(); ++k) {
        const unsigned char x = b(k);
        const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (x < l || x > h) return {k, false};
    }
    return {k, k == need};
}

}  // namespace

size_t utf8_incomplete_tail(std::string_view s) {
    for (size_t k = 1; k <= 3 && k <= s.size(); ++k) {
        const unsigned char c = (unsigned char) s[s.size() - k];
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
        const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

void utf8_append(std::string & text, std::string_view piece) {
    const size_t tail = utf8_incomplete_tail(text);
    std::string pending = text.substr(text.size() - tail);
    pending.append(piece);
    text.resize(text.size() - tail);
    for (size_t i = 0; i < pending.size();) {
        const seq q = scan(pending, i);
        if (q.complete) {
            text.append(pending, i, q.prefix);
            i += q.prefix;
        } else if (q.prefix > 0 && i + q.prefix == pending.size()) {
            text.append(pending, i, q.prefix);  // may still be completed by the next piece
            break;
        } else {
            text.append(k_replacement);
            i += q.prefix > 0 ? q.prefix : 1;
        }
    }
}

std::string utf8_repair(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    utf8_append(out, s);
    if (const size_t tail = utf8_incomplete_tail(out)) {
        out.resize(out.size() - tail);
        out.append(k_replacement);
    }
    return out;
}

bool utf8_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const seq q = scan(s, i);
        if (!q.complete) return false;
        i += q.prefix;
    }
    return true;
}

}  // namespace infer
