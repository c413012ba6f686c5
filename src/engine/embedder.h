// An embedding model's executor: one thread owning one llama_context created with embeddings on
// and the model's own pooling (mean/CLS/last; a model that declares none gets mean), which turns
// inputs into one vector each.
//
// Each step takes every queued embed request it can fit, packs up to n_slots inputs and
// n_batch tokens into one llama_batch (one sequence id per input), decodes once and reads one
// pooled vector per sequence; the KV cache (causal embedding models have one) is cleared before
// every step, since no input is ever continued. Non-causal models (BERT) need a whole input in
// one ubatch, so n_ubatch = n_batch >= n_ctx, and an input is at most n_ctx tokens.
//
// Tokenize/detokenize requests are served between steps. A generate request gets a typed error.
// Threading: as scheduler (executor.h).
#pragma once

#include "engine/executor.h"

#include <llama-cpp.h>

#include <atomic>
#include <vector>

namespace infer {

class embedder final : public executor {
public:
    // Creates the context and starts the thread. Throws std::runtime_error if the context cannot
    // be created or the model pools in a way that gives no embedding (rerankers).
    embedder(std::string name, std::shared_ptr<const model> m);
    ~embedder() override;

private:
    struct input {
        request_ptr req;
        std::vector<token> tokens;       // what is embedded
        std::vector<token> gen_tokens;   // INGEST: the text in the generation model's vocabulary
    };
    bool idle() const override { return pending_.empty(); }
    void take(request_list & queue, request_list & intake) override;
    void step(request_list & intake) override;
    void abandon(request_list & intake, const engine_error & why) override;
    void add_stats(executor_stats & s) const override;
    bool prepare(request_ptr & r, input & in);  // false = completed already

    const uint32_t n_ctx_;     // tokens per input at most
    const uint32_t n_batch_;   // tokens per decode at most
    const uint32_t n_seq_;     // inputs per decode at most

    llama_context_ptr ctx_;
    llama_batch batch_{};
    std::vector<input> pending_;  // prepared, waiting for the next decode (reused)
    std::atomic<uint32_t> busy_{0};
};

}  // namespace infer
