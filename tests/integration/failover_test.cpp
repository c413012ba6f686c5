// Failover under load (issue #8): a replica is promoted while generations run on it and on the
// primary. Clients follow the usual rules - on a connection error or an error reply that means
// "not here, not now" (READONLY, UNBLOCKED, MOVED, LOADING, TRYAGAIN, ...) they find where the
// request belongs now and send it again - and afterwards nothing is lost: every STORE key holds
// what an undisturbed greedy generation of its prompt gives, the registry is the same on every
// node, the old primary follows the new one with an identical dataset, and no process crashed.
//
// Inference is never replicated, only its writes, so a promoted replica has every completed
// result; a request the failover cut off is simply run again (a greedy STORE is idempotent: same
// prompt, same tokens, same key).
//
// A failover pauses writes on the old primary (FAILOVER, CLUSTER FAILOVER) until the replica has
// caught up. Generations that finish inside that window must not write through it. So that the
// tests exercise that window every run rather than by luck, they hold it open the way a slow node
// would: the replica (FAILOVER) or the voting primaries (CLUSTER FAILOVER) sit in DEBUG SLEEP
// while the old primary is paused with generations in flight.
#include "support/fixture.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <poll.h>
#include <set>
#include <thread>

using namespace testing_support;

namespace {

using clock_type = std::chrono::steady_clock;

// A connection that reports failure instead of failing the test: nodes go away and come back.
client_ptr dial(int port, timeval read_timeout = {30, 0}) {
    client_ptr c(redisConnectWithTimeout("127.0.0.1", port, timeval{1, 0}));
    if (!c || c->err) return nullptr;
    redisSetTimeout(c.get(), read_timeout);
    return c;
}

reply_ptr once(int port, const std::vector<std::string> & args) {
    auto c = dial(port);
    return c ? cmd(c.get(), args) : nullptr;
}

// `field:value` from INFO; "" if absent or the node does not answer.
std::string info_field(int port, const std::string & section, const std::string & field) {
    const std::string info = str(once(port, {"INFO", section}).get());
    const size_t at = info.find(field + ":");
    if (at == std::string::npos) return "";
    const size_t from = at + field.size() + 1;
    return info.substr(from, info.find_first_of("\r\n", from) - from);
}

bool cluster_ok(int port) { return str(once(port, {"CLUSTER", "INFO"}).get()).find("cluster_state:ok") != std::string::npos; }

// How many nodes `port` believes are primaries and replicas (CLUSTER NODES flags).
std::pair<int, int> cluster_roles(int port) {
    const std::string nodes = str(once(port, {"CLUSTER", "NODES"}).get());
    std::pair<int, int> n{0, 0};
    for (size_t at = 0; at < nodes.size();) {
        const size_t end = std::min(nodes.find('\n', at), nodes.size());
        const std::string line = nodes.substr(at, end - at);
        const size_t f = line.find(' ', line.find(' ') + 1) + 1;  // third field: flags
        const std::string flags = line.substr(f, line.find(' ', f) - f);
        if (flags.find("master") != std::string::npos) ++n.first;
        if (flags.find("slave") != std::string::npos) ++n.second;
        at = end + 1;
    }
    return n;
}

std::string role(int port) {
    auto r = once(port, {"ROLE"});
    return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? str(r->element[0]) : "";
}

long long model_stat(int port, const std::string & field) {
    const redisReply * v = map_get(once(port, {"INFER.INFO", "tiny"}).get(), field);
    return v ? v->integer : -1;
}

// INFER.MODELS flattened: every model's name, state, path and load options.
std::string registry_of(int port) {
    auto m = once(port, {"INFER.MODELS"});
    std::string s;
    for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i < m->elements; ++i) {
        const redisReply * e = m->element[i];
        for (size_t j = 0; j + 1 < e->elements; j += 2) {
            s += str(e->element[j]) + "=" + (e->element[j + 1]->type == REDIS_REPLY_INTEGER
                                                  ? std::to_string(e->element[j + 1]->integer)
                                                  : str(e->element[j + 1])) + " ";
        }
        s += "\n";
    }
    return s;
}

// Puts a node to sleep (its main thread blocked, as a slow or stalled node) and returns once it
// has stopped answering. The sleeping connection must outlive the sleep: it is returned.
client_ptr put_to_sleep(int port, const char * seconds) {
    auto sleeper = dial(port);
    if (!sleeper) return nullptr;
    send(sleeper.get(), {"DEBUG", "SLEEP", seconds});
    const bool asleep = wait_for([&] {
        auto probe = dial(port, timeval{0, 100000});
        return probe && !cmd(probe.get(), {"PING"});
    }, std::chrono::seconds(5));
    return asleep ? std::move(sleeper) : nullptr;
}

