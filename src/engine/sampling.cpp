// See sampling.h.
#include "engine/sampling.h"

namespace infer {

sampling_params sampling_default_params() {
    sampling_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = LLAMA_DEFAULT_SEED;
    return p;
}

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case finish_reason_eos: return "eos";
        case finish_reason_length: return "length";
        case finish_reason_stop: return "stop";
        case finish_reason_timeout: return "timeout";
        case finish_reason_cancelled: return "cancelled";
        case finish_reason_none: break;
    }
    return "none";
}

token_sampler::token_sampler(const sampling_params & p, const llama_vocab * vocab)
    : n_vocab_(llama_vocab_n_tokens(vocab)), greedy_(p.temperature <= 0.0f && p.repeat_penalty == 1.0f) {
    if (greedy_) return;
    llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    chain_.reset(llama_sampler_chain_init(cp));
    if (p.repeat_penalty != 1.0f) {
        repeat_last_n_ = p.repeat_last_n;
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_penalties(n_vocab_, p.repeat_last_n, p.repeat_penalty, 0.0f, 0.0f));
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain_.get(), llama_sampler_init_greedy());
        return;
    }
    if (p.top_k > 0) llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain_.get(), llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain_.get(), llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain_.get(), llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain_.get(), llama_sampler_init_dist(p.seed));
}

void token_sampler::accept_prompt(const std::vector<token> & prompt) {
    if (!chain_ || repeat_last_n_ <= 0) return;
    const size_t from = prompt.size() > size_t(repeat_last_n_) ? prompt.size() - size_t(repeat_last_n_) : 0;
    for (size_t i = from; i < prompt.size(); ++i) llama_sampler_accept(chain_.get(), prompt[i]);
}

token token_sampler::sample(const float * logits) {
    if (greedy_) {
        // The first maximum, as llama.cpp's greedy sampler picks it.
        token best = 0;
        float v = logits[0];
        for (int32_t i = 1; i < n_vocab_; ++i) {
            if (logits[i] > v) {
                v = logits[i];
                best = i;
            }
        }
        return best;
    }
    cur_.resize(size_t(n_vocab_));
    for (int32_t i = 0; i < n_vocab_; ++i) cur_[size_t(i)] = llama_token_data{i, logits[i], 0.0f};
    llama_token_data_array arr = {cur_.data(), cur_.size(), -1, false};
    llama_sampler_apply(chain_.get(), &arr);
    const token t = arr.selected >= 0 && size_t(arr.selected) < arr.size ? arr.data[arr.selected].id : arr.data[0].id;
    llama_sampler_accept(chain_.get(), t);
    return t;
}

}  // namespace infer
