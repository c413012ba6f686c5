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

llama_sampler_ptr sampler_make(const sampling_params & p, const llama_vocab * vocab) {
    llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    llama_sampler_ptr chain(llama_sampler_chain_init(cp));
    if (p.repeat_penalty != 1.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), p.repeat_last_n, p.repeat_penalty, 0.0f, 0.0f));
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
        return chain;
    }
    if (p.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(p.seed));
    return chain;
}

}  // namespace infer
