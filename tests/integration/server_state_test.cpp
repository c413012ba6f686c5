// Keyspace writes that respect the server's state (issue 18). Stream entries, STORE and chat
// sessions are written by main-thread jobs that run from a module timer, never from inside
// processEventsWhileBlocked (where Redis empties a database, loads data or serves events during
// a busy script), and never while writes are paused. Each test is one of the reported
// reproductions; before the fix they crashed a replica (1), panicked DEBUG RELOAD (2), put
// module XADDs inside a script's MULTI/EXEC (3), failed generations under an eviction policy
// (4), left holes in streams that then ended "successfully" (5) and made an expiring chat
// session immortal (6).
#include "support/fixture.h"

#include <fstream>
#include <sstream>
#include <thread>

using namespace testing_support;

namespace {

std::string info_field(redisContext * c, const std::string & section, const std::string & field) {
    const std::string info = str(cmd(c, {"INFO", section}).get());
    const size_t at = info.find(field + ":");
    if (at == std::string::npos) return "";
    const size_t from = at + field.size() + 1;
    return info.substr(from, info.find_first_of("\r\n", from) - from);
}

long long xlen(redisContext * c, const std::string & key) { return cmd(c, {"XLEN", key})->integer; }

// Generations with STREAM running on their own connections.
struct background {
    std::vector<client_ptr> conns;
    void start(const redis_server & s, int n, const std::string & prefix, int max_tokens, std::vector<std::string> extra = {}) {
        for (int i = 0; i < n; ++i) {
            conns.push_back(s.connect());
            redisSetTimeout(conns.back().get(), timeval{600, 0});  // long generations on a loaded machine
            std::vector<std::string> args = {"INFER.GENERATE", "tiny", "TEXT", "hello " + std::to_string(i), "MAX_TOKENS",
                                             std::to_string(max_tokens), "IGNORE_EOS", "STREAM", prefix + std::to_string(i)};
            args.insert(args.end(), extra.begin(), extra.end());
            send(conns.back().get(), args);
        }
    }
    std::vector<reply_ptr> finish() {
        std::vector<reply_ptr> out;
        for (auto & c : conns) out.push_back(receive(c.get()));
        return out;
    }
};

const std::vector<std::string> k_model = {"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "4096", "SLOTS", "4"};

}  // namespace

// 1. A writable replica's full resync flushes its dataset from inside processEventsWhileBlocked;
// module XADDs from there crashed it (raxSeekGreatest <- streamAppendItem) 4 runs out of 4.
TEST(server_state, writable_replica_survives_a_full_resync_mid_generation) {
    redis_server primary(k_model);
    redis_server replica(k_model, {"--replica-read-only", "no"});
    auto p = primary.connect();
    auto r = replica.connect();
    ASSERT_TRUE(p && r);
    cmd(p.get(), {"DEBUG", "POPULATE", "300000", "pop", "100"});
    cmd(r.get(), {"REPLICAOF", "127.0.0.1", std::to_string(primary.port())});
    ASSERT_TRUE(wait_for([&] { return info_field(r.get(), "replication", "master_link_status") == "up"; }, std::chrono::seconds(60)));
    ASSERT_TRUE(wait_model_ready(r.get(), "tiny"));
    const pid_t pid = replica.pid();
    background gens;
    gens.start(replica, 4, "s:", 2000);
    ASSERT_TRUE(wait_for([&] { return xlen(r.get(), "s:3") > 2; }));
    cmd(p.get(), {"DEBUG", "CHANGE-REPL-ID"});
    cmd(p.get(), {"CLIENT", "KILL", "TYPE", "replica"});
    // The replica reconnects, flushes 300k keys and loads them again while the 4 generate: a
    // second full sync in its log (the first was REPLICAOF's).
    const auto syncs = [&] {
        const std::string log = replica.log();
        size_t n = 0;
        for (size_t at = 0; (at = log.find("MASTER <-> REPLICA sync: Finished with success", at)) != std::string::npos; ++at) ++n;
        return n;
    };
    ASSERT_TRUE(wait_for([&] { return syncs() >= 2 || !replica.alive(); }, std::chrono::seconds(180))) << replica.log();
    ASSERT_TRUE(replica.alive()) << replica.log();
    std::string link, loading;
    long long keys = 0;
    EXPECT_TRUE(wait_for([&] {
        auto c = replica.connect();
        if (!c) return false;
        link = info_field(c.get(), "replication", "master_link_status");
        loading = info_field(c.get(), "persistence", "loading");
        auto n = cmd(c.get(), {"DBSIZE"});
        keys = n && n->type == REDIS_REPLY_INTEGER ? n->integer : -1;
        return link == "up" && loading == "0" && keys >= 300000;
    }, std::chrono::seconds(60))) << "link " << link << ", loading " << loading << ", keys " << keys;
    for (auto & res : gens.finish()) {
        ASSERT_TRUE(res) << replica.log();
        EXPECT_NE(res->type, REDIS_REPLY_ERROR) << str(res.get());
    }
    ASSERT_TRUE(replica.alive()) << replica.log();
    EXPECT_EQ(replica.pid(), pid);
    EXPECT_EQ(replica.log().find("crashed by signal"), std::string::npos) << replica.log();
    auto after = replica.connect();
    EXPECT_EQ(str(cmd(after.get(), {"PING"}).get()), "PONG");
    EXPECT_EQ(str(cmd(after.get(), {"XINFO", "STREAM", "s:0"}).get()), "") << "s:0 is not a stream any more";
}

// 2. DEBUG RELOAD loads the RDB from inside processEventsWhileBlocked; module XADDs during the
// load made Redis panic "Duplicated key found in RDB file" 3 runs out of 3.
TEST(server_state, debug_reload_during_streaming_generations) {
    redis_server s(k_model);
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    cmd(c.get(), {"DEBUG", "POPULATE", "500000", "pop", "100"});
    background gens;
    gens.start(s, 4, "r:", 1500);
    ASSERT_TRUE(wait_for([&] { return xlen(c.get(), "r:3") > 2; }));
    auto reload = cmd(c.get(), {"DEBUG", "RELOAD"});
    ASSERT_TRUE(reload) << s.log();
    EXPECT_EQ(str(reload.get()), "OK") << s.log();
    for (auto & res : gens.finish()) {
        ASSERT_TRUE(res) << s.log();
        EXPECT_EQ(res->type, REDIS_REPLY_STRING) << str(res.get());
    }
    ASSERT_TRUE(s.alive()) << s.log();
    EXPECT_EQ(s.log().find("Duplicated key"), std::string::npos);
    EXPECT_EQ(cmd(c.get(), {"DBSIZE"})->integer, 500000 + 4);
    // Every stream is whole: 1500 ids, then the last entry.
    for (int i = 0; i < 4; ++i) {
        auto es = cmd(c.get(), {"XRANGE", "r:" + std::to_string(i), "-", "+"});
        size_t ids = 0;
        for (size_t e = 0; e + 1 < es->elements; ++e) {
            const std::string t = str(es->element[e]->element[1]->element[3]);
            if (!t.empty()) ids += 1 + size_t(std::count(t.begin(), t.end(), ','));
        }
        EXPECT_EQ(ids, 1500u) << "stream r:" << i;
        EXPECT_EQ(str(es->element[es->elements - 1]->element[1]->element[0]), "finish_reason");
    }
}

// 3. A script past busy-reply-threshold lets Redis serve events while it runs; module XADDs ran
// there, so the script saw XLEN change under it and the AOF had them inside its MULTI/EXEC.
TEST(server_state, a_long_script_sees_no_module_write) {
    redis_server s(k_model, {"--busy-reply-threshold", "50", "--appendonly", "yes", "--appendfsync", "no"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    background gens;
    gens.start(s, 2, "l:", 800);
    ASSERT_TRUE(wait_for([&] { return xlen(c.get(), "l:0") > 2; }));
    const std::string script =
        "redis.call('SET', 'script:begin', '1') "
        "local a = redis.call('XLEN', KEYS[1]) "
        "local t = os.clock() while os.clock() - t < 0.6 do end "
        "local b = redis.call('XLEN', KEYS[1]) "
        "redis.call('SET', 'script:end', '1') "
        "return {a, b}";
    auto r = cmd(c.get(), {"EVAL", script, "1", "l:0"});
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << str(r.get());
    EXPECT_EQ(r->element[0]->integer, r->element[1]->integer) << "the stream grew while the script ran";
    for (auto & res : gens.finish()) ASSERT_TRUE(res && res->type == REDIS_REPLY_STRING) << str(res.get());
    // In the AOF, the script's writes form one MULTI/EXEC with nothing of the module's inside.
    const std::string dir = str(cmd(c.get(), {"CONFIG", "GET", "dir"})->element[1]);
    cmd(c.get(), {"CONFIG", "SET", "appendfsync", "always"});
    std::string aof;
    for (int i = 1; i <= 3 && aof.empty(); ++i) {
        std::ifstream f(dir + "/appendonlydir/appendonly.aof." + std::to_string(i) + ".incr.aof");
        std::stringstream ss;
        ss << f.rdbuf();
        if (ss.str().find("script:begin") != std::string::npos) aof = ss.str();
    }
    const size_t begin = aof.find("script:begin"), end = aof.find("script:end");
    ASSERT_NE(begin, std::string::npos);
    ASSERT_NE(end, std::string::npos);
    EXPECT_EQ(aof.substr(begin, end - begin).find("XADD"), std::string::npos) << "a module XADD inside the script's block";
    EXPECT_NE(aof.find("XADD"), std::string::npos);
}

// 4. Under an eviction policy a client's write evicts and succeeds; the module's writes used to
// fail with OOM (RM_Call's M flag checks memory but never evicts): 139 of 233 generations.
// Under noeviction a command that would write is refused up front instead.
TEST(server_state, writes_under_maxmemory_follow_the_policy) {
    redis_server s(k_model);
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    cmd(c.get(), {"DEBUG", "POPULATE", "100000", "pop", "100"});
    const long long used = std::stoll(info_field(c.get(), "memory", "used_memory"));
    cmd(c.get(), {"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"});
    cmd(c.get(), {"CONFIG", "SET", "maxmemory", std::to_string(used - (1 << 20))});  // over: evicting from now on
    int ok = 0, failed = 0;
    std::string last_error;
    for (int round = 0; round < 4; ++round) {
        background gens;
        gens.start(s, 6, "m:" + std::to_string(round) + ":", 200, {"STORE", "m:out:" + std::to_string(round)});
        for (auto & res : gens.finish()) {
            if (res && res->type == REDIS_REPLY_STRING) ++ok;
            else ++failed, last_error = str(res.get());
        }
        // A plain client's writes meanwhile evict as usual.
        for (int i = 0; i < 50; ++i) cmd(c.get(), {"XADD", "m:client", "*", "f", std::string(2000, 'x')});
    }
    EXPECT_EQ(failed, 0) << last_error;
    EXPECT_EQ(ok, 24) << last_error;
    EXPECT_GT(std::stoll(info_field(c.get(), "stats", "evicted_keys")), 0);

    cmd(c.get(), {"CONFIG", "SET", "maxmemory-policy", "noeviction"});
    cmd(c.get(), {"CONFIG", "SET", "maxmemory", "1"});
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "2", "STREAM", "m:refused"}),
                         "OOM command not allowed when used memory > 'maxmemory'"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "2", "STORE", "m:refused"}), "OOM"));
    EXPECT_TRUE(is_error(cmd(c.get(), {"INFER.CHAT", "tiny", "m:session", "USER", "x", "MAX_TOKENS", "2"}), "OOM"));
    EXPECT_EQ(cmd(c.get(), {"EXISTS", "m:refused", "m:session"})->integer, 0);
    // Nothing to write: generation goes on.
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "2"})->type, REDIS_REPLY_STRING);
    cmd(c.get(), {"CONFIG", "SET", "maxmemory", "0"});
}

