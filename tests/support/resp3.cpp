// See resp3.h. The parser restarts from the reply's first byte when more bytes arrive: replies in
// the tests are small, and a parser without saved state cannot resume in a wrong place.
#include "support/resp3.h"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace testing_support {

const char * resp3_type_name(resp3_type t) {
    switch (t) {
        case resp3_type_simple_string: return "simple";
        case resp3_type_error: return "error";
        case resp3_type_integer: return "int";
        case resp3_type_bulk_string: return "bulk";
        case resp3_type_blob_error: return "blob-error";
        case resp3_type_verbatim: return "verbatim";
        case resp3_type_array: return "array";
        case resp3_type_map: return "map";
        case resp3_type_set: return "set";
        case resp3_type_push: return "push";
        case resp3_type_double: return "double";
        case resp3_type_null: return "null";
        case resp3_type_boolean: return "bool";
        case resp3_type_big_number: return "bignum";
    }
    return "?";
}

const resp3_value * resp3_value::get(std::string_view key) const {
    if (type != resp3_type_map) return nullptr;
    for (size_t i = 0; i + 1 < elements.size(); i += 2) {
        const resp3_value & k = elements[i];
        if ((k.type == resp3_type_bulk_string || k.type == resp3_type_simple_string) && k.str == key) return &elements[i + 1];
    }
    return nullptr;
}

std::vector<std::string> resp3_value::keys() const {
    std::vector<std::string> out;
    if (type != resp3_type_map) return out;
    for (size_t i = 0; i + 1 < elements.size(); i += 2) out.push_back(elements[i].str);
    return out;
}

std::string resp3_value::describe(size_t max_len) const {
    std::string s;
    auto quoted = [](const std::string & v) {
        std::string q = "\"";
        for (unsigned char ch : v.substr(0, 80)) {
            if (ch >= 0x20 && ch < 0x7f && ch != '"') {
                q += char(ch);
            } else {
                char b[8];
                snprintf(b, sizeof b, "\\x%02x", ch);
                q += b;
            }
        }
        return q + (v.size() > 80 ? "...\"" : "\"");
    };
    switch (type) {
        case resp3_type_simple_string:
        case resp3_type_bulk_string:
        case resp3_type_error:
        case resp3_type_blob_error:
        case resp3_type_big_number:
            s = std::string(resp3_type_name(type)) + " " + quoted(str);
            break;
        case resp3_type_verbatim: s = "verbatim " + format + ":" + quoted(str); break;
        case resp3_type_integer: s = "int " + std::to_string(integer); break;
        case resp3_type_double: s = "double " + str; break;
        case resp3_type_null: s = "null"; break;
        case resp3_type_boolean: s = boolean ? "true" : "false"; break;
        case resp3_type_map:
            s = "map{";
            for (size_t i = 0; i + 1 < elements.size() && s.size() < max_len; i += 2) {
                s += (i ? ", " : "") + elements[i].describe(max_len) + ": " + elements[i + 1].describe(max_len);
            }
            s += "}";
            break;
        default:
            s = std::string(resp3_type_name(type)) + "[";
            for (size_t i = 0; i < elements.size() && s.size() < max_len; ++i) s += (i ? ", " : "") + elements[i].describe(max_len);
            s += "]";
    }
    if (s.size() > max_len) s = s.substr(0, max_len) + "...";
    return s;
}

namespace {

struct parser {
    std::string_view buf;
    size_t pos;
    const resp3_limits & lim;
    std::string why;

    resp3_parse_status fail(std::string w) {
        why = std::move(w);
        return resp3_parse_malformed;
    }

    resp3_parse_status line(std::string_view & out) {
        const size_t e = buf.find("\r\n", pos);
        if (e == std::string_view::npos) {
            return buf.size() - pos > lim.max_line ? fail("line longer than " + std::to_string(lim.max_line) + " bytes")
                                                   : resp3_parse_incomplete;
        }
        if (e - pos > lim.max_line) return fail("line longer than " + std::to_string(lim.max_line) + " bytes");
        out = buf.substr(pos, e - pos);
        pos = e + 2;
        return resp3_parse_ok;
    }

