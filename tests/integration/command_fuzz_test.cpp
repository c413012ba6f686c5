// Randomized RESP argument vectors for every INFER.* command against a live server (issue #7).
// The command layer's parsing (arg_reader over RedisModuleString) cannot run without Redis, so
// instead of libFuzzer this sends a few thousand generated argument vectors over RESP: mostly a
// valid skeleton of the command with random options and hostile values (huge, negative, NaN,
// inf, 1e309, empty, binary, long), some mutated (arguments dropped, duplicated, swapped in),
// some pure noise. The generator is seeded, so a failure reproduces: the seed and the command
// number are printed with the argument vector.
//
// Asserts: every command gets a reply within the hiredis timeout (no hang, no lost client),
// the server stays up and answers PING, and (the fixture's TearDown) it is the same process,
// nothing is left blocked and the canary dataset is untouched. Keys are all under fz:*;
// generation always ends with MAX_TOKENS 2 TIMEOUT 2000 so it stays fast; the loaded "tiny" and
// "bert" are never unloaded or replaced (LOAD/UNLOAD use other names).
//
// REDIS_INFER_FUZZ_SEED and REDIS_INFER_FUZZ_COMMANDS change the seed and the count (10000,
// about 10 s on 2 cores); REDIS_INFER_FUZZ_VERBOSE=1 prints every command and its reply type.
#include "support/fixture.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

using namespace testing_support;

namespace {

using argv_t = std::vector<std::string>;

class gen {
public:
    explicit gen(uint64_t seed) : rng_(seed) {}

    size_t below(size_t n) { return n ? size_t(rng_() % n) : 0; }
    bool chance(int percent) { return int(below(100)) < percent; }
    template <class T>
    const T & pick(const std::vector<T> & v) { return v[below(v.size())]; }

    std::string binary(size_t max_len) {
        std::string s(below(max_len + 1), '\0');
        for (auto & ch : s) ch = char(below(256));
        return s;
    }

    // Mostly a sane value (the vector then gets past that option), else a hostile one.
    std::string number() {
        static const std::vector<std::string> sane = {"0", "1", "2", "4", "16", "64", "0.5", "0.9", "1.1", "42"};
        if (chance(70)) return pick(sane);
        static const std::vector<std::string> k = {
            "0", "1", "2", "3", "8", "64", "-1", "-0", "07", "+1", " 1", "1 ", "1.0", "0.5", "1.5", "0x10",
            "0x7FFFFFFF", "2147483647", "2147483648", "-2147483648", "4294967295", "4294967296",
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616",
            "99999999999999999999999", "1e309", "-1e309", "1e-400", "3.4e38", "1e38", "nan", "NaN", "-nan",
            "inf", "-inf", "Infinity", "", "abc", "1e", "--1", "0.0000001"};
        if (chance(10)) return std::to_string(int64_t(rng_()));
        return pick(k);
    }

    std::string text() {
        switch (below(9)) {
            case 0: return "";
            case 1: return binary(64);
            case 2: return std::string(below(70000), 'a' + char(below(26)));  // long (up to ~64 KiB)
            case 3: return "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
            case 4: return "\xff\xfe\xfd\x00\x01 invalid utf-8 \xc3";
            case 5: return pick(option_names());
            case 6: return number();
            default: return "hello world " + std::to_string(below(1000));
        }
    }

    std::string key() {
        static const std::vector<std::string> k = {"fz:tok", "fz:tok2", "fz:bad", "fz:list", "fz:missing", "fz:out",
                                                   "fz:sess", "fz:stream", "fz:vset", "fz:chunk", "fz:str"};
        if (chance(5)) return "fz:" + binary(16);
        if (chance(3)) return "";
        return pick(k);
    }

    std::string model() {
        static const std::vector<std::string> k = {"fz-m", "nope", "", "TINY"};
        if (chance(85)) return chance(70) ? "tiny" : "bert";
        if (chance(20)) return binary(8);
        return pick(k);
    }

    std::string load_name() {  // never tiny or bert: those must survive the test
        static const std::vector<std::string> k = {"fz-m", "fz-m", "fz-e", "", "a b", "x/y", std::string(65, 'n'), "fz.m-1_"};
        return pick(k);
    }

    std::string path() {
        static const std::vector<std::string> k = {"tiny-q8_0.gguf", "bert-tiny-f16.gguf", "garbage.gguf", "fifo.gguf",
                                                   "link-out.gguf", "adir.gguf", "../tiny-q8_0.gguf", "/etc/passwd",
                                                   "", "nope.gguf", "./tiny-q8_0.gguf", "/dev/zero"};
        if (chance(5)) return binary(32);
        return pick(k);
    }