// 5. During CLIENT PAUSE WRITE entries were dropped from the middle of a stream and later ones
// still written, ending with finish_reason length: a stream with holes that looked whole. Now a
// pause is waited out (as a client's write would wait), and once a write fails nothing is
// appended after it but an error entry, which is also the reply.
TEST(server_state, a_paused_stream_has_no_holes_and_a_failed_one_says_so) {
    redis_server s(k_model);
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    background gens;
    gens.start(s, 2, "p:", 600, {"WITHMETA"});
    ASSERT_TRUE(wait_for([&] { return xlen(c.get(), "p:0") > 2; }));
    cmd(c.get(), {"CLIENT", "PAUSE", "500", "WRITE"});
    const auto results = gens.finish();
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(results[i]->type, REDIS_REPLY_ARRAY) << str(results[i].get());
        auto es = cmd(c.get(), {"XRANGE", "p:" + std::to_string(i), "-", "+"});
        size_t ids = 0;
        for (size_t e = 0; e + 1 < es->elements; ++e) {
            const std::string t = str(es->element[e]->element[1]->element[3]);
            if (!t.empty()) ids += 1 + size_t(std::count(t.begin(), t.end(), ','));
        }
        EXPECT_EQ(ids, 600u);
        EXPECT_EQ(str(es->element[es->elements - 1]->element[1]->element[0]), "finish_reason");
    }

    // A write that fails (the user loses the key pattern for a moment): the stream ends there.
    cmd(c.get(), {"ACL", "SETUSER", "app", "on", ">pw", "+@all", "~fail:*"});
    auto app = s.connect();
    cmd(app.get(), {"AUTH", "app", "pw"});
    send(app.get(), {"INFER.GENERATE", "tiny", "TEXT", "x", "MAX_TOKENS", "800", "IGNORE_EOS", "STREAM", "fail:s"});
    ASSERT_TRUE(wait_for([&] { return xlen(c.get(), "fail:s") > 2; }));
    cmd(c.get(), {"ACL", "SETUSER", "app", "resetkeys", "~other:*"});
    const long long at_failure = xlen(c.get(), "fail:s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cmd(c.get(), {"ACL", "SETUSER", "app", "~fail:*"});
    auto reply = receive(app.get());
    EXPECT_TRUE(is_error(reply, "NOPERM"));
    auto es = cmd(c.get(), {"XRANGE", "fail:s", "-", "+"});
    ASSERT_GE(es->elements, size_t(at_failure));
    EXPECT_LE(es->elements, size_t(at_failure) + 2) << "entries were appended after the failed write";
    const redisReply * last = es->element[es->elements - 1]->element[1];
    EXPECT_EQ(str(last->element[0]), "error");
    EXPECT_EQ(str(last->element[1]).rfind("NOPERM", 0), 0u) << str(last->element[1]);
}

