// INFER.GENERATE over RESP: output, options, validation, and every early end.
#include "support/fixture.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

using namespace testing_support;

class generate : public live {
protected:
    std::vector<uint32_t> ids_of(const std::string & text) {
        auto r = cmd(c.get(), {"INFER.TOKENIZE", "tiny", text});
        std::vector<uint32_t> v;
        for (size_t i = 0; i < r->elements; ++i) v.push_back(uint32_t(r->element[i]->integer));
        return v;
    }
    std::string text_of(const reply_ptr & r) { return r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : "<not a string>"; }
};

// Token for token, our greedy output equals llama.cpp's own llama-simple on the same model.
TEST_F(generate, greedy_equals_llama_simple) {
    const std::string prompt = "The quick brown fox";
    const std::string tool = llama_bin_dir() + "/llama-simple -m " + model_dir() + "/tiny-q8_0.gguf -n 24 \"" + prompt + "\" 2>/dev/null";
    FILE * p = popen(tool.c_str(), "r");
    ASSERT_TRUE(p);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    ASSERT_EQ(pclose(p), 0);
    ASSERT_EQ(out.rfind(prompt, 0), 0u) << out;
    const std::string expected = out.substr(prompt.size(), out.size() - prompt.size() - 1);  // trailing newline
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "24", "TEMPERATURE", "0"});
    EXPECT_EQ(text_of(r), expected);
}

TEST_F(generate, prompt_keys_equal_text_and_concatenate) {
    cmd(c.get(), {"SET", "{p}sys", pack(ids_of("You are terse."))});
    cmd(c.get(), {"SET", "{p}q", pack(ids_of(" What is Redis?"))});
    cmd(c.get(), {"SET", "{p}all", pack(ids_of("You are terse. What is Redis?"))});
    auto a = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "{p}sys", "{p}q", "MAX_TOKENS", "12", "TEMPERATURE", "0"});
    auto b = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "{p}all", "MAX_TOKENS", "12", "TEMPERATURE", "0"});
    ASSERT_EQ(a->type, REDIS_REPLY_STRING);
    // Concatenating tokens equals tokenizing the concatenated text when the boundary is a space
    // (this tokenizer has no BOS): the two keys hold exactly the one key's tokens.
    auto joined = ids_of("You are terse.");
    const auto q = ids_of(" What is Redis?");
    joined.insert(joined.end(), q.begin(), q.end());
    ASSERT_EQ(joined, ids_of("You are terse. What is Redis?"));
    EXPECT_EQ(text_of(a), text_of(b));
    auto t = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "You are terse. What is Redis?", "MAX_TOKENS", "12", "TEMPERATURE", "0"});
    EXPECT_EQ(text_of(b), text_of(t));
    auto keys = cmd(c.get(), {"COMMAND", "GETKEYS", "INFER.GENERATE", "tiny", "PROMPT", "{p}sys", "{p}q", "MAX_TOKENS", "3", "WITHMETA"});
    ASSERT_EQ(keys->elements, 2u);
    EXPECT_STREQ(keys->element[0]->str, "{p}sys");
    EXPECT_STREQ(keys->element[1]->str, "{p}q");
}

