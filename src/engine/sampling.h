// Builds one llama.cpp sampler chain per request from its sampling_params.
// Only the scheduler thread uses the chains it builds.
#pragma once

#include "engine/request.h"

#include <llama-cpp.h>

namespace infer {

// The order follows llama-server's default: penalties, top-k, top-p, min-p, temperature, dist.
llama_sampler_ptr sampler_make(const sampling_params & p, const llama_vocab * vocab);

}  // namespace infer
