// Prompt assembly: a generate request (TEXT, PROMPT keys' ids, a chat turn over a session, the
// parts of a RAG prompt) becomes the token ids the scheduler prefills, or a typed error. It runs
// on the model's thread (tokenizing and templating are CPU work the Redis main thread must not
// do), before the scheduler places the request in a slot; the scheduler itself only places,
// batches, samples and manages KV.
//
// Chat: `prompt` holds the session so far; the new messages are templated (only the template's
// markup may become control tokens, chat_prompt.h) and appended. When session + turn +
// max_tokens exceeds the context, truncation drops the oldest whole messages (cutting only where
// the template's message-start token stands), else it is chat_too_long. After generation,
// chat_session() rebuilds the grown session from the same pieces.
#pragma once

#include "engine/chat_prompt.h"
#include "engine/errors.h"
#include "engine/model.h"
#include "engine/request.h"

#include <vector>

namespace infer {

struct prompt_plan {
    std::vector<token> tokens;            // what is prefilled
    size_t chat_kept = 0;                 // chat: session tokens kept at the front of tokens
    std::vector<prompt_piece> chat_turn;  // chat: the templated new messages (markup, content)
    bool chat = false;
};

// Builds r's prompt into plan, consuming r.prompt, r.text, r.rag and r.chat. Checks that the
// prompt is not empty and that prompt + r.max_tokens fits n_ctx. Never throws for bad input:
// text the tokenizer rejects is error_code::tokenize_failed.
engine_error prompt_build(const model & m, infer_request & r, size_t n_ctx, prompt_plan & plan);

// The whole conversation after a chat turn: the kept session, the turn and the answer as the
// template writes them (the answer is content: never parsed for special tokens).
std::vector<token> chat_session(const model & m, const prompt_plan & plan, const std::string & answer);

}  // namespace infer
