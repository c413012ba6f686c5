// The model registry on a replica follows its primary (issue 18, defect 8). INFER.LOAD and
// INFER.UNLOAD from the replica's own clients are refused with Redis's READONLY error - on a
// writable replica (replica-read-only no) too, since a local change would diverge from the
// primary's registry - while those arriving over the replication stream are applied. A replica
// promoted with REPLICAOF NO ONE takes them again. Before, an UNLOAD sent to a replica was
// obeyed, and after a failover the new primary lacked a model the old one had.
#include "support/fixture.h"

using namespace testing_support;

namespace {

const char * k_readonly = "READONLY You can't write against a read only replica.";

bool link_up(redisContext * replica) {
    return wait_for([&] {
        return str(cmd(replica, {"INFO", "replication"}).get()).find("master_link_status:up") != std::string::npos;
    });
}

// Model names in INFER.MODELS, with their state: "a:ready b:loading ".
std::string registry_of(redisContext * c) {
    auto m = cmd(c, {"INFER.MODELS"});
    std::string s;
    for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i < m->elements; ++i) {
        s += str(map_get(m->element[i], "name")) + ":" + str(map_get(m->element[i], "state")) + " ";
    }
    return s;
}

// A primary with "tiny" loaded and a replica of it (extra: the replica's own arguments) that
// has it ready from the full sync.
struct pair_of_nodes {
    explicit pair_of_nodes(std::vector<std::string> replica_extra = {})
        : primary({"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "128"}, {"--repl-diskless-sync-delay", "0"}) {
        replica_extra.insert(replica_extra.begin(), {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
        replica = std::make_unique<redis_server>(std::vector<std::string>{}, replica_extra);
        p = primary.connect();
        r = replica->connect();
    }
    redis_server primary;
    std::unique_ptr<redis_server> replica;
    client_ptr p, r;
};

}  // namespace

// A read-only replica refuses LOAD and UNLOAD from its clients with Redis's own text (before the
// arguments are read, as Redis refuses a SET), and keeps the model; an UNLOAD from its primary
// still removes it.
TEST(replica_registry, replica_refuses_load_and_unload_and_follows_its_primary) {
    pair_of_nodes n;
    ASSERT_TRUE(wait_model_ready(n.p.get(), "tiny"));
    ASSERT_TRUE(link_up(n.r.get()));
    ASSERT_TRUE(wait_model_ready(n.r.get(), "tiny")) << n.replica->log();

    auto load = cmd(n.r.get(), {"INFER.LOAD", "mine", "tiny-q8_0.gguf", "CTX", "128"});
    EXPECT_TRUE(is_error(load, k_readonly)) << str(load.get());
    EXPECT_EQ(str(load.get()), k_readonly);
    EXPECT_TRUE(is_error(cmd(n.r.get(), {"INFER.LOAD", "tiny", "tiny-q8_0.gguf", "REPLACE"}), k_readonly));
    EXPECT_TRUE(is_error(cmd(n.r.get(), {"INFER.LOAD", "x", "no-such-file.gguf", "CTX", "1"}), k_readonly));
    auto unload = cmd(n.r.get(), {"INFER.UNLOAD", "tiny"});
    EXPECT_EQ(str(unload.get()), k_readonly);
    EXPECT_TRUE(is_error(cmd(n.r.get(), {"INFER.UNLOAD", "no-such-model"}), k_readonly));
    EXPECT_TRUE(is_error(cmd(n.r.get(), {"INFER.UNLOAD"}), "ERR wrong number of arguments"));
    EXPECT_EQ(registry_of(n.r.get()), "tiny:ready ");
    EXPECT_EQ(cmd(n.r.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "2"})->type, REDIS_REPLY_STRING);

    ASSERT_EQ(str(cmd(n.p.get(), {"INFER.UNLOAD", "tiny"}).get()), "OK");
    EXPECT_TRUE(wait_for([&] { return registry_of(n.r.get()).empty(); })) << registry_of(n.r.get());
    EXPECT_TRUE(n.primary.alive() && n.replica->alive());
}

// replica-read-only no lets clients write keys on the replica, but not change its registry: a
// model unloaded there would come back at the next full sync, one loaded there would be missing
// on the primary and its other replicas.
TEST(replica_registry, writable_replica_refuses_load_and_unload_too) {
    pair_of_nodes n({"--replica-read-only", "no"});
    ASSERT_TRUE(wait_model_ready(n.p.get(), "tiny"));
    ASSERT_TRUE(link_up(n.r.get()));
    ASSERT_TRUE(wait_model_ready(n.r.get(), "tiny")) << n.replica->log();
    EXPECT_EQ(str(cmd(n.r.get(), {"SET", "local", "v"}).get()), "OK");  // writable indeed
    EXPECT_EQ(str(cmd(n.r.get(), {"INFER.LOAD", "mine", "tiny-q8_0.gguf"}).get()), k_readonly);
    EXPECT_EQ(str(cmd(n.r.get(), {"INFER.UNLOAD", "tiny"}).get()), k_readonly);
    EXPECT_EQ(registry_of(n.r.get()), "tiny:ready ");
}

// After a promotion the node is a primary: it takes LOAD and UNLOAD from its clients again, and
// its models are the ones it followed.
TEST(replica_registry, promoted_replica_accepts_load_and_unload) {
    pair_of_nodes n;
    ASSERT_TRUE(wait_model_ready(n.p.get(), "tiny"));
    ASSERT_TRUE(link_up(n.r.get()));
    ASSERT_TRUE(wait_model_ready(n.r.get(), "tiny")) << n.replica->log();
    ASSERT_EQ(str(cmd(n.r.get(), {"INFER.UNLOAD", "tiny"}).get()), k_readonly);

    ASSERT_EQ(str(cmd(n.r.get(), {"REPLICAOF", "NO", "ONE"}).get()), "OK");
    EXPECT_EQ(registry_of(n.r.get()), "tiny:ready ");
    EXPECT_EQ(str(cmd(n.r.get(), {"INFER.LOAD", "second", "tiny-q8_0.gguf", "CTX", "128"}).get()), "OK");
    EXPECT_EQ(registry_of(n.r.get()), "second:ready tiny:ready ");
    EXPECT_EQ(str(cmd(n.r.get(), {"INFER.UNLOAD", "tiny"}).get()), "OK");
    EXPECT_EQ(registry_of(n.r.get()), "second:ready ");
}

// A LOAD cancelled on the primary by an UNLOAD reaches the replica as the same two commands: the
// replica cancels its load too, instead of keeping a model its primary does not have (before,
// the replica ignored an UNLOAD of a model it was still loading).
TEST(replica_registry, load_cancelled_on_the_primary_is_cancelled_on_the_replica) {
    pair_of_nodes n;
    ASSERT_TRUE(wait_model_ready(n.p.get(), "tiny"));
    ASSERT_TRUE(link_up(n.r.get()));
    ASSERT_TRUE(wait_model_ready(n.r.get(), "tiny")) << n.replica->log();

    auto loader = n.primary.connect();
    send(loader.get(), {"INFER.LOAD", "brief", "tiny-q8_0.gguf", "CTX", "128"});
    ASSERT_TRUE(wait_for([&] { return registry_of(n.p.get()).find("brief:loading") != std::string::npos; }));
    ASSERT_EQ(str(cmd(n.p.get(), {"INFER.UNLOAD", "brief"}).get()), "OK");
    EXPECT_TRUE(is_error(receive(loader.get()), "ERR model 'brief' was unloaded before its load finished"));
    // Loads and unloads run in order on one loader thread: once a later load is ready on the
    // replica, whatever it did with "brief" is done.
    ASSERT_EQ(str(cmd(n.p.get(), {"INFER.LOAD", "later", "tiny-q8_0.gguf", "CTX", "128"}).get()), "OK");
    ASSERT_TRUE(wait_model_ready(n.r.get(), "later")) << n.replica->log();
    EXPECT_EQ(registry_of(n.p.get()), "later:ready tiny:ready ");
    EXPECT_EQ(registry_of(n.r.get()), "later:ready tiny:ready ");
    EXPECT_EQ(n.replica->log().find(" failed: "), std::string::npos) << n.replica->log();
}
