// Process-wide llama.cpp state: backend initialisation, version and device description, and
// where llama.cpp's log lines go. Thread-safe; no Redis here (the module installs a log sink).
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace infer {

enum class log_level { debug, info, warning, error };

// Where engine and llama.cpp log lines go. Called from any thread; must be thread-safe.
using log_sink = std::function<void(log_level, std::string_view)>;

// Idempotent and thread-safe. Installs the sink (nullptr = stderr for warnings and errors).
void backend_init(log_sink sink = nullptr);

// printf-style logging through the installed sink.
void log_msg(log_level level, const char * fmt, ...) __attribute__((format(printf, 2, 3)));

// llama.cpp checks its invariants with GGML_ASSERT, which aborts the process - Redis and its
// data with it - and dozens of those checks trust a model file's contents (a duplicated token
// string, a layer count of 0, a BOS the vocabulary asks for but lacks). While an abort_guard
// lives on a thread, such an abort raised on that thread throws ggml_abort_error instead:
// llama.cpp's loader catches it and fails the load, other callers see the exception. Guards
// wrap loading and the vocabulary calls only, where what an abort leaves half-done is local
// (a model being built, an output vector). An abort anywhere else, or on ggml's own worker
// threads, still aborts: shared state there (a context, its KV cache) may be half-updated.
// backend_init installs the hook; guards nest.
struct ggml_abort_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class abort_guard {
public:
    abort_guard();
    ~abort_guard();
    abort_guard(const abort_guard &) = delete;
    abort_guard & operator=(const abort_guard &) = delete;

private:
    bool outer_;
};

std::string backend_version();      // llama.cpp's version string, e.g. "0.5.0"
std::string backend_description();  // "CPU (AVX2 AVX512 ...)" plus any GPU devices

}  // namespace infer
