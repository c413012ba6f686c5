// Per-request token sampling from a row of logits.
//
// Greedy requests without penalties take a fast path: an argmax straight over the logits
// (what llama.cpp's greedy sampler computes, without building a 152k-entry candidate array).
// Everything else runs a llama.cpp sampler chain (penalties, top-k, top-p, min-p, temperature,
// dist, in llama-server's order) over a candidate buffer the sampler owns.
//
// Threading: one sampler belongs to one request; sample() only touches the sampler and the
// logits row it is given, so different samplers may run on different threads at once (the
// scheduler spreads a step's sampling over its worker pool).
#pragma once

#include "engine/request.h"

#include <llama-cpp.h>

#include <vector>

namespace infer {

// The index of the first largest of n floats (n >= 1), as llama.cpp's greedy sampler picks it.
// At 64 slots a step scans 64 rows of 151,936 logits (39 MB) between two GPU decodes: the
// vectorized path (AVX2 where the CPU has it) finds the largest block maximum in one pass and
// searches only that block, several times faster than the scalar loop. A NaN row gives a valid
// index, not necessarily the scalar loop's.
int32_t argmax_first(const float * v, int32_t n);

class token_sampler {
public:
    token_sampler(const sampling_params & p, const llama_vocab * vocab);

    // Feeds prompt tokens to stateful samplers (the repeat penalty looks back over them).
    void accept_prompt(const std::vector<token> & prompt);
    // Picks the next token from one row of logits (n_vocab floats) and records it.
    token sample(const float * logits);

private:
    int32_t n_vocab_;
    bool greedy_;
    int32_t repeat_last_n_ = 0;
    llama_sampler_ptr chain_;
    std::vector<llama_token_data> cur_;
};

}  // namespace infer
