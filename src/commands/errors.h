// Every reply text for what the engine reports, worded once. The engine says what went wrong as
// data (engine/errors.h); only here does it become "ERR ..." with the command and option names a
// user types, so a rule checked in two layers (the context limit, an empty prompt) still reads
// the same whichever layer caught it.
#pragma once

#include "engine/errors.h"
#include "engine/executor.h"

#include <string>
#include <string_view>

namespace infer::cmd {

// The reply for an engine error on model `model` ("" for none).
std::string error_text(const engine_error & e, std::string_view model);

// Why a load failed, as the tail of "ERR cannot load model '<name>' - ...".
std::string load_error_text(const engine_error & e);

// Shorthands for the rules commands check up front, before anything reaches the engine.
std::string prompt_over_context_text(size_t prompt_tokens, long long max_tokens, size_t n_ctx);
std::string kind_error_text(std::string_view model, bool want_embedding);

// The reply for a submit that was not taken (queue full, model unloading); "" for ok.
std::string submit_error_text(executor & sched, submit_status st);

}  // namespace infer::cmd
