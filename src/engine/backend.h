// Process-wide llama.cpp state: backend initialisation, version and device description, and
// where llama.cpp's log lines go. Thread-safe; no Redis here (the module installs a log sink).
#pragma once

#include <functional>
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

std::string backend_version();      // llama.cpp's version string, e.g. "0.5.0"
std::string backend_description();  // "CPU (AVX2 AVX512 ...)" plus any GPU devices

}  // namespace infer