// WITHMETA's counts agree with TOKENIZE and with the tokens STORE wrote, whatever ended the
// generation, and its timings are real durations that fit in the time the client waited.
TEST_F(generate, withmeta_reports_counts_and_timings) {
    struct run { std::vector<std::string> extra; std::string finish; };
    const std::string prompt = "hello world";
    const auto full = text_of(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "7", "TEMPERATURE", "0", "IGNORE_EOS"}));
    ASSERT_GE(full.size(), 4u);
    for (const run & w : std::vector<run>{{{"MAX_TOKENS", "7", "IGNORE_EOS"}, "length"},
                                          {{"MAX_TOKENS", "7", "IGNORE_EOS", "STOP", full.substr(full.size() / 2, 2)}, "stop"},
                                          {{"MAX_TOKENS", "400", "IGNORE_EOS", "TIMEOUT", "30"}, "timeout"},
                                          {{"MAX_TOKENS", "40"}, "length or eos"}}) {
        std::vector<std::string> args = {"INFER.GENERATE", "tiny", "TEXT", prompt, "TEMPERATURE", "0", "STORE", "gm:out", "WITHMETA"};
        args.insert(args.end(), w.extra.begin(), w.extra.end());
        const auto t0 = std::chrono::steady_clock::now();
        auto r = cmd(c.get(), args);
        const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << text_of(r);
        const std::string why = map_get(r.get(), "finish_reason")->str;
        if (w.finish == "length or eos") EXPECT_TRUE(why == "length" || why == "eos") << why;
        else EXPECT_EQ(why, w.finish);
        EXPECT_EQ(map_get(r.get(), "prompt_tokens")->integer, long(ids_of(prompt).size())) << why;
        const long n = map_get(r.get(), "completion_tokens")->integer;
        EXPECT_EQ(n, cmd(c.get(), {"STRLEN", "gm:out"})->integer / 4) << why;
        if (why == "length") EXPECT_EQ(n, w.extra[1] == "7" ? 7 : 40);
        else if (why == "stop") EXPECT_GE(n, 1);
        else if (why == "eos") EXPECT_LT(n, 40);
        else EXPECT_LT(n, 400);
        std::map<std::string, double> t;
        for (const char * k : {"queue_ms", "prefill_ms", "decode_ms", "tokens_per_sec"}) {
            const redisReply * v = map_get(r.get(), k);
            ASSERT_TRUE(v) << k;
            t[k] = std::atof(v->str);
            EXPECT_GE(t[k], 0.0) << k << " (" << why << ")";
        }
        if (n > 0) EXPECT_GT(t["prefill_ms"], 0.0) << why;  // the prompt was decoded
        if (n > 1) {
            EXPECT_GT(t["decode_ms"], 0.0) << why;
            EXPECT_NEAR(t["tokens_per_sec"], (n - 1) * 1000.0 / t["decode_ms"], 1e-6 * t["tokens_per_sec"]) << why;
        }
        EXPECT_LE(t["queue_ms"] + t["prefill_ms"] + t["decode_ms"], wall_ms) << why;
    }
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "7", "TEMPERATURE", "0", "WITHMETA"});
    auto plain = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "7", "TEMPERATURE", "0"});
    EXPECT_EQ(text_of(plain), std::string(map_get(r.get(), "text")->str, map_get(r.get(), "text")->len));
}

TEST_F(generate, sampling_options_are_accepted_and_seed_is_deterministic) {
    const std::vector<std::string> base = {"INFER.GENERATE", "tiny", "TEXT", "Once upon a time", "MAX_TOKENS", "16",
                                           "TEMPERATURE", "1.2", "TOP_K", "50", "TOP_P", "0.9", "MIN_P", "0.01",
                                           "REPEAT_PENALTY", "1.1", "SEED", "1234"};
    auto a = cmd(c.get(), base);
    auto b = cmd(c.get(), base);
    ASSERT_EQ(a->type, REDIS_REPLY_STRING) << (a->str ? a->str : "");
    EXPECT_EQ(text_of(a), text_of(b));
    auto other = base;
    other.back() = "99";
    // A different seed at temperature 1.2 over 16 tokens differs with overwhelming probability.
    EXPECT_NE(text_of(cmd(c.get(), other)), text_of(a));
}

TEST_F(generate, stop_string_ends_generation) {
    auto full = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "16", "TEMPERATURE", "0"});
    const std::string f = text_of(full);
    ASSERT_GE(f.size(), 6u);
    const std::string stop = f.substr(f.size() / 2, 3);
    auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "The quick brown fox", "MAX_TOKENS", "16", "TEMPERATURE", "0",
                           "STOP", "never-appears", "STOP", stop, "WITHMETA"});
    EXPECT_STREQ(map_get(r.get(), "finish_reason")->str, "stop");
    EXPECT_EQ(std::string(map_get(r.get(), "text")->str, map_get(r.get(), "text")->len), f.substr(0, f.find(stop)));
}

TEST_F(generate, ignore_eos_generates_exactly_max_tokens) {
    for (const char * prompt : {"a", "hello world", "<|im_end|>"}) {
        auto r = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "40", "TEMPERATURE", "0", "IGNORE_EOS", "WITHMETA"});
        ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
        EXPECT_EQ(map_get(r.get(), "completion_tokens")->integer, 40);
        EXPECT_STREQ(map_get(r.get(), "finish_reason")->str, "length");
    }
}

