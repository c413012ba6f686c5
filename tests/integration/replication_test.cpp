// What a generation writes (STORE, STREAM, chat sessions, TOKENIZE STORE) is replicated like
// the client's own SET/XADD; the inference itself is never propagated, so a replica never
// re-runs a model.
#include "support/fixture.h"

using namespace testing_support;

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

// The registry is part of the RDB: a restart loads the same models with the same options.
TEST(registry, survives_a_restart) {
    redis_server s;
    auto c = s.connect();
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "kept", "tiny-q8_0.gguf", "CTX", "200", "SLOTS", "2", "BATCH", "64"})->type, REDIS_REPLY_STATUS);
    cmd(c.get(), {"SET", "canary", "v"});
    ASSERT_TRUE(s.restart()) << s.log();
    c = s.connect();
    EXPECT_EQ(str(cmd(c.get(), {"GET", "canary"}).get()), "v");
    ASSERT_TRUE(wait_model_ready(c.get(), "kept")) << s.log();
    auto m = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(m->elements, 1u);
    EXPECT_EQ(map_get(m->element[0], "context")->integer, 200);
    EXPECT_EQ(map_get(m->element[0], "slots")->integer, 2);
    EXPECT_EQ(map_get(m->element[0], "batch")->integer, 64);
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "kept", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
}

TEST(registry, embedding_models_stay_embedding_models_across_a_restart) {
    redis_server s;
    auto c = s.connect();
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "emb", "bert-tiny-f16.gguf", "EMBEDDING", "SLOTS", "8"})->type, REDIS_REPLY_STATUS);
    const std::string before = str(cmd(c.get(), {"INFER.EMBED", "emb", "TEXT", "same vector", "STORE", "v1"}).get());
    ASSERT_TRUE(s.restart()) << s.log();
    c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "emb")) << s.log();
    auto m = cmd(c.get(), {"INFER.MODELS"});
    EXPECT_EQ(str(map_get(m->element[0], "kind")), "embedding");
    EXPECT_EQ(map_get(m->element[0], "slots")->integer, 8);
    cmd(c.get(), {"INFER.EMBED", "emb", "TEXT", "same vector", "STORE", "v2"});
    EXPECT_EQ(str(cmd(c.get(), {"GET", "v1"}).get()), str(cmd(c.get(), {"GET", "v2"}).get()));
}

// A replica learns the models at full sync and from propagated LOAD/UNLOAD, serves generation
// (read-only, so reads scale out), and refuses generation that would write.
TEST(registry, replicas_serve_the_same_models) {
    redis_server primary;
    auto p = primary.connect();
    ASSERT_EQ(cmd(p.get(), {"INFER.LOAD", "a", "tiny-q8_0.gguf", "CTX", "256"})->type, REDIS_REPLY_STATUS);
    redis_server replica({}, {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
    auto r = replica.connect();
    ASSERT_TRUE(wait_for([&] { return str(cmd(r.get(), {"INFO", "replication"}).get()).find("master_link_status:up") != std::string::npos; }));
    ASSERT_TRUE(wait_model_ready(r.get(), "a")) << replica.log();  // from the RDB of the full sync

    ASSERT_EQ(cmd(p.get(), {"INFER.LOAD", "b", "tiny-q8_0.gguf", "CTX", "128"})->type, REDIS_REPLY_STATUS);
    ASSERT_TRUE(wait_model_ready(r.get(), "b")) << replica.log();  // propagated
    const std::vector<std::string> gen = {"INFER.GENERATE", "a", "TEXT", "The quick brown fox", "MAX_TOKENS", "12", "TEMPERATURE", "0"};
    EXPECT_EQ(str(cmd(r.get(), gen).get()), str(cmd(p.get(), gen).get()));
    EXPECT_TRUE(is_error(cmd(r.get(), {"INFER.GENERATE", "a", "TEXT", "x", "MAX_TOKENS", "4", "STORE", "k"}), "READONLY"));
    EXPECT_TRUE(is_error(cmd(r.get(), {"INFER.CHAT", "a", "s", "USER", "x", "MAX_TOKENS", "4"}), "READONLY"));
    EXPECT_TRUE(is_error(cmd(r.get(), {"INFER.TOKENIZE", "a", "x", "STORE", "k"}), "READONLY"));

    ASSERT_EQ(cmd(p.get(), {"INFER.UNLOAD", "b"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(wait_for([&] { return is_error(cmd(r.get(), {"INFER.INFO", "b"}), "ERR no such model"); }));
    EXPECT_STREQ(map_get(cmd(r.get(), {"INFER.INFO", "a"}).get(), "state")->str, "ready");
}
