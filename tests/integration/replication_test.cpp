// What a generation writes (STORE, STREAM, chat sessions, TOKENIZE STORE) is replicated like
// the client's own SET/XADD; the inference itself is never propagated, so a replica never
// re-runs a model.
#include "support/fixture.h"

using namespace testing_support;

namespace {
std::string str(const redisReply * r) { return r && r->str ? std::string(r->str, r->len) : ""; }
}

TEST(replication, writes_reach_the_replica_and_inference_does_not) {
    redis_server primary({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "256"});
    redis_server replica({}, {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
    auto p = primary.connect();
    auto r = replica.connect();
    ASSERT_TRUE(wait_model_ready(p.get(), "tiny"));
    ASSERT_TRUE(wait_for([&] { return str(cmd(r.get(), {"INFO", "replication"}).get()).find("master_link_status:up") != std::string::npos; }));

    cmd(p.get(), {"SET", "canary", "data"});
    ASSERT_EQ(cmd(p.get(), {"INFER.TOKENIZE", "tiny", "hello there", "STORE", "rep:prompt"})->type, REDIS_REPLY_INTEGER);
    auto g = cmd(p.get(), {"INFER.GENERATE", "tiny", "PROMPT", "rep:prompt", "MAX_TOKENS", "12", "TEMPERATURE", "0",
                           "STORE", "rep:out", "STREAM", "rep:stream"});
    ASSERT_EQ(g->type, REDIS_REPLY_STRING);
    ASSERT_EQ(cmd(p.get(), {"INFER.CHAT", "tiny", "rep:chat", "USER", "hi", "MAX_TOKENS", "6"})->type, REDIS_REPLY_STRING);
    auto w = cmd(p.get(), {"WAIT", "1", "5000"});
    ASSERT_EQ(w->integer, 1);

    for (const char * k : {"rep:prompt", "rep:out", "rep:chat", "canary"}) {
        EXPECT_EQ(str(cmd(r.get(), {"GET", k}).get()), str(cmd(p.get(), {"GET", k}).get())) << k;
    }
    EXPECT_EQ(cmd(r.get(), {"XLEN", "rep:stream"})->integer, cmd(p.get(), {"XLEN", "rep:stream"})->integer);
    EXPECT_EQ(str(cmd(r.get(), {"DEBUG", "DIGEST"}).get()), str(cmd(p.get(), {"DEBUG", "DIGEST"}).get()));
    const std::string stats = str(cmd(r.get(), {"INFO", "commandstats"}).get());
    EXPECT_EQ(stats.find("cmdstat_infer."), std::string::npos) << stats;  // no INFER.* ran on the replica
    EXPECT_NE(stats.find("cmdstat_xadd"), std::string::npos) << stats;
}
