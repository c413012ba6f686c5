// Parsing argv into typed values, with the project's error format:
//   ERR <what is wrong> - got <value>, expected <range>
// Every helper throws rm::reply_error, so a command's parse function reads straight through
// and the guard turns the first problem into the reply. Main thread only.
#pragma once

#include "redis/rm.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace infer::cmd {

// Shows a client-supplied value in an error message: quoted, truncated, non-printables escaped.
std::string quote(std::string_view v);

class arg_reader {
public:
    arg_reader(RedisModuleString ** argv, int argc, int pos) : argv_(argv), argc_(argc), pos_(pos) {}

    bool done() const { return pos_ >= argc_; }
    int pos() const { return pos_; }
    std::string_view peek() const { return rm::str(argv_[pos_]); }

    // Consumes the next argument if it equals `option` (case-insensitive).
    bool match(std::string_view option);

    RedisModuleString * next_raw(std::string_view what);
    std::string_view next_str(std::string_view what);
    // Integer in [min, max]; `what` names the option in errors.
    long long next_int(std::string_view what, long long min, long long max);
    // Finite number in [min, max].
    double next_double(std::string_view what, double min, double max);

    [[noreturn]] void unknown_option(std::string_view command) const;

private:
    RedisModuleString ** argv_;
    int argc_;
    int pos_;
};

bool iequals(std::string_view a, std::string_view b);

// Text a client sends to be tokenized is bounded by infer.max-prompt-bytes: throws
// "ERR <what> too long - ..." past it.
void check_text_bytes(std::string_view what, size_t bytes);

}  // namespace infer::cmd
