// See rag_prompt.h.
#include "engine/rag_prompt.h"

#include "engine/chat_prompt.h"

namespace infer {
namespace {

void append(std::vector<token> & out, const std::vector<token> & t) { out.insert(out.end(), t.begin(), t.end()); }

// Chunks and SYSTEM_KEY are token keys anyone with write access to them could fill with control
// ids; they are content, so a control token in them goes in as its text, never as markup.
void append_content(const model & m, std::vector<token> & out, const std::vector<token> & t) {
    bool control = false;
    for (token x : t) control = control || is_control_token(m, x);
    if (!control) return append(out, t);
    append(out, m.tokenize(m.detokenize(t), /*parse_special=*/false, /*add_bos=*/false));
}

}  // namespace

bool rag_prompt_build(const model & m, const rag_input & in, std::vector<token> & out) {
    static const std::string k_sys = "\x01\x02RAG-SYSTEM\x02\x01";
    static const std::string k_user = "\x01\x02RAG-USER\x02\x01";
    std::string rendered;
    std::string head, middle, tail;
    bool system_in_user = false;
    size_t s = std::string::npos, u = std::string::npos;
    if (m.chat_apply({{"system", k_sys}, {"user", k_user}}, true, rendered)) {
        s = rendered.find(k_sys);
        u = rendered.find(k_user);
    }
    if (s != std::string::npos && u != std::string::npos && s < u) {
        head = rendered.substr(0, s);
        middle = rendered.substr(s + k_sys.size(), u - s - k_sys.size());
        tail = rendered.substr(u + k_user.size());
    } else {
        if (!m.chat_apply({{"user", k_user}}, true, rendered) || (u = rendered.find(k_user)) == std::string::npos) {
            return false;
        }
        head = rendered.substr(0, u);
        tail = rendered.substr(u + k_user.size());
        system_in_user = true;
    }
    // Template markup is parsed for special tokens; the system text, question and separators
    // are text (a question containing "<|im_end|>" must not close the turn).
    append(out, m.tokenize(head, /*parse_special=*/true, /*add_bos=*/true));
    if (in.system_tokens.empty()) append(out, m.tokenize(in.system, false, false));
    else append_content(m, out, in.system_tokens);
    append(out, system_in_user ? m.tokenize("\n\n", false, false) : m.tokenize(middle, true, false));
    append(out, m.tokenize("Context:\n", false, false));
    const std::vector<token> sep = m.tokenize("\n\n", false, false);
    for (const auto & c : in.chunks) {
        append_content(m, out, c);
        append(out, sep);
    }
    append(out, m.tokenize("Question: " + in.question, false, false));
    append(out, m.tokenize(tail, true, false));
    return true;
}

}  // namespace infer