    static bool to_ll(std::string_view s, long long & v) {
        if (s.empty()) return false;
        const char * b = s.data();
        if (*b == '+') return false;
        const auto [p, ec] = std::from_chars(b, b + s.size(), v);
        return ec == std::errc() && p == b + s.size();
    }

    resp3_parse_status length(std::string_view l, long long max, long long & n, bool & null) {
        null = false;
        if (!to_ll(l, n)) return fail("bad length '" + std::string(l) + "'");
        if (n == -1) {
            null = true;
            return resp3_parse_ok;
        }
        if (n < 0 || n > max) return fail("length " + std::string(l) + " out of bounds (limit " + std::to_string(max) + ")");
        return resp3_parse_ok;
    }

    resp3_parse_status elements(std::vector<resp3_value> & out, long long n, int depth) {
        out.clear();
        for (long long i = 0; i < n; ++i) {
            resp3_value e;
            if (const auto st = value(e, depth + 1); st != resp3_parse_ok) return st;
            out.push_back(std::move(e));
        }
        return resp3_parse_ok;
    }

    resp3_parse_status value(resp3_value & v, int depth) {
        if (depth > lim.max_depth) return fail("nesting deeper than " + std::to_string(lim.max_depth));
        if (pos >= buf.size()) return resp3_parse_incomplete;
        const char t = buf[pos++];
        std::string_view l;
        if (const auto st = line(l); st != resp3_parse_ok) return st;
        long long n = 0;
        bool null = false;
        switch (t) {
            case '+':
            case '-':
                v.type = t == '+' ? resp3_type_simple_string : resp3_type_error;
                v.str = std::string(l);
                return resp3_parse_ok;
            case ':':
                v.type = resp3_type_integer;
                return to_ll(l, v.integer) ? resp3_parse_ok : fail("bad integer '" + std::string(l) + "'");
            case ',': {
                v.type = resp3_type_double;
                v.str = std::string(l);
                if (l == "inf" || l == "+inf") {
                    v.dbl = HUGE_VAL;
                } else if (l == "-inf") {
                    v.dbl = -HUGE_VAL;
                } else if (l == "nan" || l == "-nan") {
                    v.dbl = std::nan("");
                } else {
                    char * end = nullptr;
                    v.dbl = std::strtod(v.str.c_str(), &end);
                    if (v.str.empty() || end != v.str.c_str() + v.str.size()) return fail("bad double '" + v.str + "'");
                }
                return resp3_parse_ok;
            }
            case '(': {
                v.type = resp3_type_big_number;
                v.str = std::string(l);
                const size_t start = !l.empty() && l[0] == '-' ? 1 : 0;
                if (l.size() <= start || l.find_first_not_of("0123456789", start) != std::string_view::npos) {
                    return fail("bad big number '" + v.str + "'");
                }
                return resp3_parse_ok;
            }
            case '#':
                v.type = resp3_type_boolean;
                if (l != "t" && l != "f") return fail("bad boolean '" + std::string(l) + "'");
                v.boolean = l == "t";
                return resp3_parse_ok;
            case '_':
                v.type = resp3_type_null;
                return l.empty() ? resp3_parse_ok : fail("null with a payload");
            case '$':
            case '!':
            case '=': {
                if (const auto st = length(l, lim.max_bulk, n, null); st != resp3_parse_ok) return st;
                if (null) {
                    if (t != '$') return fail("negative length for a blob error or verbatim string");
                    v.type = resp3_type_null;
                    return resp3_parse_ok;
                }
                if (buf.size() - pos < size_t(n) + 2) return resp3_parse_incomplete;
                if (buf.substr(pos + size_t(n), 2) != "\r\n") return fail("bulk of " + std::to_string(n) + " bytes not followed by CRLF");
                std::string data(buf.substr(pos, size_t(n)));
                pos += size_t(n) + 2;
                v.type = t == '$' ? resp3_type_bulk_string : t == '!' ? resp3_type_blob_error : resp3_type_verbatim;
                if (t == '=') {
                    if (data.size() < 4 || data[3] != ':') return fail("verbatim string without its 3-byte format");
                    v.format = data.substr(0, 3);
                    data.erase(0, 4);
                }
                v.str = std::move(data);
                return resp3_parse_ok;
            }
            case '*':
            case '~':
            case '>':
            case '%':
            case '|': {
                if (const auto st = length(l, lim.max_elements, n, null); st != resp3_parse_ok) return st;
                if (null) {
                    if (t != '*') return fail("negative count for a non-array aggregate");
                    v.type = resp3_type_null;
                    return resp3_parse_ok;
                }
                const long long count = (t == '%' || t == '|') ? 2 * n : n;
                if (t == '|') {
                    // An attribute belongs to the value that follows it.
                    std::vector<resp3_value> attrs;
                    if (const auto st = elements(attrs, count, depth); st != resp3_parse_ok) return st;
                    if (const auto st = value(v, depth); st != resp3_parse_ok) return st;
                    v.attributes = std::move(attrs);
                    return resp3_parse_ok;
                }
                v.type = t == '*' ? resp3_type_array : t == '~' ? resp3_type_set : t == '>' ? resp3_type_push : resp3_type_map;
                return elements(v.elements, count, depth);
            }
            default: {
                char b[8];
                snprintf(b, sizeof b, "0x%02x", (unsigned char) t);
                return fail(std::string("unknown type byte ") + b);
            }
        }
    }
};

}  // namespace