// 6. A session that expired during a turn came back without a TTL (PTTL -1): immortal.
TEST(server_state, a_session_that_expires_mid_turn_stays_expired) {
    redis_server s(k_model);
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    ASSERT_EQ(cmd(c.get(), {"INFER.CHAT", "tiny", "sess", "USER", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    cmd(c.get(), {"PEXPIRE", "sess", "300"});
    const auto t0 = std::chrono::steady_clock::now();
    auto r = cmd(c.get(), {"INFER.CHAT", "tiny", "sess", "USER", "a long answer please", "MAX_TOKENS", "3000",
                           "IGNORE_EOS", "TIMEOUT", "1500"});
    ASSERT_EQ(r->type, REDIS_REPLY_STRING) << str(r.get());
    ASSERT_GT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400)) << "the turn was too short to test";
    EXPECT_EQ(cmd(c.get(), {"PTTL", "sess"})->integer, -2) << "the expired session came back";
    // One that is still there keeps its TTL; one without a TTL stays without.
    cmd(c.get(), {"INFER.CHAT", "tiny", "sess2", "USER", "hi", "MAX_TOKENS", "4"});
    cmd(c.get(), {"PEXPIRE", "sess2", "60000"});
    cmd(c.get(), {"INFER.CHAT", "tiny", "sess2", "USER", "again", "MAX_TOKENS", "4"});
    EXPECT_GT(cmd(c.get(), {"PTTL", "sess2"})->integer, 50000);
    cmd(c.get(), {"INFER.CHAT", "tiny", "sess3", "USER", "hi", "MAX_TOKENS", "4"});
    cmd(c.get(), {"INFER.CHAT", "tiny", "sess3", "USER", "again", "MAX_TOKENS", "4"});
    EXPECT_EQ(cmd(c.get(), {"PTTL", "sess3"})->integer, -1);
}