    static const std::vector<std::string> & option_names() {
        static const std::vector<std::string> k = {
            "MAX_TOKENS", "TEMPERATURE", "TOP_K", "TOP_P", "MIN_P", "REPEAT_PENALTY", "SEED", "STOP", "TIMEOUT",
            "STORE", "STREAM", "PROMPT", "TEXT", "WITHMETA", "NO_CACHE", "IGNORE_EOS", "K", "QUERY", "FILTER",
            "EMBED_MODEL", "NORMALIZE", "VADD", "SYSTEM", "SYSTEM_KEY", "USER", "TRUNCATE", "CTX", "SLOTS", "BATCH",
            "GPU_LAYERS", "THREADS", "EMBEDDING", "REPLACE", "NO_SPECIAL", "WITHOFFSETS", "WITHPROMPT", "max_tokens"};
        return k;
    }

    // One option with a value of the right shape most of the time.
    void option(argv_t & a, const std::vector<std::string> & names) {
        const std::string & o = pick(names);
        a.push_back(chance(3) ? lower(o) : o);
        static const std::vector<std::string> flags = {"WITHMETA", "NO_CACHE", "IGNORE_EOS", "NORMALIZE", "TRUNCATE",
                                                       "EMBEDDING", "REPLACE", "NO_SPECIAL", "WITHOFFSETS", "WITHPROMPT"};
        if (std::find(flags.begin(), flags.end(), o) != flags.end()) return;
        if (o == "STORE" || o == "STREAM" || o == "PROMPT" || o == "SYSTEM_KEY") {
            a.push_back(key());
            if (o == "PROMPT" && chance(30)) a.push_back(key());
        } else if (o == "TEXT" || o == "STOP" || o == "QUERY" || o == "SYSTEM" || o == "USER" || o == "FILTER") {
            a.push_back(o == "FILTER" && chance(50) ? ".year > 2000" : text());
        } else if (o == "EMBED_MODEL") {
            a.push_back(model());
        } else if (o == "THREADS" && chance(95)) {
            // Many decode threads on a small machine make every step seconds long (that is the
            // operator's choice, measured separately): keep most loads quick.
            a.push_back(pick(std::vector<std::string>{"1", "2", "0", "-1", "", "x", "1e309", "4294967297"}));
        } else if (o == "VADD") {
            a.push_back(key());
            a.push_back(text());
        } else if (chance(85)) {
            a.push_back(number());
        }
    }

    static std::string lower(std::string s) {
        for (auto & ch : s) ch = char(tolower((unsigned char) ch));
        return s;
    }

