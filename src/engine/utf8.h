// Generated text is made of token pieces, and a byte-level BPE piece can be any bytes: half of an
// emoji, a stray continuation byte. Replies and stream entries must always be valid UTF-8 (a
// client decoding them strictly, redis-py with decode_responses for one, raises otherwise), so
// generated text is kept repaired as it grows: invalid sequences become U+FFFD, and only the
// last character may still be incomplete - held back from streams, dropped when generation ends.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace infer {

// Bytes at the end of s that start a UTF-8 sequence not yet complete (0 if none). Exact for text
// kept by utf8_append; a heuristic (the lead byte's length) for arbitrary bytes.
size_t utf8_incomplete_tail(std::string_view s);

// Appends piece to text, which holds valid UTF-8 except possibly an incomplete last character.
// Each maximal invalid subsequence (RFC 3629: overlong forms, surrogates, above U+10FFFF, stray
// continuation bytes, a sequence cut short by a byte that cannot continue it) becomes U+FFFD;
// an incomplete but valid last character stays, to be completed by the next piece.
void utf8_append(std::string & text, std::string_view piece);

// s as valid UTF-8: invalid subsequences, and an incomplete last character, become U+FFFD.
std::string utf8_repair(std::string_view s);

// Whether s is entirely valid UTF-8.
bool utf8_valid(std::string_view s);

}  // namespace infer
