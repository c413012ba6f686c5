// See prompt.h.
#include "engine/prompt.h"

#include "engine/rag_prompt.h"

namespace infer {
namespace {

engine_error build(const model & m, infer_request & r, size_t n_ctx, prompt_plan & plan) {
    engine_error err;
    plan.tokens = std::move(r.prompt);
    r.prompt.clear();
    if (plan.tokens.empty() && !r.text.empty()) {
        plan.tokens = m.tokenize(r.text, r.parse_special, /*add_bos=*/true);
        r.text.clear();
    }
    if (r.rag) {
        const bool ok = rag_prompt_build(m, *r.rag, plan.tokens);
        r.rag.reset();
        if (!ok) {
            err.code = error_code::rag_template_unsupported;
            return err;
        }
    }
    if (!r.chat.empty()) {
        plan.chat = true;
        if (!chat_render_pieces(m, r.chat, true, plan.chat_turn)) {
            err.code = error_code::chat_template_unsupported;
            return err;
        }
        r.chat.clear();
        // Message content is never parsed for special tokens: only the template's markup is.
        const auto turn = tokenize_pieces(m, plan.chat_turn, /*add_bos=*/plan.tokens.empty());
        std::vector<token> & session = plan.tokens;
        size_t cut = 0;  // session tokens dropped from the front
        const auto fits = [&](size_t c) { return session.size() - c + turn.size() + size_t(r.max_tokens) <= n_ctx; };
        if (!fits(0) && r.chat_truncate && m.chat_message_start() >= 0) {
            // Drop the oldest whole messages: cut only where a message starts.
            for (size_t i = 1; i <= session.size() && !fits(cut); ++i) {
                if (i == session.size() || session[i] == m.chat_message_start()) cut = i;
            }
        }
        if (!fits(cut)) {
            err.code = error_code::chat_too_long;
            err.got = int64_t(session.size() - cut);
            err.turn = int64_t(turn.size());
            err.max_tokens = r.max_tokens;
            err.limit = int64_t(n_ctx);
            err.truncating = r.chat_truncate;
            return err;
        }
        session.erase(session.begin(), session.begin() + long(cut));
        plan.chat_kept = session.size();
        session.insert(session.end(), turn.begin(), turn.end());
    }
    if (plan.tokens.empty()) {
        err.code = error_code::prompt_empty;
    } else if (plan.tokens.size() + size_t(r.max_tokens) > n_ctx) {
        err.code = error_code::prompt_over_context;
        err.got = int64_t(plan.tokens.size());
        err.max_tokens = r.max_tokens;
        err.limit = int64_t(n_ctx);
    }
    return err;
}

}  // namespace

engine_error prompt_build(const model & m, infer_request & r, size_t n_ctx, prompt_plan & plan) {
    try {
        return build(m, r, n_ctx, plan);
    } catch (const tokenize_error & e) {
        // llama.cpp rejects some text (invalid UTF-8 its pre-tokenizer cannot cut): this request
        // fails, the others go on.
        engine_error err;
        err.code = error_code::tokenize_failed;
        err.detail = e.what();
        return err;
    }
}

std::vector<token> chat_session(const model & m, const prompt_plan & plan, const std::string & answer) {
    // The session grows by the turn and the answer as the template writes them, tokenized from
    // the turn's first (special) token on, so it equals the template applied to the whole
    // conversation and tokenized - with the answer, like every message content, never parsed
    // for special tokens (a model that writes "<|im_start|>" as text cannot open a turn).
    std::vector<token> session(plan.tokens.begin(), plan.tokens.begin() + long(plan.chat_kept));
    auto pieces = plan.chat_turn;
    pieces.push_back({answer, false});
    pieces.push_back({m.chat_closing(), true});
    const auto tail = tokenize_pieces(m, pieces, plan.chat_kept == 0);
    session.insert(session.end(), tail.begin(), tail.end());
    return session;
}

}  // namespace infer