    argv_t command() {
        static const std::vector<std::string> gen_opts = {"MAX_TOKENS", "TEMPERATURE", "TOP_K", "TOP_P", "MIN_P",
                                                          "REPEAT_PENALTY", "SEED", "STOP", "TIMEOUT", "STORE", "STREAM",
                                                          "WITHMETA", "NO_CACHE", "IGNORE_EOS"};
        argv_t a;
        const size_t kind = below(100);
        bool generation = false;
        if (kind < 3) {
            a = {"INFER.INFO"};
            if (chance(70)) a.push_back(model());
        } else if (kind < 5) {
            a = {"INFER.MODELS"};
        } else if (kind < 8) {
            a = {"INFER.LOAD", load_name(), path()};
            for (size_t i = below(4); i > 0; --i) option(a, {"CTX", "SLOTS", "BATCH", "GPU_LAYERS", "THREADS", "EMBEDDING", "REPLACE"});
        } else if (kind < 11) {
            a = {"INFER.UNLOAD", load_name()};
        } else if (kind < 23) {
            a = {"INFER.TOKENIZE", model(), text()};
            for (size_t i = below(3); i > 0; --i) option(a, {"STORE", "NO_SPECIAL", "WITHOFFSETS"});
        } else if (kind < 31) {
            a = {"INFER.DETOKENIZE", model(), key()};
        } else if (kind < 53) {
            a = {"INFER.GENERATE", model()};
            if (chance(50)) { a.push_back("PROMPT"); a.push_back(key()); }
            else { a.push_back("TEXT"); a.push_back(text()); }
            for (size_t i = below(5); i > 0; --i) option(a, gen_opts);
            generation = true;
        } else if (kind < 65) {
            a = {"INFER.CHAT", model(), chance(80) ? "fz:sess" : key()};
            if (chance(30)) { a.push_back("SYSTEM"); a.push_back(text()); }
            a.push_back("USER");
            a.push_back(text());
            if (chance(20)) a.push_back("TRUNCATE");
            for (size_t i = below(4); i > 0; --i) option(a, gen_opts);
            generation = true;
        } else if (kind < 77) {
            a = {"INFER.EMBED", chance(70) ? "bert" : model()};
            if (chance(70)) { a.push_back("TEXT"); a.push_back(text()); }
            else { a.push_back("PROMPT"); a.push_back(key()); }
            for (size_t i = below(3); i > 0; --i) option(a, {"NORMALIZE", "STORE", "VADD"});
        } else if (kind < 85) {
            a = {"INFER.INGEST", chance(70) ? "tiny" : model(), chance(70) ? "bert" : model(),
                 chance(70) ? "fz:vset" : key(), chance(70) ? "fz:chunk" + std::to_string(below(8)) : key(), text()};
        } else {
            a = {"INFER.RAG", chance(80) ? "tiny" : model(), chance(80) ? "fz:vset" : key(), "QUERY", text()};
            for (size_t i = below(4); i > 0; --i) {
                option(a, {"EMBED_MODEL", "K", "FILTER", "SYSTEM", "SYSTEM_KEY", "WITHPROMPT", "MAX_TOKENS", "TEMPERATURE",
                           "STOP", "STORE", "STREAM", "WITHMETA", "NO_CACHE"});
            }
            generation = true;
        }
        mutate(a);
        if (generation) {
            for (const char * s : {"MAX_TOKENS", "2", "TIMEOUT", "2000"}) a.push_back(s);
        }
        return a;
    }

    // A quarter of the vectors are mutated: they lose, duplicate or gain an argument, get one
    // replaced, or become noise after the command name.
    void mutate(argv_t & a) {
        const size_t m = below(100);
        if (m < 75 || a.size() < 2) return;
        ++mutations[m < 81 ? 0 : m < 86 ? 1 : m < 90 ? 2 : m < 95 ? 3 : 4];
        if (m < 81) {
            a.erase(a.begin() + long(1 + below(a.size() - 1)));
        } else if (m < 86) {
            a.insert(a.begin() + long(1 + below(a.size())), a[1 + below(a.size() - 1)]);
        } else if (m < 90) {
            a.insert(a.begin() + long(1 + below(a.size())), pick(option_names()));
        } else if (m < 95) {
            a[1 + below(a.size() - 1)] = chance(50) ? number() : binary(8);
        } else {
            a.resize(1);
            for (size_t i = below(8); i > 0; --i) a.push_back(chance(50) ? pick(option_names()) : text());
        }
    }

    // How often each mutation ran: dropped, duplicated, option inserted, replaced, noise.
    size_t mutations[5] = {};

private:
    std::mt19937_64 rng_;
};

std::string show(const argv_t & a) {
    std::ostringstream o;
    for (const auto & s : a) {
        o << " \"";
        for (size_t i = 0; i < s.size() && i < 80; ++i) {
            const unsigned char ch = (unsigned char) s[i];
            if (ch >= 32 && ch < 127 && ch != '"' && ch != '\\') o << s[i];
            else o << "\\x" << "0123456789abcdef"[ch >> 4] << "0123456789abcdef"[ch & 15];
        }
        if (s.size() > 80) o << "...(" << s.size() << " bytes)";
        o << '"';
    }
    return o.str();
}

uint64_t env_or(const char * name, uint64_t dflt) {
    const char * v = getenv(name);
    return v && *v ? strtoull(v, nullptr, 10) : dflt;
}

}  // namespace

class command_fuzz : public live {
protected:
    static void SetUpTestSuite() {
        start_tiny_and_bert("512");
    }
};

