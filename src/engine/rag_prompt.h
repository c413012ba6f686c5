// INFER.RAG's prompt: the model's chat template around a system message and a user message
// that holds the retrieved chunks and the question. The chunks are already token ids (read from
// their keys, never re-tokenized), so the template is rendered once with marker strings as the
// message contents, cut at the markers, and the text pieces between them tokenized:
//
//   tok(head) + tok(system) + tok(middle) + tok("Context:\n") +
//   chunk_1 + tok("\n\n") + ... + chunk_k + tok("\n\n") + tok("Question: " + q) + tok(tail)
//
// Everything before the question depends only on the system text and the chunks in rank order,
// so two questions that retrieve the same chunks share that prefix in the KV cache. A template
// with no system role (it drops or rejects the system message) gets the system text at the
// start of the user message instead.
#pragma once

#include "engine/model.h"
#include "engine/request.h"

#include <string>
#include <vector>

namespace infer {

// Appends the assembled prompt to out. Returns false if llama.cpp does not know the template.
// Throws tokenize_error like model::tokenize.
bool rag_prompt_build(const model & m, const rag_input & in, std::vector<token> & out);

}  // namespace infer
