// See sampling.h.
#include "engine/sampling.h"

#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace infer {
namespace {

int32_t argmax_scalar(const float * v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; ++i) {
        if (v[i] > v[best]) best = i;
    }
    return best;
}

#if defined(__x86_64__)
// Blocks of 1024 floats: the maximum of each block with four independent vector accumulators,
// the first block whose maximum is the largest, then the first element equal to it there.
__attribute__((target("avx2"))) int32_t argmax_avx2(const float * v, int32_t n) {
    constexpr int32_t block = 1024;
    float best_v = -INFINITY;
    int32_t best_block = -1;
    int32_t b = 0;
    for (; b + block <= n; b += block) {
        __m256 m0 = _mm256_loadu_ps(v + b), m1 = _mm256_loadu_ps(v + b + 8);
        __m256 m2 = _mm256_loadu_ps(v + b + 16), m3 = _mm256_loadu_ps(v + b + 24);
        for (int32_t i = b + 32; i < b + block; i += 32) {
            m0 = _mm256_max_ps(m0, _mm256_loadu_ps(v + i));
            m1 = _mm256_max_ps(m1, _mm256_loadu_ps(v + i + 8));
            m2 = _mm256_max_ps(m2, _mm256_loadu_ps(v + i + 16));
            m3 = _mm256_max_ps(m3, _mm256_loadu_ps(v + i + 24));
        }
        const __m256 m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
        const float bm = _mm_cvtss_f32(h);
        if (bm > best_v) {
            best_v = bm;
            best_block = b;
        }
    }
    int32_t best = -1;
    if (best_block >= 0) {
        for (int32_t i = best_block; i < best_block + block; ++i) {
            if (v[i] == best_v) {
                best = i;
                break;
            }
        }
    }
    if (best < 0) return argmax_scalar(v, n);  // no full block, or NaNs: the plain loop decides
    for (int32_t i = b; i < n; ++i) {          // the tail after the last full block
        if (v[i] > v[best]) best = i;
    }
    return best;
}
#endif

}  // namespace

int32_t argmax_first(const float * v, int32_t n) {
#if defined(__x86_64__)
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return argmax_avx2(v, n);
#endif
    return argmax_scalar(v, n);
}

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
    if (greedy_) return argmax_first(logits, n_vocab_);
    cur_.resize(size_t(n_vocab_));
    for (int32_t i = 0; i < n_vocab_; ++i) cur_[size_t(i)] = llama_token_data{i, logits[i], 0.0f};
    llama_token_data_array arr = {cur_.data(), cur_.size(), -1, false};
    llama_sampler_apply(chain_.get(), &arr);
    const token t = arr.selected >= 0 && size_t(arr.selected) < arr.size ? arr.data[arr.selected].id : arr.data[0].id;
    llama_sampler_accept(chain_.get(), t);
    return t;
}

}  // namespace infer
