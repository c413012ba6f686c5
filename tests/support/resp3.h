// Test support: a raw RESP3 client. hiredis 0.14 speaks only RESP2, where a map arrives as a
// flat array and a double as a bulk string, so a reply that lost its RESP3 types would still pass
// every hiredis test. This client sends HELLO 3 like any RESP3 client and keeps the exact type of
// every value (maps, sets, doubles, booleans, nulls, big numbers, verbatim strings, pushes,
// attributes), so tests can assert on it.
//
// Reads are bounded: a line, a bulk length, an aggregate's element count and the nesting depth
// all have limits, and every read has a deadline, so a broken reply fails a test instead of
// hanging it or exhausting memory.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testing_support {

enum resp3_type {
    resp3_type_simple_string,  // +
    resp3_type_error,          // -
    resp3_type_integer,        // :
    resp3_type_bulk_string,    // $
    resp3_type_blob_error,     // !
    resp3_type_verbatim,       // = (format in `format`, text in `str`)
    resp3_type_array,          // *
    resp3_type_map,            // % (elements: key, value, key, value, ...)
    resp3_type_set,            // ~
    resp3_type_push,           // >
    resp3_type_double,         // ,
    resp3_type_null,           // _ (and RESP2's $-1 / *-1)
    resp3_type_boolean,        // #
    resp3_type_big_number,     // ( (digits in `str`)
};

const char * resp3_type_name(resp3_type t);

struct resp3_value {
    resp3_type type = resp3_type_null;
    std::string str;       // simple/bulk/verbatim text, error text, big number digits, a double's text
    std::string format;    // verbatim only: "txt", "mkd", ...
    long long integer = 0;
    double dbl = 0;
    bool boolean = false;
    std::vector<resp3_value> elements;    // aggregates; a map's keys and values alternate
    std::vector<resp3_value> attributes;  // a preceding `|` attribute's keys and values, if any

    bool is(resp3_type t) const { return type == t; }
    // Map lookup by a string key (bulk or simple): nullptr if this is not a map or has no such key.
    const resp3_value * get(std::string_view key) const;
    // A map's keys, in order (empty if this is not a map).
    std::vector<std::string> keys() const;
    // One-line rendering for failure messages, e.g. map{"text": bulk "hi", "n": int 3}.
    std::string describe(size_t max_len = 2000) const;
};

enum resp3_parse_status { resp3_parse_ok, resp3_parse_incomplete, resp3_parse_malformed };

// Limits of one reply.
struct resp3_limits {
    size_t max_line = 1 << 20;           // bytes of a +, -, :, ',' ... line
    long long max_bulk = 64LL << 20;     // bytes of one bulk/verbatim/blob error
    long long max_elements = 1 << 22;    // elements of one aggregate
    int max_depth = 32;                  // nesting
};

// Parses one value from buf starting at pos. On ok, out holds it and pos is past it; on
// incomplete, more bytes are needed (pos unchanged); on malformed, why says what is wrong.
resp3_parse_status resp3_parse(std::string_view buf, size_t & pos, resp3_value & out, std::string * why = nullptr,
                               const resp3_limits & limits = {});

// A RESP3 (or RESP2, until HELLO 3) connection to 127.0.0.1:port with a per-read deadline.
class resp3_client {
public:
    explicit resp3_client(int port, std::chrono::milliseconds timeout = std::chrono::seconds(120));
    ~resp3_client();
    resp3_client(const resp3_client &) = delete;
    resp3_client & operator=(const resp3_client &) = delete;

    bool connected() const { return fd_ >= 0; }
    // Why the last call failed (connect, send, timeout, closed, malformed).
    const std::string & error() const { return error_; }

    // Writes one command as a RESP array of bulk strings (binary-safe).
    bool send(const std::vector<std::string> & args);
    // The next value (a push included); nullopt on timeout, a closed connection or a malformed reply.
    std::optional<resp3_value> receive();
    std::optional<resp3_value> call(const std::vector<std::string> & args);
    // HELLO 3; false unless the reply is a map with proto 3.
    bool hello3();

private:
    int fd_ = -1;
    std::chrono::milliseconds timeout_;
    std::string buf_;
    size_t pos_ = 0;
    std::string error_;
};

}  // namespace testing_support
