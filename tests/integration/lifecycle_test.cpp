// Lifecycle edge cases around a running generation: the keyspace changing under it, output
// keys retyped, floods, BGSAVE and AOF reloads. After each, the server must be alive, answer
// PING and have no client left blocked (the fixture checks the last two).
#include "support/fixture.h"

#include <fstream>
#include <thread>
#include <unistd.h>

using namespace testing_support;

class lifecycle : public live {
protected:
    bool busy(long n) {
        return wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "slots_busy")->integer == n; });
    }
};

// The prompt was copied when the command arrived: deleting, changing or flushing it later does
// not change the result.
TEST_F(lifecycle, prompt_key_changed_after_enqueue_uses_the_snapshot) {
    cmd(c.get(), {"INFER.TOKENIZE", "tiny", "The quick brown fox", "STORE", "lc:p"});
    const std::string expected = str(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "lc:p", "MAX_TOKENS", "300",
                                                   "TEMPERATURE", "0", "IGNORE_EOS", "NO_CACHE"}).get());
    for (const char * change : {"DEL", "SET", "FLUSHALL", "SWAPDB"}) {
        cmd(c.get(), {"INFER.TOKENIZE", "tiny", "The quick brown fox", "STORE", "lc:p"});
        auto g = server->connect();
        send(g.get(), {"INFER.GENERATE", "tiny", "PROMPT", "lc:p", "MAX_TOKENS", "300", "TEMPERATURE", "0", "IGNORE_EOS", "NO_CACHE"});
        ASSERT_TRUE(busy(1));
        const std::string ch = change;
        if (ch == "DEL") cmd(c.get(), {"DEL", "lc:p"});
        else if (ch == "SET") cmd(c.get(), {"SET", "lc:p", pack({1, 2, 3})});
        else if (ch == "FLUSHALL") cmd(c.get(), {"FLUSHALL"});
        else cmd(c.get(), {"SWAPDB", "0", "1"});
        auto r = receive(g.get());
        ASSERT_TRUE(r);
        EXPECT_EQ(str(r.get()), expected) << change;
        if (ch == "SWAPDB") cmd(c.get(), {"SWAPDB", "0", "1"});
    }
    canary_write(c.get());  // this test flushed the dataset on purpose
}

// An output key retyped during generation: WRONGTYPE, and the key keeps its new value.
TEST_F(lifecycle, output_key_retyped_mid_generation_is_not_overwritten) {
    auto g = server->connect();
    send(g.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "300", "IGNORE_EOS", "STORE", "lc:out"});
    ASSERT_TRUE(busy(1));
    cmd(c.get(), {"RPUSH", "lc:out", "mine"});
    auto r = receive(g.get());
    EXPECT_TRUE(is_error(r, "WRONGTYPE"));
    EXPECT_EQ(str(cmd(c.get(), {"LINDEX", "lc:out", "0"}).get()), "mine");
}

// A client that disconnects mid-stream: the stream still gets its last entry, nothing hangs.
TEST_F(lifecycle, disconnect_mid_stream_closes_the_stream) {
    {
        auto g = server->connect();
        send(g.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "400", "IGNORE_EOS", "STREAM", "lc:s"});
        ASSERT_TRUE(busy(1));
    }
    ASSERT_TRUE(busy(0));
    ASSERT_TRUE(wait_for([&] {
        auto x = cmd(c.get(), {"XREVRANGE", "lc:s", "+", "-", "COUNT", "1"});
        return x->elements == 1 && str(x->element[0]->element[1]->element[0]) == "finish_reason";
    }));
    auto last = cmd(c.get(), {"XREVRANGE", "lc:s", "+", "-", "COUNT", "1"});
    EXPECT_EQ(str(last->element[0]->element[1]->element[1]), "cancelled");
}