// Errors an ordinary client answers by finding where the request belongs and sending it again.
bool retryable(const std::string & err) {
    for (const char * code : {"READONLY", "UNBLOCKED", "MOVED", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"}) {
        if (err.rfind(code, 0) == 0) return true;
    }
    return false;
}

// One request as a client saw it.
struct outcome {
    bool ok = false;
    std::string reply;                  // the text, once it succeeded
    int retries = 0;                    // attempts that failed and were sent again
    std::vector<std::string> retried;   // why (first few)
    std::string refused;                // an error reply that is not retryable: not sent again
};

// A client following the usual rules. `route(last_error)` names the port to send to (0 = none
// known yet); it is asked again after every failure.
class retrying_client {
public:
    explicit retrying_client(std::function<int(const std::string &)> route) : route_(std::move(route)) {}

    outcome run(const std::vector<std::string> & args, clock_type::time_point deadline, const std::atomic<bool> & stop) {
        outcome o;
        std::string last;
        while (clock_type::now() < deadline && !stop.load()) {
            const int port = route_(last);
            if (port != conn_port_ || !conn_) {
                conn_ = port ? dial(port) : nullptr;
                conn_port_ = port;
            }
            if (!conn_) {
                last = "no node to send to";
                std::this_thread::sleep_for(std::chrono::milliseconds(10));  // client back-off
                continue;
            }
            auto r = cmd(conn_.get(), args);
            if (r && r->type != REDIS_REPLY_ERROR) {
                o.ok = true;
                o.reply = str(r.get());
                return o;
            }
            last = r ? str(r.get()) : std::string("connection lost: ") + conn_->errstr;
            conn_.reset();
            if (r && !retryable(last)) {
                o.refused = last;
                return o;
            }
            ++o.retries;
            if (o.retried.size() < 4) o.retried.push_back(last);
            if (last.rfind("MOVED", 0) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        o.retried.push_back("gave up: " + last);
        return o;
    }

private:
    std::function<int(const std::string &)> route_;
    client_ptr conn_;
    int conn_port_ = 0;
};

// A request sent on its own connection, first attempt only: once `sent` returns, the module holds
// it (the client is blocked in the command), so it was accepted before anything paused.
struct held_request {
    client_ptr conn;
    std::vector<std::string> args;

    bool send_to(int port, std::vector<std::string> request) {
        args = std::move(request);
        conn = dial(port);
        if (!conn) return false;
        const std::string id = std::to_string(cmd(conn.get(), {"CLIENT", "ID"})->integer);
        send(conn.get(), args);
        return wait_for([&] {
            const std::string c = str(once(port, {"CLIENT", "LIST", "ID", id}).get());
            return c.find("flags=b") != std::string::npos && c.find("cmd=infer.generate") != std::string::npos;
        });
    }
    // Its reply, and if that is a retryable error, the rest of its life as a retrying client.
    outcome finish(std::function<int(const std::string &)> route) {
        void * raw = nullptr;
        reply_ptr r(redisGetReply(conn.get(), &raw) == REDIS_OK ? static_cast<redisReply *>(raw) : nullptr);
        if (r && r->type != REDIS_REPLY_ERROR) {
            outcome o;
            o.ok = true;
            o.reply = str(r.get());
            return o;
        }
        const std::string err = r ? str(r.get()) : std::string("connection lost: ") + conn->errstr;
        if (r && !retryable(err)) {
            outcome o;
            o.refused = err;
            return o;
        }
        std::atomic<bool> never{false};
        outcome o = retrying_client(std::move(route)).run(args, clock_type::now() + std::chrono::seconds(30), never);
        o.retried.insert(o.retried.begin(), err);
        ++o.retries;
        return o;
    }
};

std::vector<std::string> generate(const std::string & prompt, const std::string & store_key = "") {
    std::vector<std::string> a = {"INFER.GENERATE", "tiny", "TEXT", prompt, "MAX_TOKENS", "24", "TEMPERATURE", "0"};
    if (!store_key.empty()) {
        a.push_back("STORE");
        a.push_back(store_key);
    }
    return a;
}

// Long enough (400 tokens, about a second here) to be surely still running a moment later.
std::vector<std::string> long_generate(const std::string & prompt, const std::string & store_key = "") {
    auto a = generate(prompt, store_key);
    a[5] = "400";
    a.push_back("IGNORE_EOS");
    return a;
}

std::string prompt_of(int n) { return "request " + std::to_string(n) + " asks about " + std::string(size_t(n % 7 + 1), 'q'); }

// Client threads; each runs its requests in order, as one retrying client.
struct load {
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    std::mutex mu;
    std::map<std::string, outcome> results;  // by request name
    std::atomic<int> done{0};

    void start(std::function<int(const std::string &)> route, std::vector<std::pair<std::string, std::vector<std::string>>> requests) {
        threads.emplace_back([this, route = std::move(route), requests = std::move(requests)] {
            retrying_client client(route);
            const auto deadline = clock_type::now() + std::chrono::seconds(60);
            for (const auto & [name, args] : requests) {
                outcome o = client.run(args, deadline, stop);
                {
                    std::lock_guard lk(mu);
                    results[name] = std::move(o);
                }
                ++done;
            }
        });
    }
    void join() {
        for (auto & t : threads) t.join();
        threads.clear();
    }
    ~load() {
        stop = true;
        join();
    }
};

// The distinct kinds of error the clients retried on ("READONLY", "UNBLOCKED", "connection", ...).
std::string retry_reasons(const std::map<std::string, outcome> & results) {
    std::set<std::string> kinds;
    for (const auto & [name, o] : results) {
        for (const auto & e : o.retried) kinds.insert(e.substr(0, e.find(' ')));
    }
    std::string s;
    for (const auto & k : kinds) s += (s.empty() ? "" : ",") + k;
    return s;
}

::testing::AssertionResult succeeded(const std::string & name, const outcome & o) {
    if (o.ok) return ::testing::AssertionSuccess();
    auto f = ::testing::AssertionFailure() << name << " did not succeed";
    if (!o.refused.empty()) f << "; refused with '" << o.refused << "' (not a retryable error)";
    for (const auto & e : o.retried) f << "; retried on '" << e << "'";
    return f;
}

std::string redis_cli() { return redis_server_path().substr(0, redis_server_path().rfind('/')) + "/redis-cli"; }

}  // namespace

// Primary P and replica R (which learns the registry at its full sync). Writers generate with
// STORE against whichever node is the primary; readers generate without writing on R and on P.
// FAILOVER on P while every slot of P is busy and R is slow to acknowledge: P pauses its writes,
// its in-flight generations finish inside the pause, then R takes over. Nothing may be lost.
TEST(failover, replica_promoted_during_load_loses_nothing) {
    const std::vector<std::string> fast_sync = {"--repl-diskless-sync-delay", "0"};
    redis_server primary({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "512", "SLOTS", "4"}, fast_sync);
    std::vector<std::string> replica_args = fast_sync;
    replica_args.insert(replica_args.end(), {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
    redis_server replica({}, replica_args);
    const int P = primary.port(), R = replica.port();
    const pid_t p_pid = primary.pid(), r_pid = replica.pid();
    auto p = primary.connect();
    auto r = replica.connect();
    ASSERT_TRUE(wait_model_ready(p.get(), "tiny"));
    ASSERT_TRUE(wait_for([&] { return info_field(R, "replication", "master_link_status") == "up"; }));
    ASSERT_TRUE(wait_model_ready(r.get(), "tiny")) << replica.log();  // from the full sync's RDB
    const std::string registry = registry_of(P);
    ASSERT_NE(registry.find("state=ready"), std::string::npos) << registry;

    // What an undisturbed generation gives: the reply text, and the STORE value kept in ref:<n>.
    constexpr int n_writes = 32, n_reads = 16;
    std::vector<std::string> expected;
    for (int n = 0; n < n_writes; ++n) {
        auto g = cmd(p.get(), generate(prompt_of(n), "ref:" + std::to_string(n)));
        ASSERT_EQ(g->type, REDIS_REPLY_STRING) << str(g.get());
        expected.push_back(str(g.get()));
    }
    const std::string expected_long = str(cmd(p.get(), long_generate(prompt_of(100), "ref:long")).get());

    // Readers first: the one on R stalls while R sleeps below, and must still not see an error.
    load readers, writers;
    for (int node : {R, P}) {
        std::vector<std::pair<std::string, std::vector<std::string>>> reads;
        for (int n = 0; n < n_reads / 2; ++n) {
            const int k = node == R ? n : n + n_reads / 2;
            reads.push_back({(node == R ? "read on R " : "read on P ") + std::to_string(k), generate(prompt_of(k))});
        }
        readers.start([node](const std::string &) { return node; }, reads);
    }
    // R goes to sleep, as a replica slow to acknowledge would; then the writes start, and P
    // fails over in their middle. P's pause lasts until R is awake and caught up, so P's
    // in-flight generations finish inside it.
    auto sleeping = put_to_sleep(R, "3");
    ASSERT_TRUE(sleeping) << "the replica did not go to sleep";
    auto to_primary = [&](const std::string &) {
        for (int port : {P, R}) {
            if (role(port) == "master") return port;
        }
        return 0;
    };
    for (int t = 0; t < 4; ++t) {
        std::vector<std::pair<std::string, std::vector<std::string>>> writes;
        for (int n = t; n < n_writes; n += 4) writes.push_back({"write " + std::to_string(n), generate(prompt_of(n), "out:" + std::to_string(n))});
        writers.start(to_primary, writes);
    }
    ASSERT_TRUE(wait_for([&] { return writers.done.load() >= 4; }));
    held_request held;  // a long write P is surely still generating when its pause starts
    ASSERT_TRUE(held.send_to(P, long_generate(prompt_of(100), "out:long")));
    ASSERT_EQ(str(cmd(p.get(), {"FAILOVER"}).get()), "OK");
    // A generation finishes on P while its writes are paused for the failover (new requests wait).
    const long long finished = model_stat(P, "requests");
    EXPECT_TRUE(wait_for([&] { return model_stat(P, "requests") > finished || !primary.alive(); }, std::chrono::seconds(5)));
    const std::string state = info_field(P, "replication", "master_failover_state");
    if (!state.empty()) {  // empty: P is gone, which is reported below
        EXPECT_EQ(state, "waiting-for-sync") << "the failover did not last: nothing finished inside its pause";
    }
    const bool switched = wait_for([&] {
        if (!primary.alive() || !replica.alive()) return true;
        return role(R) == "master" && role(P) == "slave" && info_field(P, "replication", "master_link_status") == "up";
    });
    if (!primary.alive() || !replica.alive()) readers.stop = writers.stop = true;  // nothing to wait for
    readers.join();
    writers.join();
    ASSERT_TRUE(primary.alive()) << "the old primary died during the failover";
    ASSERT_TRUE(replica.alive()) << "the promoted replica died during the failover";
    ASSERT_TRUE(switched) << "R: " << role(R) << ", P: " << role(P);

    // Every request succeeded, through retries that followed the usual rules.
    const outcome long_write = held.finish(to_primary);
    EXPECT_TRUE(succeeded("the long write", long_write));
    EXPECT_EQ(long_write.reply, expected_long);
    int write_retries = long_write.retries;
    std::map<std::string, outcome> results = writers.results;
    results.insert(readers.results.begin(), readers.results.end());
    for (const auto & [name, o] : results) {
        EXPECT_TRUE(succeeded(name, o));
        const int n = std::stoi(name.substr(name.rfind(' ') + 1));
        if (o.ok) {
            EXPECT_EQ(o.reply, expected[n]) << name;
        }
        if (name.rfind("write", 0) == 0) write_retries += o.retries;
        // A replica being promoted keeps its clients and their generations.
        if (name.rfind("read on R", 0) == 0) {
            EXPECT_EQ(o.retries, 0) << name << ": " << o.retried[0];
        }
    }
    EXPECT_EQ(results.size(), size_t(n_writes + n_reads));
    EXPECT_GT(write_retries, 0) << "the failover cut off no write: it did not happen under load";
    RecordProperty("write_retries", std::to_string(write_retries));
    RecordProperty("retried_on", retry_reasons(results));

    // Every result is on the new primary, and the old one has the same dataset.
    r = dial(R);
    ASSERT_TRUE(r);
    for (int n = 0; n < n_writes; ++n) {
        const std::string out = str(cmd(r.get(), {"GET", "out:" + std::to_string(n)}).get());
        EXPECT_FALSE(out.empty()) << "out:" << n << " is missing on the new primary";
        EXPECT_EQ(out, str(cmd(r.get(), {"GET", "ref:" + std::to_string(n)}).get())) << "out:" << n;
    }
    EXPECT_EQ(str(cmd(r.get(), {"GET", "out:long"}).get()), str(cmd(r.get(), {"GET", "ref:long"}).get()));
    EXPECT_EQ(cmd(r.get(), {"WAIT", "1", "5000"})->integer, 1);
    EXPECT_EQ(str(once(P, {"DEBUG", "DIGEST"}).get()), str(cmd(r.get(), {"DEBUG", "DIGEST"}).get()));

    // Same registry everywhere, same processes, nothing left blocked.
    EXPECT_EQ(registry_of(R), registry);
    EXPECT_EQ(registry_of(P), registry);
    EXPECT_EQ(info_field(P, "server", "process_id"), std::to_string(p_pid));
    EXPECT_EQ(info_field(R, "server", "process_id"), std::to_string(r_pid));
    for (int port : {P, R}) {
        EXPECT_TRUE(wait_for([&] { return info_field(port, "clients", "blocked_clients") == "0"; })) << port;
    }
}

// The primary is demoted while its generations are still running (as when a partitioned primary
// comes back and is made a replica, or a failover outpaces long generations): they are cut off
// with UNBLOCKED and write nothing there - no STORE, no further STREAM entry - so the demoted
// node's dataset stays the new primary's; their clients retry on the new primary. The safe manual
// order is used: demote first, then promote (what FAILOVER does), so no acknowledged write is
// left behind on the old primary.
TEST(failover, primary_demoted_mid_generation_writes_nothing_and_clients_retry) {
    const std::vector<std::string> fast_sync = {"--repl-diskless-sync-delay", "0"};
    redis_server primary({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "512", "SLOTS", "4"}, fast_sync);
    std::vector<std::string> replica_args = fast_sync;
    replica_args.insert(replica_args.end(), {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
    redis_server replica({}, replica_args);
    const int P = primary.port(), R = replica.port();
    const pid_t p_pid = primary.pid();
    auto p = primary.connect();
    auto r = replica.connect();
    ASSERT_TRUE(wait_model_ready(p.get(), "tiny"));
    ASSERT_TRUE(wait_for([&] { return info_field(R, "replication", "master_link_status") == "up"; }));
    ASSERT_TRUE(wait_model_ready(r.get(), "tiny")) << replica.log();

    // Long generations, so that they are surely still running when P is demoted.
    auto long_generation = [](int n, const std::string & key) { return long_generate(prompt_of(n), key); };
    for (int n = 0; n < 3; ++n) {
        ASSERT_EQ(cmd(p.get(), long_generation(n, "ref:" + std::to_string(n)))->type, REDIS_REPLY_STRING);
    }
    load writers;
    for (int n = 0; n < 3; ++n) {
        writers.start([&](const std::string &) {
            for (int port : {P, R}) {
                if (role(port) == "master") return port;
            }
            return 0;
        }, {{"write " + std::to_string(n), long_generation(n, "long:" + std::to_string(n))}});
    }
    auto streaming = primary.connect();  // a streaming request is not retried: its stream is checked
    std::vector<std::string> stream_args = long_generation(3, "");
    stream_args.insert(stream_args.end(), {"STREAM", "long:stream"});
    send(streaming.get(), stream_args);
    ASSERT_TRUE(wait_for([&] { return model_stat(P, "slots_busy") == 4; }));
    ASSERT_TRUE(wait_for([&] {
        auto n = once(P, {"XLEN", "long:stream"});
        return n && n->integer > 0;
    }));

    ASSERT_EQ(str(cmd(p.get(), {"REPLICAOF", "127.0.0.1", std::to_string(R)}).get()), "OK");
    ASSERT_EQ(str(cmd(r.get(), {"REPLICAOF", "NO", "ONE"}).get()), "OK");
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(streaming.get(), &raw), REDIS_OK);
    EXPECT_TRUE(is_error(reply_ptr(static_cast<redisReply *>(raw)), "UNBLOCKED"));
    // The cut-off generations leave their slots at once.
    EXPECT_TRUE(wait_for([&] { return model_stat(P, "slots_busy") == 0; }, std::chrono::seconds(2)));
    writers.join();
    ASSERT_TRUE(wait_for([&] { return info_field(P, "replication", "master_link_status") == "up"; }));

    for (const auto & [name, o] : writers.results) {
        EXPECT_TRUE(succeeded(name, o));
        ASSERT_FALSE(o.retried.empty()) << name << " was not cut off";
        EXPECT_EQ(o.retried[0].rfind("UNBLOCKED", 0), 0u) << name << ": " << o.retried[0];
    }
    RecordProperty("retried_on", retry_reasons(writers.results));
    for (int n = 0; n < 3; ++n) {
        EXPECT_EQ(str(cmd(r.get(), {"GET", "long:" + std::to_string(n)}).get()), str(cmd(r.get(), {"GET", "ref:" + std::to_string(n)}).get())) << n;
    }
    // What the cut-off stream holds on the new primary is what it held when P was demoted: no
    // entry was added on the demoted node, and none ends it.
    auto last = cmd(r.get(), {"XREVRANGE", "long:stream", "+", "-", "COUNT", "1"});
    ASSERT_EQ(last->elements, 1u);
    EXPECT_EQ(str(last->element[0]->element[1]->element[0]), "text");
    EXPECT_EQ(cmd(r.get(), {"WAIT", "1", "5000"})->integer, 1);
    EXPECT_EQ(str(once(P, {"DEBUG", "DIGEST"}).get()), str(cmd(r.get(), {"DEBUG", "DIGEST"}).get()));
    EXPECT_EQ(info_field(P, "server", "process_id"), std::to_string(p_pid));
    for (int port : {P, R}) {
        EXPECT_TRUE(wait_for([&] { return info_field(port, "clients", "blocked_clients") == "0"; })) << port;
    }
}

// Redis Cluster, 3 primaries + 3 replicas, the model on every node. Writers generate with STORE
// under hash tags spread over the shards, most of them on shard Y; a reader generates TEXT
// (no keys, so the replica itself serves it) on Y's replica X. CLUSTER FAILOVER on X while Y's
// slots are busy and the other primaries, whose votes X needs, are slow: Y pauses its writes,
// its in-flight generations finish inside the pause, then X takes the shard over. Clients follow
// MOVED and refresh the slot map on other errors. Nothing may be lost on any shard.
TEST(failover, cluster_replica_takes_over_a_shard_during_load_loses_nothing) {
    std::vector<std::unique_ptr<redis_server>> nodes;
    for (int i = 0; i < 6; ++i) {
        nodes.push_back(std::make_unique<redis_server>(
            std::vector<std::string>{"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "512", "SLOTS", "4"},
            std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                     "--repl-diskless-sync-delay", "0"}));
    }
    std::map<int, pid_t> pids;
    for (auto & n : nodes) pids[n->port()] = n->pid();
    auto node_at = [&](int port) -> redis_server & {
        return **std::find_if(nodes.begin(), nodes.end(), [&](auto & n) { return n->port() == port; });
    };
    std::string create = redis_cli() + " --cluster create";
    for (auto & n : nodes) create += " 127.0.0.1:" + std::to_string(n->port());
    create += " --cluster-replicas 1 --cluster-yes >/dev/null 2>&1";
    ASSERT_EQ(std::system(create.c_str()), 0) << create;

    // Topology: which replica follows which primary, once every node knows it (a manual
    // failover needs the primary to know its replica).
    std::map<int, int> replica_of_primary;
    ASSERT_TRUE(wait_for([&] {
        replica_of_primary.clear();
        for (auto & n : nodes) {
            if (!cluster_ok(n->port()) || cluster_roles(n->port()) != std::pair<int, int>{3, 3}) return false;
            if (role(n->port()) != "slave") continue;
            if (info_field(n->port(), "replication", "master_link_status") != "up") return false;
            replica_of_primary[std::stoi(info_field(n->port(), "replication", "master_port"))] = n->port();
        }
        return replica_of_primary.size() == 3;
    }));
    for (auto & n : nodes) {
        auto c = n->connect();
        ASSERT_TRUE(wait_model_ready(c.get(), "tiny")) << n->log();
    }
    const std::string registry = registry_of(nodes[0]->port());
    for (auto & n : nodes) ASSERT_EQ(registry_of(n->port()), registry);

    // The slot map as a client keeps it: from CLUSTER SLOTS, fixed up by MOVED.
    std::mutex map_mu;
    std::vector<int> owner(16384, 0);
    auto refresh = [&] {
        for (auto & n : nodes) {
            auto s = once(n->port(), {"CLUSTER", "SLOTS"});
            if (!s || s->type != REDIS_REPLY_ARRAY) continue;
            std::lock_guard lk(map_mu);
            for (size_t i = 0; i < s->elements; ++i) {
                const redisReply * range = s->element[i];
                for (long long slot = range->element[0]->integer; slot <= range->element[1]->integer; ++slot) {
                    owner[size_t(slot)] = int(range->element[2]->element[1]->integer);
                }
            }
            return;
        }
    };
    refresh();
    std::map<std::string, int> slots;  // computed once, by the server
    auto slot_of = [&](const std::string & key) {
        if (!slots.count(key)) slots[key] = int(once(nodes[0]->port(), {"CLUSTER", "KEYSLOT", key})->integer);
        return slots.at(key);
    };
    auto router = [&](int slot) {
        return [&, slot](const std::string & err) {
            if (err.rfind("MOVED", 0) == 0) {
                const int port = std::atoi(err.substr(err.rfind(':') + 1).c_str());
                std::lock_guard lk(map_mu);
                owner[size_t(slot)] = port;
                return port;
            }
            if (!err.empty()) refresh();
            std::lock_guard lk(map_mu);
            return owner[size_t(slot)];
        };
    };

    // Hash tags: 16 on shard Y (the owner of {w0}) and one more for a long write, 8 on the others.
    const int Y = owner[size_t(slot_of("{w0}"))];
    const int X = replica_of_primary.at(Y);
    std::vector<std::string> y_tags, other_tags;
    for (int i = 0; y_tags.size() < 17 || other_tags.size() < 8; ++i) {
        const std::string tag = "{w" + std::to_string(i) + "}";
        auto & list = owner[size_t(slot_of(tag))] == Y ? y_tags : other_tags;
        if (list.size() < (&list == &y_tags ? 17u : 8u)) list.push_back(tag);
    }
    const std::string long_tag = y_tags.back();
    y_tags.pop_back();
    std::vector<std::string> tags = y_tags;
    tags.insert(tags.end(), other_tags.begin(), other_tags.end());
    std::map<std::string, std::string> expected;  // by tag
    for (size_t n = 0; n < tags.size(); ++n) {
        retrying_client c(router(slot_of(tags[n])));
        std::atomic<bool> never{false};
        outcome o = c.run(generate(prompt_of(int(n)), tags[n] + "ref"), clock_type::now() + std::chrono::seconds(10), never);
        ASSERT_TRUE(succeeded(tags[n], o));
        expected[tags[n]] = o.reply;
    }
    std::string expected_long;
    {
        std::atomic<bool> never{false};
        outcome o = retrying_client(router(slot_of(long_tag)))
                        .run(long_generate(prompt_of(100), long_tag + "ref"), clock_type::now() + std::chrono::seconds(10), never);
        ASSERT_TRUE(succeeded(long_tag, o));
        expected_long = o.reply;
    }

    load others, on_y, readers;
    auto start_writers = [&](load & l, const std::vector<std::string> & list, size_t first, int threads) {
        for (int t = 0; t < threads; ++t) {
            std::vector<std::pair<std::string, std::vector<std::string>>> writes;
            for (size_t i = size_t(t); i < list.size(); i += size_t(threads)) {
                writes.push_back({list[i], generate(prompt_of(int(first + i)), list[i] + "out")});
            }
            // One connection per request: each is routed by its own slot.
            l.threads.emplace_back([&, writes, into = &l] {
                const auto deadline = clock_type::now() + std::chrono::seconds(60);
                for (const auto & [tag, args] : writes) {
                    retrying_client client(router(slots.at(tag)));
                    outcome o = client.run(args, deadline, into->stop);
                    {
                        std::lock_guard lk(into->mu);
                        into->results[tag] = std::move(o);
                    }
                    ++into->done;
                }
            });
        }
    };
    start_writers(others, other_tags, y_tags.size(), 2);
    {
        std::vector<std::pair<std::string, std::vector<std::string>>> reads;
        for (int n = 0; n < 8; ++n) reads.push_back({"read on X " + tags[size_t(n)], generate(prompt_of(n))});
        readers.start([X](const std::string &) { return X; }, reads);
    }
    // The other primaries go to sleep, as slow voters would; then Y's writes start, and X takes
    // over in their middle. Y's pause lasts until X has the votes, so Y's in-flight generations
    // finish inside it.
    std::vector<client_ptr> sleeping;
    for (const auto & [primary, replica] : replica_of_primary) {
        if (primary == Y) continue;
        sleeping.push_back(put_to_sleep(primary, "3"));
        ASSERT_TRUE(sleeping.back()) << "primary " << primary << " did not go to sleep";
    }
    start_writers(on_y, y_tags, 0, 4);
    ASSERT_TRUE(wait_for([&] { return on_y.done.load() >= 4; }));
    held_request held;  // a long write Y is surely still generating when its pause starts
    ASSERT_TRUE(held.send_to(Y, long_generate(prompt_of(100), long_tag + "out")));
    ASSERT_EQ(str(once(X, {"CLUSTER", "FAILOVER"}).get()), "OK");
    // Y pauses writes once X's request reaches it: a probe write under Y's tag stays blocked.
    client_ptr probe;
    ASSERT_TRUE(wait_for([&] {
        probe = dial(Y);
        if (!probe) return false;
        const long long id = cmd(probe.get(), {"CLIENT", "ID"})->integer;
        send(probe.get(), {"SET", "{w0}probe", "1"});
        for (;;) {
            const std::string c = str(once(Y, {"CLIENT", "LIST", "ID", std::to_string(id)}).get());
            if (c.find("cmd=set") != std::string::npos && c.find("flags=b") != std::string::npos) return true;
            pollfd answered{probe->fd, POLLIN, 0};
            if (poll(&answered, 1, 1) != 0) return false;  // answered (or gone): not paused yet
        }
    }, std::chrono::seconds(5))) << "Y never paused its writes";
    // A generation finishes on Y while its writes are paused for the failover (new requests wait).
    const long long finished = model_stat(Y, "requests");
    EXPECT_TRUE(wait_for([&] { return model_stat(Y, "requests") > finished || !node_at(Y).alive(); }, std::chrono::seconds(5)));
    const std::string y_role = role(Y);
    if (!y_role.empty()) {  // empty: Y is gone, which is reported below
        EXPECT_EQ(y_role, "master") << "the failover did not last: nothing finished inside its pause";
    }
    auto all_alive = [&] {
        for (auto & n : nodes) {
            if (!n->alive()) return false;
        }
        return true;
    };
    const bool switched = wait_for([&] {
        if (!all_alive()) return true;
        if (role(X) != "master" || role(Y) != "slave") return false;
        if (info_field(Y, "replication", "master_link_status") != "up") return false;
        for (auto & n : nodes) {
            if (!cluster_ok(n->port())) return false;
        }
        return true;
    });
    if (!all_alive()) others.stop = on_y.stop = readers.stop = true;
    for (load * l : {&others, &on_y, &readers}) l->join();
    probe.reset();
    for (auto & n : nodes) ASSERT_TRUE(n->alive()) << "node " << n->port() << " died during the failover";
    ASSERT_TRUE(switched) << "X: " << role(X) << ", Y: " << role(Y);

    const outcome long_write = held.finish(router(slot_of(long_tag)));
    EXPECT_TRUE(succeeded("the long write", long_write));
    EXPECT_EQ(long_write.reply, expected_long);
    int y_retries = long_write.retries;
    std::map<std::string, outcome> results = on_y.results;
    results.insert(others.results.begin(), others.results.end());
    results.insert(readers.results.begin(), readers.results.end());
    for (const auto & [name, o] : results) {
        EXPECT_TRUE(succeeded(name, o));
        if (name.rfind("read on X ", 0) == 0) {
            if (o.ok) {
                EXPECT_EQ(o.reply, expected[name.substr(10)]) << name;
            }
            EXPECT_EQ(o.retries, 0) << name << ": " << o.retried[0];
            continue;
        }
        if (o.ok) {
            EXPECT_EQ(o.reply, expected[name]) << name;
        }
        if (std::find(y_tags.begin(), y_tags.end(), name) != y_tags.end()) y_retries += o.retries;
    }
    EXPECT_EQ(results.size(), tags.size() + 8);
    EXPECT_GT(y_retries, 0) << "the failover cut off no write on shard Y: it did not happen under load";
    RecordProperty("y_retries", std::to_string(y_retries));
    RecordProperty("retried_on", retry_reasons(results));

    // Every result is where the slot map says, equal to the undisturbed run.
    refresh();
    tags.push_back(long_tag);
    for (const auto & tag : tags) {
        const int port = owner[size_t(slot_of(tag))];
        const std::string out = str(once(port, {"GET", tag + "out"}).get());
        EXPECT_FALSE(out.empty()) << tag << "out is missing on " << port;
        EXPECT_EQ(out, str(once(port, {"GET", tag + "ref"}).get())) << tag;
    }
    // Every shard's replica has its primary's dataset; registry, processes, blocked clients.
    for (auto & n : nodes) {
        const int port = n->port();
        if (role(port) != "master") continue;
        auto c = dial(port);
        ASSERT_TRUE(c);
        EXPECT_EQ(cmd(c.get(), {"WAIT", "1", "5000"})->integer, 1) << port;
        const int rep = [&] {
            auto r = cmd(c.get(), {"ROLE"});
            return std::atoi(str(r->element[2]->element[0]->element[1]).c_str());
        }();
        EXPECT_EQ(str(cmd(c.get(), {"DEBUG", "DIGEST"}).get()), str(once(rep, {"DEBUG", "DIGEST"}).get())) << port << " vs " << rep;
    }
    for (auto & n : nodes) {
        const int port = n->port();
        EXPECT_EQ(registry_of(port), registry) << port;
        EXPECT_EQ(info_field(port, "server", "process_id"), std::to_string(pids[port])) << port;
        EXPECT_TRUE(wait_for([&] { return info_field(port, "clients", "blocked_clients") == "0"; })) << port;
    }
}
