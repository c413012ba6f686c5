// See chat_prompt.h.
#include "engine/chat_prompt.h"

namespace infer {
namespace {

// Tokens llama.cpp's special-token parsing cuts text at (llama-vocab's special token cache).
bool splits_text(const model & m, token t) {
    return llama_vocab_get_attr(m.vocab(), t) &
           (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN);
}

std::string special_text(const model & m, token t) {
    char buf[256];
    const int32_t n = llama_token_to_piece(m.vocab(), t, buf, sizeof buf, 0, /*special=*/true);
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

std::string marker(size_t i) { return "\x01\x02MSG" + std::to_string(i) + "\x02\x01"; }

}  // namespace

bool is_control_token(const model & m, token t) {
    return t >= 0 && t < m.info().n_vocab && (llama_vocab_get_attr(m.vocab(), t) & LLAMA_TOKEN_ATTR_CONTROL);
}

bool chat_render_pieces(const model & m, const std::vector<chat_message> & msgs, bool add_assistant,
                        std::vector<prompt_piece> & out) {
    std::vector<chat_message> marked = msgs;
    for (size_t i = 0; i < marked.size(); ++i) marked[i].content = marker(i);
    std::string rendered;
    if (!m.chat_apply(marked, add_assistant, rendered)) return false;
    out.clear();
    size_t at = 0;
    for (size_t i = 0; i < msgs.size(); ++i) {
        const std::string mk = marker(i);
        const size_t p = rendered.find(mk, at);
        if (p == std::string::npos) return false;
        out.push_back({rendered.substr(at, p - at), true});
        out.push_back({msgs[i].content, false});
        at = p + mk.size();
    }
    if (rendered.find("\x01\x02MSG", at) != std::string::npos) return false;  // a content rendered twice
    out.push_back({rendered.substr(at), true});
    return true;
}

std::vector<token> tokenize_pieces(const model & m, const std::vector<prompt_piece> & pieces, bool add_bos) {
    std::vector<token> out = m.tokenize("", false, add_bos);  // BOS alone, or nothing
    std::string raw;  // text since the last special token: tokenized as one piece, never parsed
    const auto flush = [&] {
        if (raw.empty()) return;
        const auto t = m.tokenize(raw, /*parse_special=*/false, /*add_bos=*/false);
        out.insert(out.end(), t.begin(), t.end());
        raw.clear();
    };
    for (const auto & p : pieces) {
        if (!p.markup) {
            raw += p.text;
            continue;
        }
        const auto toks = m.tokenize(p.text, /*parse_special=*/true, /*add_bos=*/false);
        size_t first = toks.size(), last = 0;
        for (size_t i = 0; i < toks.size(); ++i) {
            if (!splits_text(m, toks[i])) continue;
            if (first == toks.size()) first = i;
            last = i;
        }
        const std::string first_text = first < toks.size() ? special_text(m, toks[first]) : std::string();
        const std::string last_text = first < toks.size() ? special_text(m, toks[last]) : std::string();
        const size_t head_end = first_text.empty() ? std::string::npos : p.text.find(first_text);
        const size_t tail_at = last_text.empty() ? std::string::npos : p.text.rfind(last_text);
        if (first == toks.size() || head_end == std::string::npos || tail_at == std::string::npos ||
            tail_at < head_end) {
            raw += p.text;  // no special token in this markup (or none found as text): plain text
            continue;
        }
        raw += p.text.substr(0, head_end);
        flush();
        out.insert(out.end(), toks.begin() + long(first), toks.begin() + long(last) + 1);
        raw = p.text.substr(tail_at + last_text.size());
    }
    flush();
    return out;
}

}  // namespace infer