// Many clients, each pipelining many requests, against the default queue cap: the excess is
// refused at once with the queue-full error, everything else completes, and memory stays bounded
// while it runs and returns to its level afterwards. Redis runs a client's pipelined commands one
// at a time (the next waits while the client is blocked), so at most one request per client is in
// the engine; the cap decides how many of those wait. Memory is measured two ways: Redis's
// used_memory (clients, their buffers, blocked-client state) and the process RSS (which also
// holds the engine's queued requests, allocated outside Redis's allocator).
TEST(lifecycle_flood, pipelined_flood_is_bounded_and_drains) {
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "128", "SLOTS", "4"}, {"--infer.queue-size", "64"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    const auto used_memory_mb = [&] {
        const std::string info = str(cmd(c.get(), {"INFO", "memory"}).get());
        const auto at = info.find("used_memory:");
        return at == std::string::npos ? -1.0 : std::atof(info.c_str() + at + 12) / (1024 * 1024);
    };
    const auto rss_mb = [&] {
        std::ifstream f("/proc/" + std::to_string(s.pid()) + "/statm");
        long pages = 0, resident = 0;
        f >> pages >> resident;
        return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024 * 1024);
    };
    // A warm-up generation first, so the baseline includes the scheduler's first-step buffers.
    ASSERT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    const double used0 = used_memory_mb(), rss0 = rss_mb();
    const int clients = 200, per_client = 50;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<client_ptr> cs;
    for (int i = 0; i < clients; ++i) {
        cs.push_back(s.connect());
        ASSERT_TRUE(cs.back());
        for (int j = 0; j < per_client; ++j) send(cs.back().get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "4"});
    }
    int ok = 0, full = 0, other = 0;
    double used_peak = used0, rss_peak = rss0;
    long long queue_peak = 0;
    std::string first_other;
    for (auto & g : cs) {
        for (int j = 0; j < per_client; ++j) {
            auto r = receive(g.get());
            ASSERT_TRUE(r);
            if (r->type == REDIS_REPLY_STRING) ++ok;
            else if (is_error(r, "ERR queue full for model 'tiny' - ")) ++full;
            else if (other++ == 0) first_other = str(r.get());
        }
        used_peak = std::max(used_peak, used_memory_mb());
        rss_peak = std::max(rss_peak, rss_mb());
        queue_peak = std::max(queue_peak, map_get(cmd(c.get(), {"INFER.INFO", "tiny"}).get(), "queue_depth")->integer);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(ok + full, clients * per_client);
    EXPECT_EQ(other, 0) << first_other;
    EXPECT_GT(ok, 0);
    EXPECT_GT(full, 0) << "the flood never filled the queue: the cap was not exercised";
    EXPECT_LE(queue_peak, 64 + 4);  // the cap, plus requests already promised a free slot
    EXPECT_EQ(cmd(c.get(), {"PING"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(wait_for([&] { return str(cmd(c.get(), {"INFO", "clients"}).get()).find("blocked_clients:0") != std::string::npos; }));
    cs.clear();
    ASSERT_TRUE(wait_for([&] { return str(cmd(c.get(), {"INFO", "clients"}).get()).find("connected_clients:1\r\n") != std::string::npos; }));
    const double used1 = used_memory_mb(), rss1 = rss_mb();
    // Bounds: 10,000 requests held at once (no cap, or a leak per request) would cost far more;
    // 200 clients with their buffers and 68 requests in the engine cost a few MB.
    EXPECT_LT(used_peak - used0, 32.0) << "used_memory peak " << used_peak << " MB, baseline " << used0 << " MB";
    EXPECT_LT(rss_peak - rss0, 64.0) << "RSS peak " << rss_peak << " MB, baseline " << rss0 << " MB";
    EXPECT_LT(used1 - used0, 2.0) << "used_memory after " << used1 << " MB, baseline " << used0 << " MB";
    EXPECT_LT(rss1 - rss0, 64.0) << "RSS after " << rss1 << " MB, baseline " << rss0 << " MB";
    RecordProperty("completed", ok);
    RecordProperty("refused", full);
    RecordProperty("seconds", std::to_string(seconds));
    RecordProperty("used_memory_mb", std::to_string(used0) + " -> peak " + std::to_string(used_peak) + " -> " + std::to_string(used1));
    RecordProperty("rss_mb", std::to_string(rss0) + " -> peak " + std::to_string(rss_peak) + " -> " + std::to_string(rss1));
}

// BGSAVE while generating works; the fork time with a model loaded is reported.
TEST_F(lifecycle, bgsave_during_generation) {
    auto g = server->connect();
    send(g.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "300", "IGNORE_EOS"});
    ASSERT_TRUE(busy(1));
    auto b = cmd(c.get(), {"BGSAVE"});
    EXPECT_EQ(b->type, REDIS_REPLY_STATUS) << str(b.get());
    EXPECT_TRUE(wait_for([&] { return str(cmd(c.get(), {"INFO", "persistence"}).get()).find("rdb_bgsave_in_progress:0") != std::string::npos; }));
    EXPECT_NE(str(cmd(c.get(), {"INFO", "persistence"}).get()).find("rdb_last_bgsave_status:ok"), std::string::npos);
    const std::string stats = str(cmd(c.get(), {"INFO", "stats"}).get());
    const auto at = stats.find("latest_fork_usec:");
    RecordProperty("latest_fork_usec", stats.substr(at + 17, stats.find('\r', at) - at - 17));
    EXPECT_EQ(receive(g.get())->type, REDIS_REPLY_STRING);
}

// With AOF, what generations wrote survives a reload, a BGREWRITEAOF and a restart from the AOF
// with the same digest, with and without the RDB preamble; the reload runs no inference (the AOF
// holds the SET/XADD, not INFER.GENERATE). The model registry - a model loaded at run time, with
// its options - survives a reload of the AOF as written (INFER.LOAD in it) and, with the RDB
// preamble, the rewrite and the restart (RDB aux data). Without the preamble a rewrite loses it:
// see DISABLED_registry_survives_a_rewrite_without_the_rdb_preamble below.
class lifecycle_aof : public ::testing::TestWithParam<bool> {};

TEST_P(lifecycle_aof, results_and_registry_survive_rewrite_and_restart_without_rerunning_inference) {
    const bool preamble = GetParam();
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "128"},
                   {"--appendonly", "yes", "--aof-use-rdb-preamble", preamble ? "yes" : "no"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    auto load = cmd(c.get(), {"INFER.LOAD", "extra", "tiny-q8_0.gguf", "CTX", "256", "SLOTS", "2", "BATCH", "64"});
    ASSERT_EQ(load->type, REDIS_REPLY_STATUS) << str(load.get());
    const std::vector<std::string> gen_args = {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "8", "TEMPERATURE", "0",
                                               "IGNORE_EOS", "STORE", "aof:out", "STREAM", "aof:s"};
    auto g = cmd(c.get(), gen_args);
    ASSERT_EQ(g->type, REDIS_REPLY_STRING) << str(g.get());
    const std::string text = str(g.get());
    ASSERT_FALSE(text.empty());
    auto ch = cmd(c.get(), {"INFER.CHAT", "tiny", "aof:chat", "USER", "hi", "MAX_TOKENS", "4", "TEMPERATURE", "0"});
    ASSERT_EQ(ch->type, REDIS_REPLY_STRING) << str(ch.get());
    EXPECT_EQ(cmd(c.get(), {"STRLEN", "aof:out"})->integer, 8 * 4);
    EXPECT_GE(cmd(c.get(), {"XLEN", "aof:s"})->integer, 2);
    EXPECT_GT(cmd(c.get(), {"STRLEN", "aof:chat"})->integer, 0);
    const std::string out = str(cmd(c.get(), {"GET", "aof:out"}).get()), session = str(cmd(c.get(), {"GET", "aof:chat"}).get());
    const std::string digest = str(cmd(c.get(), {"DEBUG", "DIGEST"}).get());
    ASSERT_NE(digest, std::string(40, '0'));
    const auto requests = [&](const std::string & m) { return map_get(cmd(c.get(), {"INFER.INFO", m}).get(), "requests")->integer; };
    const long before = requests("tiny");
    const auto extra_has_its_options = [&] {
        auto ms = cmd(c.get(), {"INFER.MODELS"});
        for (size_t i = 0; ms && ms->type == REDIS_REPLY_ARRAY && i < ms->elements; ++i) {
            const redisReply * m = ms->element[i];
            if (str(map_get(m, "name")) != "extra") continue;
            return str(map_get(m, "state")) == "ready" && map_get(m, "context")->integer == 256 &&
                   map_get(m, "slots")->integer == 2 && map_get(m, "batch")->integer == 64;
        }
        return false;
    };
    ASSERT_TRUE(extra_has_its_options());

    // 1. Reload the AOF as written (base + the INFER.LOAD, SET and XADD appended after it).
    auto r = cmd(c.get(), {"DEBUG", "LOADAOF"});
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest);
    EXPECT_EQ(requests("tiny"), before);
    EXPECT_TRUE(wait_for(extra_has_its_options, std::chrono::seconds(20)));

    // 2. Rewrite it: the base file now holds the dataset, as RDB (with the registry) or as commands.
    r = cmd(c.get(), {"BGREWRITEAOF"});
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    ASSERT_TRUE(wait_for([&] {
        const std::string p = str(cmd(c.get(), {"INFO", "persistence"}).get());
        return p.find("aof_rewrite_in_progress:0") != std::string::npos && p.find("aof_rewrite_scheduled:0") != std::string::npos &&
               p.find("aof_rewrites:1") != std::string::npos;
    }));
    EXPECT_NE(str(cmd(c.get(), {"INFO", "persistence"}).get()).find("aof_last_bgrewrite_status:ok"), std::string::npos);
    r = cmd(c.get(), {"DEBUG", "LOADAOF"});
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << str(r.get());
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest);
    EXPECT_EQ(requests("tiny"), before);

    // 3. Restart from the rewritten AOF: a new process, the same data and the same registry.
    const pid_t old_pid = s.pid();
    ASSERT_TRUE(s.restart()) << s.log();
    ASSERT_NE(s.pid(), old_pid);
    c = s.connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny")) << s.log();
    if (preamble) EXPECT_TRUE(wait_for(extra_has_its_options, std::chrono::seconds(20))) << "the registry lost 'extra'\n" << s.log();
    EXPECT_NE(s.log().find("DB loaded from"), std::string::npos);
    EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), digest);
    EXPECT_EQ(str(cmd(c.get(), {"GET", "aof:out"}).get()), out);
    EXPECT_EQ(str(cmd(c.get(), {"GET", "aof:chat"}).get()), session);
    EXPECT_EQ(requests("tiny"), 0);  // loading ran nothing
    // And the model still gives the same result.
    auto again = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "8", "TEMPERATURE", "0", "IGNORE_EOS"});
    EXPECT_EQ(str(again.get()), text);
}