// TIMEOUT ends generation with what it has: the same tokens and text as the start of the same
// greedy request run without a deadline, and some text once tokens were generated.
TEST_F(generate, timeout_returns_partial_text) {
    const std::vector<std::string> args = {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "500", "TEMPERATURE", "0", "IGNORE_EOS"};
    auto timed_args = args;
    timed_args.insert(timed_args.end(), {"TIMEOUT", "300", "WITHMETA", "STORE", "gt:timed"});
    auto r = cmd(c.get(), timed_args);
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << text_of(r);
    EXPECT_STREQ(map_get(r.get(), "finish_reason")->str, "timeout");
    const long n = map_get(r.get(), "completion_tokens")->integer;
    EXPECT_LT(n, 500);
    const std::string partial(map_get(r.get(), "text")->str, map_get(r.get(), "text")->len);
    if (n > 0) EXPECT_FALSE(partial.empty()) << n << " tokens";
    auto untimed_args = args;
    untimed_args.insert(untimed_args.end(), {"STORE", "gt:whole"});
    const std::string whole = text_of(cmd(c.get(), untimed_args));
    EXPECT_EQ(whole.rfind(partial, 0), 0u) << "partial '" << partial << "' is not a prefix of '" << whole.substr(0, partial.size() + 20) << "'";
    EXPECT_LT(partial.size(), whole.size());
    const std::string timed_ids = text_of(cmd(c.get(), {"GET", "gt:timed"}));
    EXPECT_EQ(timed_ids.size(), size_t(n) * 4);
    EXPECT_EQ(text_of(cmd(c.get(), {"GETRANGE", "gt:whole", "0", std::to_string(n * 4 - 1)})), timed_ids);
}

TEST_F(generate, argument_errors) {
    cmd(c.get(), {"SET", "ok", pack({1, 2, 3})});
    struct bad { std::vector<std::string> args; std::string error; };
    const std::vector<bad> cases = {
        {{"TEXT", "x", "MAX_TOKENS", "0"}, "ERR MAX_TOKENS out of range - got 0, expected 1..1048576"},
        {{"TEXT", "x", "MAX_TOKENS", "-1"}, "ERR MAX_TOKENS out of range - got -1, expected 1..1048576"},
        {{"TEXT", "x", "MAX_TOKENS", "2147483648"}, "ERR MAX_TOKENS out of range - got 2147483648, expected 1..1048576"},
        {{"TEXT", "x", "MAX_TOKENS", "ten"}, "ERR MAX_TOKENS must be an integer - got 'ten', expected 1..1048576"},
        {{"TEXT", "x", "MAX_TOKENS", "600"}, "ERR MAX_TOKENS exceeds the context - got 600, expected at most 511"},
        {{"TEXT", "x", "TEMPERATURE", "nan"}, "ERR TEMPERATURE must be a number - got 'nan', expected 0..100"},
        {{"TEXT", "x", "TEMPERATURE", "inf"}, "ERR TEMPERATURE out of range - got 'inf', expected 0..100"},
        {{"TEXT", "x", "TEMPERATURE", "-1"}, "ERR TEMPERATURE out of range - got '-1', expected 0..100"},
        {{"TEXT", "x", "TOP_P", "1.5"}, "ERR TOP_P out of range - got '1.5', expected 0..1"},
        {{"TEXT", "x", "MIN_P", "-0.1"}, "ERR MIN_P out of range - got '-0.1', expected 0..1"},
        {{"TEXT", "x", "TOP_K", "-3"}, "ERR TOP_K out of range - got -3, expected 0..1048576"},
        {{"TEXT", "x", "REPEAT_PENALTY", "0"}, "ERR REPEAT_PENALTY out of range - got '0', expected 0.01..100"},
        {{"TEXT", "x", "SEED", "4294967296"}, "ERR SEED out of range - got 4294967296, expected 0..4294967294"},
        {{"TEXT", "x", "TIMEOUT", "9223372036854775807"}, "ERR TIMEOUT out of range - got 9223372036854775807, expected 1..86400000"},
        {{"TEXT", "x", "TIMEOUT", "0"}, "ERR TIMEOUT out of range - got 0, expected 1..86400000"},
        {{"TEXT", "x", "STOP", ""}, "ERR STOP string length out of range - got 0, expected 1..256"},
        {{"TEXT", "x", "FROB", "1"}, "ERR unknown option 'FROB' for INFER.GENERATE"},
        {{"TEXT", "x", "MAX_TOKENS"}, "ERR missing value for MAX_TOKENS"},
        {{"TEXT", ""}, "ERR the prompt is empty - got 0 bytes of TEXT, expected at least 1"},
        {{"MAX_TOKENS", "3", "WITHMETA"}, "ERR missing PROMPT or TEXT"},
        {{"TEXT", "x", "PROMPT", "ok"}, "ERR give either PROMPT or TEXT, once"},
        {{"PROMPT", "MAX_TOKENS", "3"}, "ERR PROMPT needs at least one key"},
        {{"PROMPT", "missing"}, "ERR token key 'missing' does not exist"},
    };
    for (const auto & b : cases) {
        std::vector<std::string> args = {"INFER.GENERATE", "tiny"};
        args.insert(args.end(), b.args.begin(), b.args.end());
        EXPECT_TRUE(is_error_exactly(cmd(c.get(), args), b.error));
    }
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "nomodel", "TEXT", "x"}), "ERR no such model 'nomodel'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT"}), "ERR wrong number of arguments for 'infer.generate' command"));
}

