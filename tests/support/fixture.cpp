// See fixture.h.
#include "support/fixture.h"

namespace testing_support {

std::unique_ptr<redis_server> live::server;

bool wait_model_ready(redisContext * c, const std::string & name) {
    return wait_for([&] {
        auto r = cmd(c, {"INFER.INFO", name});
        const redisReply * st = map_get(r.get(), "state");
        return st && std::string(st->str, st->len) == "ready";
    });
}

::testing::AssertionResult is_error(const reply_ptr & r, const std::string & prefix) {
    if (!r) return ::testing::AssertionFailure() << "no reply";
    if (r->type != REDIS_REPLY_ERROR) return ::testing::AssertionFailure() << "not an error reply (type " << r->type << ")";
    const std::string text(r->str, r->len);
    if (text.rfind(prefix, 0) != 0) return ::testing::AssertionFailure() << "error is '" << text << "', expected prefix '" << prefix << "'";
    return ::testing::AssertionSuccess();
}

void live::SetUpTestSuite() {
    server = std::make_unique<redis_server>(std::vector<std::string>{"MODEL", "tiny", "tiny-q8_0.gguf", "CTX", "512", "SLOTS", "4"});
    auto c = server->connect();
    ASSERT_TRUE(c);
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
}

void live::TearDownTestSuite() { server.reset(); }

void live::SetUp() {
    ASSERT_TRUE(server && server->alive());
    c = server->connect();
    ASSERT_TRUE(c);
}

void live::TearDown() {
    // Every test must leave the server healthy: alive, answering, nothing left blocked.
    ASSERT_TRUE(server->alive()) << server->log();
    auto probe = server->connect();
    ASSERT_TRUE(probe);
    EXPECT_TRUE(wait_for([&] {
        auto r = cmd(probe.get(), {"INFO", "clients"});
        return r && r->type == REDIS_REPLY_STRING && std::string(r->str, r->len).find("blocked_clients:0") != std::string::npos;
    }, std::chrono::seconds(20))) << "a client stayed blocked";
}

}  // namespace testing_support