INSTANTIATE_TEST_SUITE_P(preamble, lifecycle_aof, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> & i) { return i.param ? "rdb_preamble" : "no_preamble"; });

// Known defect (issue 17): the registry is RDB aux data only. A rewrite without the RDB preamble
// writes commands for keys, and nothing for aux data (Redis has no AOF callback for it), so the
// INFER.LOAD of a model loaded at run time is gone from the AOF and a restart does not load it.
// Enable this test with the fix (e.g. emit INFER.LOAD commands in the rewrite).
TEST(lifecycle_aof_registry, DISABLED_registry_survives_a_rewrite_without_the_rdb_preamble) {
    redis_server s({}, {"--appendonly", "yes", "--aof-use-rdb-preamble", "no"});
    auto c = s.connect();
    auto load = cmd(c.get(), {"INFER.LOAD", "extra", "tiny-q8_0.gguf", "CTX", "256"});
    ASSERT_EQ(load->type, REDIS_REPLY_STATUS) << str(load.get());
    ASSERT_EQ(cmd(c.get(), {"BGREWRITEAOF"})->type, REDIS_REPLY_STATUS);
    ASSERT_TRUE(wait_for([&] {
        const std::string p = str(cmd(c.get(), {"INFO", "persistence"}).get());
        return p.find("aof_rewrite_in_progress:0") != std::string::npos && p.find("aof_rewrite_scheduled:0") != std::string::npos &&
               p.find("aof_rewrites:1") != std::string::npos;
    }));
    ASSERT_TRUE(s.restart()) << s.log();
    c = s.connect();
    EXPECT_TRUE(wait_model_ready(c.get(), "extra")) << s.log();
}