TEST_F(command_fuzz, random_argument_vectors_always_get_a_reply) {
    const uint64_t seed = env_or("REDIS_INFER_FUZZ_SEED", 7);
    const uint64_t n = env_or("REDIS_INFER_FUZZ_COMMANDS", 10000);
    gen g(seed);
    // Keys the vectors refer to: a valid token key, a short blob, a wrong type, a text string.
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "fuzzing the command layer", "STORE", "fz:tok"});
    cmd(c.get(), {"SET", "fz:tok2", pack({1, 2, 3, 151643})});
    cmd(c.get(), {"SET", "fz:bad", "abc"});
    cmd(c.get(), {"RPUSH", "fz:list", "x"});
    cmd(c.get(), {"SET", "fz:str", "plain text"});
    redisSetTimeout(c.get(), timeval{20, 0});  // a generation is bounded by TIMEOUT 2000: 20 s is a hang

    std::map<std::string, size_t> by_type;
    std::map<std::string, size_t> errors;  // first words of error replies
    double slowest_ms = 0;
    std::string slowest;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; ++i) {
        const argv_t a = g.command();
        const auto c0 = std::chrono::steady_clock::now();
        auto r = cmd(c.get(), a);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
        if (ms > slowest_ms) {
            slowest_ms = ms;
            slowest = show(a);
        }
        ASSERT_TRUE(r) << "no reply (hang or dropped connection: " << (c->err ? c->errstr : "") << ") to command " << i
                       << " of seed " << seed << ":" << show(a) << "\n" << server->log();
        ASSERT_TRUE(server->alive()) << "server died on command " << i << " of seed " << seed << ":" << show(a);
        static const std::map<int, std::string> names = {
            {REDIS_REPLY_STRING, "string"}, {REDIS_REPLY_ARRAY, "array"}, {REDIS_REPLY_INTEGER, "integer"},
            {REDIS_REPLY_NIL, "nil"}, {REDIS_REPLY_STATUS, "status"}, {REDIS_REPLY_ERROR, "error"}};
        const auto it = names.find(r->type);
        if (getenv("REDIS_INFER_FUZZ_VERBOSE")) {
            std::cout << i << ": " << (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len).substr(0, 120) : "type " + std::to_string(r->type))
                      << " (" << ms << " ms) <-" << show(a).substr(0, 300) << "\n";
        }
        ++by_type[(it == names.end() ? "other" : it->second)];
        if (r->type == REDIS_REPLY_ERROR) {
            const std::string e(r->str, r->len);
            ++errors[e.substr(0, e.find(' ', e.find(' ') + 1))];
        }
        if (i % 250 == 249) {  // the main thread stays responsive throughout
            auto probe = server->connect();
            ASSERT_TRUE(probe);
            EXPECT_EQ(cmd(probe.get(), {"PING"})->type, REDIS_REPLY_STATUS);
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const char * m : {"fz-m", "fz-e", "fz.m-1_"}) cmd(c.get(), {"INFER.UNLOAD", m});

    std::ostringstream summary;
    summary << n << " commands (seed " << seed << ") in " << secs << " s; slowest " << slowest_ms << " ms:" << slowest.substr(0, 200)
            << "; replies:";
    for (const auto & [t, k] : by_type) summary << " " << t << "=" << k;
    summary << "; errors:";
    for (const auto & [e, k] : errors) summary << " [" << e << "]=" << k;
    std::cout << summary.str() << "\n";
    RecordProperty("summary", summary.str());
    for (const auto & [t, k] : by_type) RecordProperty("replies_" + t, int(k));
    // The vectors must reach past parsing: some generations and embeddings succeed.
    EXPECT_GT(by_type["string"] + by_type["array"] + by_type["integer"], n / 10);
    EXPECT_GT(by_type["error"], n / 10);
    // Every mutation ran, each on at least 2% of the vectors (a quarter are mutated).
    for (size_t k = 0; k < 5; ++k) EXPECT_GT(g.mutations[k], n / 50) << "mutation " << k << " ran " << g.mutations[k] << " times";
}

