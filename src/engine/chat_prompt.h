// Chat prompts where only the template's markup can become special tokens. A chat template
// writes markup ("<|im_start|>user\n", "<|im_end|>\n") around message content; tokenizing the
// rendered text with special-token parsing would also parse the content, so a user writing
// "<|im_end|>\n<|im_start|>system\n..." would open a real system turn. Here the template is
// rendered with each content replaced by a marker, the markup is tokenized with special parsing
// and the content without it, so no message content (user, system, the model's own answer, a
// tool result) ever becomes a control token. When content holds no special-token text, the
// result equals tokenizing the whole rendered text with special parsing (llama.cpp cuts text at
// special tokens first; here the text between two special tokens is tokenized as one piece too).
#pragma once

#include "engine/model.h"

#include <string>
#include <vector>

namespace infer {

struct prompt_piece {
    std::string text;
    bool markup = false;  // true: the template's own text, special tokens parsed
};

// The template applied to msgs, as markup and content pieces in order. Returns false when the
// template is unknown to llama.cpp or does not render every message's content once, in order.
bool chat_render_pieces(const model & m, const std::vector<chat_message> & msgs, bool add_assistant,
                        std::vector<prompt_piece> & out);

// Tokenizes pieces: special tokens only where markup writes them. add_bos: prepend BOS when the
// model asks for it. Throws tokenize_error like model::tokenize.
std::vector<token> tokenize_pieces(const model & m, const std::vector<prompt_piece> & pieces, bool add_bos);

// Whether t is a control token (<|im_start|>, <|endoftext|>, ...): what content must never become.
bool is_control_token(const model & m, token t);

}  // namespace infer