// Under maxmemory, generation that writes nothing still works; anything that would write is
// refused with OOM and writes nothing.
TEST_F(lifecycle, oom_refuses_writes_not_reads) {
    cmd(c.get(), {"CONFIG", "SET", "maxmemory", "1"});  // always over the limit
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "4", "STORE", "oom:k"}), "OOM"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.CHAT", "tiny", "oom:chat", "USER", "hi", "MAX_TOKENS", "4"}), "OOM"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "hi", "STORE", "oom:t"}), "OOM"));
    cmd(c.get(), {"CONFIG", "SET", "maxmemory", "0"});
    for (const char * k : {"oom:k", "oom:chat", "oom:t"}) EXPECT_EQ(cmd(c.get(), {"EXISTS", k})->integer, 0) << k;
}

TEST_F(lifecycle, functions_cannot_call_blocking_commands) {
    auto f = cmd(c.get(), {"FUNCTION", "LOAD", "REPLACE",
                           "#!lua name=inferlib\nredis.register_function('gen', function() return redis.call('INFER.GENERATE', 'tiny', 'TEXT', 'x') end)"});
    ASSERT_EQ(f->type, REDIS_REPLY_STRING) << str(f.get());
    // The command is flagged noscript: Redis refuses it, naming the function and its line.
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"FCALL", "gen", "0"}),
                                 "ERR This Redis command is not allowed from script script: gen, on @user_function:2."));
    cmd(c.get(), {"FUNCTION", "DELETE", "inferlib"});
}