TEST_F(generate, token_key_errors) {
    cmd(c.get(), {"SET", "good", pack({1, 2, 3})});
    cmd(c.get(), {"SET", "odd", "12345"});
    cmd(c.get(), {"SET", "empty", ""});
    cmd(c.get(), {"SET", "big", pack(std::vector<uint32_t>(600, 5))});
    cmd(c.get(), {"SET", "fits", pack(std::vector<uint32_t>(500, 5))});
    cmd(c.get(), {"RPUSH", "list", "a"});
    for (uint32_t v : {151936u, 0x7FFFFFFFu, 0xFFFFFFFFu}) {
        cmd(c.get(), {"SET", "badid", pack({1, v})});
        EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "good", "badid"}),
                                     "ERR token id out of range in key 'badid' at index 1 - got " + std::to_string(v) +
                                         ", expected 0..151935"));
    }
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "odd"}),
                                 "ERR token key 'odd' is not packed uint32 - got 5 bytes, expected a multiple of 4"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "empty"}), "ERR the prompt is empty - got 0 tokens, expected at least 1"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "list"}), "WRONGTYPE"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "big"}),
                                 "ERR prompt too long - got 600 tokens, expected at most 512"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "fits", "MAX_TOKENS", "100"}),
                                 "ERR prompt plus MAX_TOKENS exceeds the context - got 500+100 tokens, expected at most 512"));
    // Within a batch but longer than one chunk is fine: 500 tokens, 12 out.
    auto ok = cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "fits", "MAX_TOKENS", "12"});
    EXPECT_EQ(ok->type, REDIS_REPLY_STRING);
}

TEST_F(generate, text_over_the_context_is_an_error) {
    std::string text;
    for (int i = 0; i < 400; ++i) text += " word" + std::to_string(i);
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", text, "MAX_TOKENS", "8"}),
                                 "ERR prompt plus MAX_TOKENS exceeds the context - got 1490+8 tokens, expected at most 512"));
}

TEST_F(generate, refused_inside_multi_and_scripts) {
    cmd(c.get(), {"MULTI"});
    cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "x"});
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "x"});
    auto exec = cmd(c.get(), {"EXEC"});
    ASSERT_EQ(exec->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(exec->elements, 2u);
    EXPECT_TRUE(is_error_exactly(exec->element[0], "ERR INFER.GENERATE cannot run inside MULTI/EXEC, scripts or module calls - it blocks the client"));
    EXPECT_TRUE(is_error_exactly(exec->element[1], "ERR INFER.TOKENIZE cannot run inside MULTI/EXEC, scripts or module calls - it blocks the client"));
    // Scripts: the commands are flagged noscript, so Redis itself refuses them.
    for (const std::string script : {"return redis.call('INFER.GENERATE', 'tiny', 'TEXT', 'x')", "return redis.call('INFER.TOKENIZE', 'tiny', 'x')"}) {
        auto sha = cmd(c.get(), {"SCRIPT", "LOAD", script});
        ASSERT_EQ(sha->type, REDIS_REPLY_STRING);
        EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"EVAL", script, "0"}),
                                     "ERR This Redis command is not allowed from script script: " + text_of(sha) + ", on @user_script:1."));
    }
}