resp3_parse_status resp3_parse(std::string_view buf, size_t & pos, resp3_value & out, std::string * why,
                               const resp3_limits & limits) {
    parser p{buf, pos, limits, {}};
    resp3_value v;
    const auto st = p.value(v, 0);
    if (st == resp3_parse_ok) {
        pos = p.pos;
        out = std::move(v);
    } else if (st == resp3_parse_malformed && why) {
        *why = p.why;
    }
    return st;
}

resp3_client::resp3_client(int port, std::chrono::milliseconds timeout) : timeout_(timeout) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        error_ = std::string("socket: ") + strerror(errno);
        return;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    if (::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        error_ = "connect to port " + std::to_string(port) + ": " + strerror(errno);
        close(fd_);
        fd_ = -1;
        return;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

resp3_client::~resp3_client() {
    if (fd_ >= 0) close(fd_);
}

bool resp3_client::send(const std::vector<std::string> & args) {
    if (fd_ < 0) return false;
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto & a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    size_t done = 0;
    while (done < out.size()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLOUT, 0};
        if (left.count() <= 0 || poll(&p, 1, int(left.count())) <= 0) {
            error_ = "timed out sending";
            return false;
        }
        const ssize_t n = ::send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            error_ = std::string("send: ") + strerror(errno);
            return false;
        }
        done += size_t(n);
    }
    return true;
}

std::optional<resp3_value> resp3_client::receive() {
    if (fd_ < 0) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
        resp3_value v;
        std::string why;
        size_t pos = pos_;
        const auto st = resp3_parse(buf_, pos, v, &why);
        if (st == resp3_parse_ok) {
            pos_ = pos;
            if (pos_ == buf_.size()) {
                buf_.clear();
                pos_ = 0;
            }
            return v;
        }
        if (st == resp3_parse_malformed) {
            error_ = "malformed reply: " + why;
            return std::nullopt;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || poll(&p, 1, int(left.count())) <= 0) {
            error_ = "timed out after " + std::to_string(timeout_.count()) + " ms waiting for a reply";
            return std::nullopt;
        }
        char chunk[65536];
        const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            error_ = n == 0 ? "connection closed by the server" : std::string("recv: ") + strerror(errno);
            return std::nullopt;
        }
        buf_.append(chunk, size_t(n));
    }
}

std::optional<resp3_value> resp3_client::call(const std::vector<std::string> & args) {
    if (!send(args)) return std::nullopt;
    return receive();
}

bool resp3_client::hello3() {
    const auto r = call({"HELLO", "3"});
    if (!r || !r->is(resp3_type_map)) return false;
    const resp3_value * proto = r->get("proto");
    return proto && proto->is(resp3_type_integer) && proto->integer == 3;
}

}  // namespace testing_support
