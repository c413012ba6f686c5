// See backend.h. llama.cpp logs a great deal at INFO while loading; only warnings and errors
// reach the sink unless it asks for more, so the Redis log stays readable.
#include "engine/backend.h"

#include <ggml.h>
#include <ggml-backend.h>
#include <llama.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <sstream>

namespace infer {
namespace {

std::once_flag g_init_once;
log_sink g_sink;  // written once under g_init_once, read-only afterwards
thread_local bool t_abort_guarded = false;

void emit(log_level level, std::string_view msg) {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.remove_suffix(1);
    if (msg.empty()) return;
    if (g_sink) {
        g_sink(level, msg);
    } else if (level >= log_level::warning) {
        fprintf(stderr, "redis-infer: %.*s\n", (int) msg.size(), msg.data());
    }
}

void llama_log_cb(ggml_log_level level, const char * text, void *) {
    // llama.cpp emits partial lines with GGML_LOG_LEVEL_CONT; they are progress dots.
    if (level == GGML_LOG_LEVEL_ERROR) emit(log_level::error, text);
    else if (level == GGML_LOG_LEVEL_WARN) emit(log_level::warning, text);
    else if (level == GGML_LOG_LEVEL_DEBUG) return;
    else if (level == GGML_LOG_LEVEL_INFO) emit(log_level::debug, text);
}

// ggml_abort calls this with "file:line: GGML_ASSERT(...) failed" and abort()s when it returns.
// Throwing unwinds through ggml_abort, which is C but built with unwind tables (x86-64 and
// AArch64 defaults), into llama.cpp's C++.
void on_ggml_abort(const char * msg) {
    std::string_view site = msg;
    if (const auto colon = site.find(':'); colon != std::string_view::npos) {
        if (const auto slash = site.rfind('/', colon); slash != std::string_view::npos) site.remove_prefix(slash + 1);
    }
    if (!t_abort_guarded) {
        emit(log_level::error, "llama.cpp aborted the process: " + std::string(site));
        return;
    }
    t_abort_guarded = false;  // an abort while unwinding this one is a real abort
    emit(log_level::warning, "llama.cpp assertion failed (refused, not aborted): " + std::string(site));
    throw ggml_abort_error("llama.cpp assertion failed: " + std::string(site));
}

}  // namespace

abort_guard::abort_guard() : outer_(t_abort_guarded) { t_abort_guarded = true; }
abort_guard::~abort_guard() { t_abort_guarded = outer_; }

void backend_init(log_sink sink) {
    std::call_once(g_init_once, [&] {
        g_sink = std::move(sink);
        llama_log_set(llama_log_cb, nullptr);
        ggml_set_abort_callback(on_ggml_abort);
        llama_backend_init();
    });
}

void log_msg(log_level level, const char * fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(level, buf);
}

std::string backend_version() { return llama_version(); }

std::string backend_description() {
    // llama_print_system_info(): "CPU : SSE3 = 1 | AVX = 1 | ... |"; keep the features that are on.
    std::string feats;
    std::istringstream in(llama_print_system_info());
    for (std::string item; std::getline(in, item, '|');) {
        const auto eq = item.find(" = 1");
        if (eq == std::string::npos) continue;
        std::string name = item.substr(0, eq);
        const auto colon = name.find(':');
        if (colon != std::string::npos) name = name.substr(colon + 1);
        while (!name.empty() && name.front() == ' ') name.erase(0, 1);
        if (!name.empty()) feats += (feats.empty() ? "" : " ") + name;
    }
    std::string out = "CPU (" + feats + ")";
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) continue;
        size_t free_b = 0, total_b = 0;
        ggml_backend_dev_memory(dev, &free_b, &total_b);
        out += "; " + std::string(ggml_backend_dev_name(dev)) + ": " + ggml_backend_dev_description(dev) +
               " (" + std::to_string(total_b >> 20) + " MiB)";
    }
    return out;
}

}  // namespace infer