// A client that disconnects mid-generation frees its slot quickly.
TEST_F(generate, disconnect_frees_the_slot) {
    {
        auto g = server->connect();
        redisAppendCommand(g.get(), "INFER.GENERATE tiny TEXT hello MAX_TOKENS 500 TEMPERATURE 0");
        redisBufferWrite(g.get(), nullptr);
        ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == 1; }));
    }  // closes the connection
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == 0; },
                         std::chrono::seconds(5)));
    // Within one decode step or so; 1 s is a bound a loaded 2-core CI machine meets (a slot kept
    // to the end would take seconds). The latency figures that matter are in the benchmark.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
}

// CLIENT KILL of a generating client frees its slot at once, and the slot's KV cells stay as a
// cached prefix (they are not cleared): the same prompt sent again reuses all but its last token
// (INFER.INFO's prefix counters) and gives the same text as a run that reuses nothing.
TEST_F(generate, client_kill_frees_the_slot_and_keeps_its_cells_as_a_prefix) {
    const std::string prompt = "client kill keeps the cells 7731";
    const long n_prompt = long(ids_of(prompt).size());
    auto g = server->connect();
    const long id = cmd(g.get(), {"CLIENT", "ID"})->integer;
    const auto stat = [&](const char * k) { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), k)->integer; };
    const long generated = stat("generated_tokens");
    send(g.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "400", "TEMPERATURE", "0", "IGNORE_EOS"});
    ASSERT_TRUE(wait_for([&] { return stat("slots_busy") == 1 && stat("generated_tokens") >= generated + 2; }));
    EXPECT_EQ(cmd(c.get(), {"CLIENT", "KILL", "ID", std::to_string(id)})->integer, 1);
    ASSERT_TRUE(wait_for([&] { return stat("slots_busy") == 0; }, std::chrono::seconds(5)));
    const long hits = stat("prefix_hits"), hit_tokens = stat("prefix_hit_tokens");
    auto cached = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "12", "TEMPERATURE", "0", "IGNORE_EOS"});
    EXPECT_EQ(stat("prefix_hits"), hits + 1);
    EXPECT_EQ(stat("prefix_hit_tokens"), hit_tokens + n_prompt - 1);
    auto fresh = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "12", "TEMPERATURE", "0", "IGNORE_EOS", "NO_CACHE"});
    ASSERT_EQ(fresh->type, REDIS_REPLY_STRING);
    EXPECT_EQ(text_of(cached), text_of(fresh));
}

TEST_F(generate, client_unblock_cancels) {
    auto g = server->connect();
    auto id = cmd(g.get(), {"CLIENT", "ID"});
    redisAppendCommand(g.get(), "INFER.GENERATE tiny TEXT hello MAX_TOKENS 500 TEMPERATURE 0");
    redisBufferWrite(g.get(), nullptr);
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == 1; }));
    auto u = cmd(c.get(), {"CLIENT", "UNBLOCK", std::to_string(id->integer)});
    EXPECT_EQ(u->integer, 1);
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(g.get(), &raw), REDIS_OK);
    EXPECT_TRUE(is_error_exactly(reply_ptr(static_cast<redisReply *>(raw)), "ERR request cancelled - the client was unblocked"));
    EXPECT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == 0; }));
}