// A reply larger than the client's output-buffer limit: the client is dropped, nothing else.
TEST_F(lifecycle, reply_over_the_output_buffer_limit_drops_only_that_client) {
    cmd(c.get(), {"CONFIG", "SET", "client-output-buffer-limit", "normal 256 256 0"});
    auto g = server->connect();
    auto r = cmd(g.get(), {"INFER.GENERATE", "tiny", "TEXT", "hello", "MAX_TOKENS", "400", "IGNORE_EOS"});
    EXPECT_TRUE(!r || g->err);  // disconnected
    cmd(c.get(), {"CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0"});
    EXPECT_TRUE(busy(0));
    EXPECT_EQ(cmd(c.get(), {"PING"})->type, REDIS_REPLY_STATUS);
}

// While Redis loads its dataset, commands that need the data get Redis's own -LOADING error
// (they are not flagged allow-loading), the status commands still answer, and once loading is
// done generation works again. DEBUG RELOAD with a per-key delay keeps the server loading while
// it keeps serving clients between keys.
TEST(lifecycle_loading, commands_during_loading_get_loading_errors) {
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "128"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    cmd(c.get(), {"SET", "ld:p", pack({9707, 1879})});
    cmd(c.get(), {"DEBUG", "POPULATE", "20000", "ld"});
    ASSERT_EQ(cmd(c.get(), {"CONFIG", "SET", "key-load-delay", "100"})->type, REDIS_REPLY_STATUS);
    ASSERT_EQ(cmd(c.get(), {"CONFIG", "SET", "loading-process-events-interval-bytes", "1024"})->type, REDIS_REPLY_STATUS);
    auto loader = s.connect();
    send(loader.get(), {"DEBUG", "RELOAD"});
    ASSERT_TRUE(wait_for([&] { return str(cmd(c.get(), {"INFO", "persistence"}).get()).find("loading:1") != std::string::npos; },
                         std::chrono::seconds(10)));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "ld:p", "MAX_TOKENS", "2"}), "LOADING"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.TOKENIZE", "tiny", "x"}), "LOADING"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.LOAD", "other", "tiny-q8_0.gguf"}), "LOADING"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(cmd(c.get(), {"INFER.INFO", "tiny"})->type, REDIS_REPLY_ARRAY);
    cmd(c.get(), {"CONFIG", "SET", "key-load-delay", "0"});
    auto reloaded = receive(loader.get());
    ASSERT_TRUE(reloaded);
    EXPECT_EQ(reloaded->type, REDIS_REPLY_STATUS) << str(reloaded.get());
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "PROMPT", "ld:p", "MAX_TOKENS", "2"})->type, REDIS_REPLY_STRING);
    EXPECT_EQ(cmd(c.get(), {"DBSIZE"})->integer, 20001);
}
