// See args.h.
#include "commands/args.h"

#include "commands/commands.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace infer::cmd {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        const auto lc = [](char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; };
        if (lc(a[i]) != lc(b[i])) return false;
    }
    return true;
}

std::string quote(std::string_view v) {
    const size_t limit = 64;
    std::string out = "'";
    for (size_t i = 0; i < v.size() && i < limit; ++i) {
        const unsigned char c = (unsigned char) v[i];
        if (c >= 0x20 && c < 0x7f && c != '\'') {
            out += char(c);
        } else {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    if (v.size() > limit) out += "...";
    return out + "'";
}

bool arg_reader::match(std::string_view option) {
    if (done() || !iequals(peek(), option)) return false;
    ++pos_;
    return true;
}

RedisModuleString * arg_reader::next_raw(std::string_view what) {
    if (done()) throw rm::reply_error("ERR missing value for " + std::string(what));
    return argv_[pos_++];
}

std::string_view arg_reader::next_str(std::string_view what) { return rm::str(next_raw(what)); }

long long arg_reader::next_int(std::string_view what, long long min, long long max) {
    const std::string_view s = next_str(what);
    const std::string range = std::to_string(min) + ".." + std::to_string(max);
    long long v = 0;
    if (RedisModule_StringToLongLong(argv_[pos_ - 1], &v) != REDISMODULE_OK) {
        throw rm::reply_error("ERR " + std::string(what) + " must be an integer - got " + quote(s) + ", expected " +
                              range);
    }
    if (v < min || v > max) {
        throw rm::reply_error("ERR " + std::string(what) + " out of range - got " + std::to_string(v) + ", expected " +
                              range);
    }
    return v;
}

double arg_reader::next_double(std::string_view what, double min, double max) {
    const std::string_view s = next_str(what);
    char range[96];
    snprintf(range, sizeof range, "%g..%g", min, max);
    double v = 0;
    // RedisModule_StringToDouble rejects NaN; infinities are rejected by the range check below.
    if (RedisModule_StringToDouble(argv_[pos_ - 1], &v) != REDISMODULE_OK || std::isnan(v)) {
        throw rm::reply_error("ERR " + std::string(what) + " must be a number - got " + quote(s) + ", expected " +
                              range);
    }
    if (!std::isfinite(v) || v < min || v > max) {
        throw rm::reply_error("ERR " + std::string(what) + " out of range - got " + quote(s) + ", expected " + range);
    }
    return v;
}

void check_text_bytes(std::string_view what, size_t bytes) {
    const long long max = state().max_prompt_bytes;
    if (bytes > size_t(max)) {
        throw rm::reply_error("ERR " + std::string(what) + " too long - got " + std::to_string(bytes) +
                              " bytes, expected at most " + std::to_string(max) + " (infer.max-prompt-bytes)");
    }
}

void arg_reader::unknown_option(std::string_view command) const {
    throw rm::reply_error("ERR unknown option " + quote(peek()) + " for " + std::string(command));
}

}  // namespace infer::cmd