TEST_F(generate, concurrent_clients_get_their_single_outputs) {
    std::vector<std::string> prompts, alone;
    for (int i = 0; i < 8; ++i) {
        prompts.push_back("client " + std::to_string(i) + " asks about " + std::string(size_t(i + 1), 'z'));
        alone.push_back(text_of(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", prompts.back(), "MAX_TOKENS", "20", "TEMPERATURE", "0"})));
    }
    std::vector<client_ptr> cs;
    for (int i = 0; i < 8; ++i) {
        cs.push_back(server->connect());
        const std::vector<std::string> args = {"INFER.GENERATE", "tiny", "TEXT", prompts[i], "MAX_TOKENS", "20", "TEMPERATURE", "0"};
        std::vector<const char *> argv;
        std::vector<size_t> lens;
        for (auto & a : args) { argv.push_back(a.data()); lens.push_back(a.size()); }
        redisAppendCommandArgv(cs.back().get(), int(argv.size()), argv.data(), lens.data());
        redisBufferWrite(cs.back().get(), nullptr);
    }
    for (int i = 0; i < 8; ++i) {
        void * raw = nullptr;
        ASSERT_EQ(redisGetReply(cs[i].get(), &raw), REDIS_OK);
        reply_ptr r(static_cast<redisReply *>(raw));
        EXPECT_EQ(text_of(r), alone[i]) << "client " << i;
    }
    auto info = cmd(c.get(), {"INFER.INFO", "tiny"});
    EXPECT_GT(map_get(info.get(), "generated_tokens")->integer, 100);
}

// PING answers promptly while all slots generate (the main thread never waits on the engine).
TEST_F(generate, ping_stays_fast_during_generation) {
    std::vector<client_ptr> cs;
    for (int i = 0; i < 4; ++i) {
        cs.push_back(server->connect());
        redisAppendCommand(cs.back().get(), "INFER.GENERATE tiny TEXT hello MAX_TOKENS 400 TEMPERATURE 0");
        redisBufferWrite(cs.back().get(), nullptr);
    }
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == 4; }));
    const auto ms = ping_times_ms(c.get(), 200);
    ASSERT_EQ(ms.size(), 200u) << "a PING got no PONG";
    RecordProperty("ping_p50_ms", std::to_string(percentile(ms, 50)));
    RecordProperty("ping_p99_ms", std::to_string(percentile(ms, 99)));
    RecordProperty("ping_max_ms", std::to_string(ms.back()));
    // Bounds a loaded 2-core CI machine meets, and a main thread that waited on decode steps
    // would miss; the latency figures that matter are measured by the benchmark
    // (scripts/bench.sh, docs/benchmarks.md).
    EXPECT_LT(percentile(ms, 50), 10.0);
    EXPECT_LT(percentile(ms, 99), 50.0) << "p50 " << percentile(ms, 50) << " ms, max " << ms.back() << " ms";
    for (auto & g : cs) {
        void * raw = nullptr;
        ASSERT_EQ(redisGetReply(g.get(), &raw), REDIS_OK);
        freeReplyObject(raw);
    }
}

TEST(generate_queue, full_queue_is_an_immediate_error) {
    redis_server s({"MODEL", "q", "tiny-q8_0.gguf", "CTX", "2048", "SLOTS", "1"}, {"--infer.queue-size", "2"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "q"));
    std::vector<client_ptr> cs;
    for (int i = 0; i < 3; ++i) {  // one running, two queued
        cs.push_back(s.connect());
        redisAppendCommand(cs.back().get(), "INFER.GENERATE q TEXT hello MAX_TOKENS 1500 TEMPERATURE 0");
        redisBufferWrite(cs.back().get(), nullptr);
        ASSERT_TRUE(wait_for([&] {
            auto r = cmd(c.get(), {"INFER.INFO", "q"});
            return map_get(r.get(), "slots_busy")->integer + map_get(r.get(), "queue_depth")->integer == i + 1;
        }));
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto r = cmd(c.get(), {"INFER.GENERATE", "q", "TEXT", "x"});
    // Immediate, not after the running generation (seconds); 1 s is a bound a loaded 2-core CI
    // machine meets. The latency figures that matter are in the benchmark.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
    EXPECT_TRUE(is_error_exactly(r, "ERR queue full for model 'q' - 2 requests waiting, limit 2"));
    cmd(c.get(), {"CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"});  // the three generating clients
    EXPECT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "q"}).get(), "slots_busy")->integer == 0; }));
}

// Limits on what a client may send: STOP strings, and text over infer.max-prompt-bytes.
TEST(generate_limits, stop_count_and_prompt_bytes) {
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "256"}, {"--infer.max-prompt-bytes", "64"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    std::vector<std::string> args = {"INFER.GENERATE", "tiny", "TEXT", "x"};
    for (int i = 0; i < 17; ++i) args.insert(args.end(), {"STOP", "s" + std::to_string(i)});
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), args), "ERR too many STOP strings - got more than 16"));
    const std::string big(65, 'a');
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", big}),
                                 "ERR TEXT too long - got 65 bytes, expected at most 64 (infer.max-prompt-bytes)"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "s", "SYSTEM", std::string(40, 'a'), "USER", std::string(25, 'b')}),
                                 "ERR SYSTEM plus USER too long - got 65 bytes, expected at most 64 (infer.max-prompt-bytes)"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.CHAT", "tiny", "s", "USER", "x", "MAX_TOKENS", "256"}),
                                 "ERR MAX_TOKENS exceeds the context - got 256, expected at most 255"));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "s"})->integer, 0);
}
