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
// Tokenize/detokenize requests are served between steps. A generate request gets a clear error.
// Threading: as scheduler (executor.h).
#pragma once

#include "engine/executor.h"

#include <llama-cpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace infer {

class embedder final : public executor {
public:
    // Creates the context and starts the thread. Throws std::runtime_error if the context cannot
    // be created or the model pools in a way that gives no embedding (rerankers).
    embedder(std::string name, std::shared_ptr<const model> m);
    ~embedder() override;

    embedder(const embedder &) = delete;
    embedder & operator=(const embedder &) = delete;

    submit_status submit(std::unique_ptr<infer_request> & req) override;
    void stop(stop_mode mode) override;
    scheduler_stats stats() const override;
    const model & get_model() const override { return *model_; }
    const std::string & name() const override { return name_; }

private:
    struct input {
        std::unique_ptr<infer_request> req;
        std::vector<token> tokens;       // what is embedded
        std::vector<token> gen_tokens;   // INGEST: the text in the generation model's vocabulary
    };
    void run();
    void step(std::deque<std::unique_ptr<infer_request>> & intake);
    bool prepare(std::unique_ptr<infer_request> & r, input & in);  // false = completed already
    void decode(std::vector<input> & group);
    void complete(infer_request & r, infer_result && res);

    const std::string name_;
    const std::shared_ptr<const model> model_;
    const uint32_t n_ctx_;     // tokens per input at most
    const uint32_t n_batch_;   // tokens per decode at most
    const uint32_t n_seq_;     // inputs per decode at most
    const uint32_t queue_max_;

    llama_context_ptr ctx_;
    llama_batch batch_{};
    std::vector<input> pending_;  // prepared, waiting for the next decode (reused)

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<infer_request>> queue_;
    bool stopping_ = false;
    stop_mode stop_mode_ = stop_mode_drain;

    std::atomic<uint32_t> queue_depth_{0}, busy_{0};
    std::atomic<uint64_t> requests_total_{0}, requests_failed_{0}, prompt_tokens_{0}, steps_{0}, busy_us_{0};

    std::mutex join_mu_;
    std::thread thread_;
};

}  // namespace infer