// The hang the fuzz test found (c2e623e): text llama.cpp's BPE tokenizer rejects - a 4-byte UTF-8
// sequence above U+10FFFF throws "invalid codepoint" - left the client blocked forever, and a
// failed scheduler step dropped the other requests of its intake. Every request must be answered:
// the bad ones with the error, the valid ones that arrive with them (the same intake) with the
// results they get alone, for every command that tokenizes text.
TEST_F(command_fuzz, text_the_tokenizer_rejects_is_an_error_and_the_requests_with_it_complete) {
    const std::string bad = "ok \xf4\x90\x80\x80 ok";
    const std::string err = "ERR the text cannot be tokenized - invalid codepoint (invalid UTF-8?)";
    struct request { argv_t args; bool fails; std::string alone; };
    std::vector<request> rs;
    for (int i = 0; i < 3; ++i) {
        const std::string good = "a valid prompt number " + std::to_string(i);
        rs.push_back({{"INFER.GENERATE", "tiny", "TEXT", bad, "MAX_TOKENS", "4"}, true, ""});
        rs.push_back({{"INFER.GENERATE", "tiny", "TEXT", good, "MAX_TOKENS", "8", "TEMPERATURE", "0", "IGNORE_EOS"}, false, ""});
        rs.push_back({{"INFER.TOKENIZE", "tiny", bad}, true, ""});
        rs.push_back({{"INFER.CHAT", "tiny", "fz:badsess", "USER", bad, "MAX_TOKENS", "4"}, true, ""});
        rs.push_back({{"INFER.TOKENIZE", "tiny", good}, false, ""});
        rs.push_back({{"INFER.CHAT", "tiny", "fz:badsess", "SYSTEM", bad, "USER", good, "MAX_TOKENS", "4"}, true, ""});
        rs.push_back({{"INFER.EMBED", "bert", "TEXT", bad}, true, ""});
        rs.push_back({{"INFER.EMBED", "bert", "TEXT", good}, false, ""});
        rs.push_back({{"INFER.INGEST", "tiny", "bert", "fz:badset", "fz:badchunk", bad}, true, ""});
        rs.push_back({{"INFER.GENERATE", "tiny", "TEXT", good + "!", "MAX_TOKENS", "8", "TEMPERATURE", "0", "IGNORE_EOS"}, false, ""});
    }
    // A reply as comparable text: a string, or the elements of an array of integers or strings.
    const auto show_reply = [](const redisReply * r) {
        std::string out = std::to_string(r->type) + ":";
        if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < r->elements; ++i) {
                const redisReply * e = r->element[i];
                out += e->type == REDIS_REPLY_INTEGER ? std::to_string(e->integer) : std::string(e->str, e->len);
                out += ",";
            }
        } else if (r->str) {
            out += std::string(r->str, r->len);
        }
        return out;
    };
    // Embeddings batched with others differ from the lone one in the last bits only.
    const auto same_vector = [](const std::string & a, const std::string & b) {
        std::vector<double> x, y;
        for (auto [s, v] : {std::pair{&a, &x}, std::pair{&b, &y}}) {
            std::istringstream in(s->substr(s->find(':') + 1));
            for (std::string f; std::getline(in, f, ',');) v->push_back(std::atof(f.c_str()));
        }
        if (x.size() != y.size() || x.empty()) return false;
        for (size_t i = 0; i < x.size(); ++i) {
            if (std::fabs(x[i] - y[i]) > 1e-4) return false;
        }
        return true;
    };
    redisSetTimeout(c.get(), timeval{20, 0});  // no reply in 20 s is the hang
    for (auto & r : rs) {
        auto alone = cmd(c.get(), r.args);
        ASSERT_TRUE(alone) << show(r.args);
        if (r.fails) EXPECT_TRUE(is_error_exactly(alone, err)) << show(r.args);
        else r.alone = show_reply(alone.get());
        EXPECT_NE(alone->type, r.fails ? REDIS_REPLY_STRING : REDIS_REPLY_ERROR) << show(r.args);
    }
    // All at once, each on its own connection, sent before any reply is read.
    std::vector<client_ptr> cs;
    for (const auto & r : rs) {
        cs.push_back(server->connect());
        ASSERT_TRUE(cs.back());
        redisSetTimeout(cs.back().get(), timeval{20, 0});  // no reply in 20 s is the hang
        std::vector<const char *> argv;
        std::vector<size_t> lens;
        for (const auto & a : r.args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        redisAppendCommandArgv(cs.back().get(), int(argv.size()), argv.data(), lens.data());
        int done = 0;
        while (!done) ASSERT_EQ(redisBufferWrite(cs.back().get(), &done), REDIS_OK);
    }
    for (size_t i = 0; i < rs.size(); ++i) {
        void * raw = nullptr;
        ASSERT_EQ(redisGetReply(cs[i].get(), &raw), REDIS_OK) << "no reply (the client stayed blocked) to" << show(rs[i].args);
        reply_ptr r(static_cast<redisReply *>(raw));
        if (rs[i].fails) EXPECT_TRUE(is_error_exactly(r, err)) << show(rs[i].args);
        else if (rs[i].args[0] != "INFER.EMBED") EXPECT_EQ(show_reply(r.get()), rs[i].alone) << show(rs[i].args);
        else EXPECT_TRUE(same_vector(show_reply(r.get()), rs[i].alone)) << show(rs[i].args);
    }
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "fz:badsess", "fz:badset", "fz:badchunk"})->integer, 0);
}
