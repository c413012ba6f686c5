// INFER.LOAD / UNLOAD / REPLACE and the model-directory sandbox, against a live server.
#include "support/fixture.h"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace testing_support;

namespace {

const std::string k_path_error = "ERR model path not found or not a regular file inside infer.model-dir ";

// A server with no models, whose model dir also holds a symlink out, a FIFO and a directory.
class models : public ::testing::Test {
protected:
    void SetUp() override {
        server = std::make_unique<redis_server>();
        c = server->connect();
        ASSERT_TRUE(c);
        const std::string d = model_dir();
        unlink((d + "/link-out.gguf").c_str());
        symlink("/etc/passwd", (d + "/link-out.gguf").c_str());
        unlink((d + "/fifo.gguf").c_str());
        mkfifo((d + "/fifo.gguf").c_str(), 0644);
        mkdir((d + "/adir.gguf").c_str(), 0755);
        std::ofstream(d + "/garbage.gguf") << "this is not a gguf file";
    }
    void TearDown() override {
        ASSERT_TRUE(server->alive()) << server->log();
        auto p = cmd(c.get(), {"PING"});
        ASSERT_EQ(p->type, REDIS_REPLY_STATUS);
    }
    std::unique_ptr<redis_server> server;
    client_ptr c;
};

}  // namespace

TEST_F(models, load_generate_unload) {
    auto r = cmd(c.get(), {"INFER.LOAD", "m1", "tiny-q8_0.gguf", "CTX", "256", "SLOTS", "2", "BATCH", "128", "THREADS", "1"});
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << (r->str ? r->str : "");
    auto m = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(m->elements, 1u);
    EXPECT_EQ(map_get(m->element[0], "context")->integer, 256);
    EXPECT_EQ(map_get(m->element[0], "slots")->integer, 2);
    EXPECT_EQ(map_get(m->element[0], "batch")->integer, 128);
    EXPECT_EQ(map_get(m->element[0], "threads")->integer, 1);
    auto g = cmd(c.get(), {"INFER.GENERATE", "m1", "TEXT", "hi", "MAX_TOKENS", "4"});
    EXPECT_EQ(g->type, REDIS_REPLY_STRING);
    EXPECT_EQ(cmd(c.get(), {"INFER.UNLOAD", "m1"})->type, REDIS_REPLY_STATUS);
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.GENERATE", "m1", "TEXT", "hi"}), "ERR no such model 'm1'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.UNLOAD", "m1"}), "ERR no such model 'm1'"));
}

// THREADS above the machine's hardware threads made each decode step take seconds (threads
// spin-waiting for a core), so TIMEOUT fired late; it is reduced, not refused, so a registry
// saved on a bigger machine still loads here.
TEST_F(models, threads_above_the_hardware_threads_are_reduced) {
    auto r = cmd(c.get(), {"INFER.LOAD", "m1", "tiny-q8_0.gguf", "CTX", "64", "SLOTS", "1", "THREADS", "512"});
    ASSERT_EQ(r->type, REDIS_REPLY_STATUS) << (r->str ? r->str : "");
    auto m = cmd(c.get(), {"INFER.MODELS"});
    ASSERT_EQ(m->elements, 1u);
    EXPECT_EQ(map_get(m->element[0], "threads")->integer, std::max(1u, std::thread::hardware_concurrency()));
    EXPECT_EQ(cmd(c.get(), {"INFER.GENERATE", "m1", "TEXT", "hi", "MAX_TOKENS", "4"})->type, REDIS_REPLY_STRING);
    EXPECT_NE(server->log().find("THREADS 512 is more than the"), std::string::npos);
}

TEST_F(models, sandbox_refuses_everything_outside_with_one_message) {
    for (const std::string p : {"../tiny-q8_0.gguf", "/etc/passwd", "/proc/self/mem", "/dev/zero", "link-out.gguf",
                                "fifo.gguf", "adir.gguf", "missing.gguf", "../../../../../../etc/shadow", ""}) {
        auto r = cmd(c.get(), {"INFER.LOAD", "x", p});
        // The one text names the directory searched (the operator's own setting), never what was found.
        char canonical[PATH_MAX];
        ASSERT_TRUE(realpath(model_dir().c_str(), canonical));
        EXPECT_TRUE(is_error_exactly(r, k_path_error + "(" + canonical + ") - got '" + p + "'"));
    }
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
}

TEST_F(models, malformed_gguf_is_an_error_not_a_crash) {
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "g", "garbage.gguf"}),
                                 "ERR cannot load model 'g' - llama.cpp could not load the file (see the server log)"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
}

TEST_F(models, option_errors) {
    // Combinations llama.cpp would abort the process on are refused at load.
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "BATCH", "16", "SLOTS", "17"}),
                                 "ERR cannot load model 'x' - SLOTS must not exceed BATCH - got SLOTS 17, BATCH 16"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "e", "bert-tiny-f16.gguf", "EMBEDDING", "SLOTS", "3", "BATCH", "2048"}),
                                 "ERR cannot load model 'e' - BATCH must be a multiple of SLOTS for an embedding model - got BATCH 2048, SLOTS 3"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "CTX", "abc"}),
                                 "ERR CTX must be an integer - got 'abc', expected 16..1048576"));
    // Oversized (and undersized) CTX and BATCH: refused by the parser, before llama.cpp would
    // try to allocate the KV cache or the batch.
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "CTX", "1048577"}),
                                 "ERR CTX out of range - got 1048577, expected 16..1048576"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "CTX", "4294967312"}),
                                 "ERR CTX out of range - got 4294967312, expected 16..1048576"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "CTX", "15"}),
                                 "ERR CTX out of range - got 15, expected 16..1048576"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "BATCH", "65537"}),
                                 "ERR BATCH out of range - got 65537, expected 1..65536"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "BATCH", "4294967297"}),
                                 "ERR BATCH out of range - got 4294967297, expected 1..65536"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "BATCH", "0"}),
                                 "ERR BATCH out of range - got 0, expected 1..65536"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "GPU_LAYERS", "1025"}),
                                 "ERR GPU_LAYERS out of range - got 1025, expected -1..1024"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "SLOTS", "0"}),
                                 "ERR SLOTS out of range - got 0, expected 1..256"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "SLOTS", "100000"}),
                                 "ERR SLOTS out of range - got 100000, expected 1..256"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "GPU_LAYERS", "-2"}),
                                 "ERR GPU_LAYERS out of range - got -2, expected -1..1024"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "THREADS", "99999"}),
                                 "ERR THREADS out of range - got 99999, expected 1..512"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "CTX"}), "ERR missing value for CTX"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x", "tiny-q8_0.gguf", "FAST"}),
                                 "ERR unknown option 'FAST' for INFER.LOAD"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "bad name", "tiny-q8_0.gguf"}),
                                 "ERR invalid model name - got 'bad name', expected 1-64 characters of letters, digits, '_', '-', '.'"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "x"}), "ERR wrong number of arguments for 'infer.load' command"));
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.UNLOAD"}), "ERR wrong number of arguments for 'infer.unload' command"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
}

TEST_F(models, second_load_needs_replace) {
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "128"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf"}),
                                 "ERR model 'm' is already loaded - use REPLACE to swap it"));
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "256", "REPLACE"})->type, REDIS_REPLY_STATUS);
    EXPECT_EQ(map_get(cmd(c.get(), {"INFER.MODELS"})->element[0], "context")->integer, 256);
}

// REPLACE while a generation runs: the running request finishes on the old model.
TEST_F(models, replace_lets_in_flight_requests_finish) {
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "4096", "SLOTS", "1"})->type, REDIS_REPLY_STATUS);
    auto gen = server->connect();
    redisAppendCommand(gen.get(), "INFER.GENERATE m TEXT hello MAX_TOKENS 1500 TEMPERATURE 0 WITHMETA");
    redisBufferWrite(gen.get(), nullptr);
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "m"}).get(), "slots_busy")->integer == 1; }));
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "512", "REPLACE"})->type, REDIS_REPLY_STATUS);
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(gen.get(), &raw), REDIS_OK);
    reply_ptr r(static_cast<redisReply *>(raw));
    ASSERT_EQ(r->type, REDIS_REPLY_ARRAY) << (r->str ? r->str : "");
    EXPECT_NE(std::string(map_get(r.get(), "finish_reason")->str), "cancelled");
    EXPECT_EQ(map_get(cmd(c.get(), {"INFER.MODELS"})->element[0], "context")->integer, 512);
}

// UNLOAD while a generation runs and another waits: both get a clear error, memory is freed.
TEST_F(models, unload_mid_generation_errors_running_and_queued) {
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "4096", "SLOTS", "1"})->type, REDIS_REPLY_STATUS);
    auto a = server->connect(), b = server->connect();
    redisAppendCommand(a.get(), "INFER.GENERATE m TEXT hello MAX_TOKENS 4000 TEMPERATURE 0");
    redisBufferWrite(a.get(), nullptr);
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "m"}).get(), "slots_busy")->integer == 1; }));
    redisAppendCommand(b.get(), "INFER.GENERATE m TEXT hello MAX_TOKENS 10");
    redisBufferWrite(b.get(), nullptr);
    ASSERT_TRUE(wait_for([&] { return map_get(cmd(c.get(), {"INFER.INFO", "m"}).get(), "queue_depth")->integer == 1; }));
    ASSERT_EQ(cmd(c.get(), {"INFER.UNLOAD", "m"})->type, REDIS_REPLY_STATUS);
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(a.get(), &raw), REDIS_OK);
    EXPECT_TRUE(is_error_exactly(reply_ptr(static_cast<redisReply *>(raw)), "ERR model 'm' was unloaded during generation"));
    ASSERT_EQ(redisGetReply(b.get(), &raw), REDIS_OK);
    EXPECT_TRUE(is_error_exactly(reply_ptr(static_cast<redisReply *>(raw)), "ERR model 'm' was unloaded"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
}

// The weights are read into memory, not mmapped: truncating the file after load must not crash
// Redis (with mmap it would SIGBUS on the next page fault).
TEST_F(models, model_file_truncated_after_load_keeps_working) {
    const std::string copy = model_dir() + "/truncate-me.gguf";
    ASSERT_EQ(system(("cp '" + model_dir() + "/tiny-q8_0.gguf' '" + copy + "'").c_str()), 0);
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "t", "truncate-me.gguf", "CTX", "128"})->type, REDIS_REPLY_STATUS);
    const std::string before = cmd(c.get(), {"INFER.GENERATE", "t", "TEXT", "hello", "MAX_TOKENS", "16", "TEMPERATURE", "0"})->str;
    ASSERT_EQ(truncate(copy.c_str(), 1000), 0);
    auto after = cmd(c.get(), {"INFER.GENERATE", "t", "TEXT", "hello", "MAX_TOKENS", "16", "TEMPERATURE", "0", "NO_CACHE"});
    ASSERT_TRUE(server->alive()) << server->log();
    ASSERT_EQ(after->type, REDIS_REPLY_STRING);
    EXPECT_EQ(std::string(after->str), before);
    EXPECT_TRUE(is_error_exactly(cmd(c.get(), {"INFER.LOAD", "t2", "truncate-me.gguf"}),
                                 "ERR cannot load model 't2' - llama.cpp could not load the file (see the server log)"));
    unlink(copy.c_str());
}

// The same for a file replaced after load by another GGUF (the bert embedding model), in the two
// ways a deploy replaces one: written over in place (the same inode, so an mmap of the old
// weights would now map the new bytes) and renamed over (a new inode). The loaded model keeps
// answering from the weights it read, with the same greedy text as before; a new LOAD of the
// path reads the new file (arch bert, not qwen3), so the replacement really happened.
TEST_F(models, model_file_replaced_after_load_keeps_working) {
    const std::string dir = model_dir(), path = dir + "/replace-me.gguf", staged = dir + "/replace-me.gguf.new";
    const auto copy = [](const std::string & from, const std::string & to) {
        return system(("cp '" + from + "' '" + to + "'").c_str()) == 0;
    };
    const auto arch_of = [&](const std::string & name) {
        auto ms = cmd(c.get(), {"INFER.MODELS"});
        for (size_t i = 0; ms && ms->type == REDIS_REPLY_ARRAY && i < ms->elements; ++i) {
            if (str(map_get(ms->element[i], "name")) == name) return str(map_get(ms->element[i], "arch"));
        }
        return std::string("<no model '" + name + "'>");
    };
    const std::vector<std::string> gen = {"INFER.GENERATE", "r", "TEXT", "hello", "MAX_TOKENS", "16", "TEMPERATURE", "0", "NO_CACHE"};
    for (const bool in_place : {true, false}) {
        SCOPED_TRACE(in_place ? "written over in place" : "renamed over");
        ASSERT_TRUE(copy(dir + "/tiny-q8_0.gguf", path));
        auto load = cmd(c.get(), {"INFER.LOAD", "r", "replace-me.gguf", "CTX", "128", "REPLACE"});
        ASSERT_EQ(load->type, REDIS_REPLY_STATUS) << str(load.get());
        const std::string before = str(cmd(c.get(), gen).get());
        ASSERT_FALSE(before.empty());
        if (in_place) {
            ASSERT_TRUE(copy(dir + "/bert-tiny-f16.gguf", path));  // cp truncates and rewrites the same inode
        } else {
            ASSERT_TRUE(copy(dir + "/bert-tiny-f16.gguf", staged));
            ASSERT_EQ(rename(staged.c_str(), path.c_str()), 0);
        }
        auto after = cmd(c.get(), gen);
        ASSERT_TRUE(server->alive()) << server->log();
        ASSERT_EQ(after->type, REDIS_REPLY_STRING) << str(after.get());
        EXPECT_EQ(str(after.get()), before);
        EXPECT_EQ(arch_of("r"), "qwen3");
        load = cmd(c.get(), {"INFER.LOAD", "r2", "replace-me.gguf", "EMBEDDING", "REPLACE"});
        ASSERT_EQ(load->type, REDIS_REPLY_STATUS) << str(load.get());
        EXPECT_EQ(arch_of("r2"), "bert");
    }
    unlink(path.c_str());
}

// MODULE UNLOAD is refused, with work in flight or not: the registry's RDB data type pins the
// module (Redis never unloads a module with a data type), and the server keeps serving.
TEST_F(models, module_unload_is_refused_cleanly) {
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "m", "tiny-q8_0.gguf", "CTX", "4096"})->type, REDIS_REPLY_STATUS);
    auto g = server->connect();
    redisAppendCommand(g.get(), "INFER.GENERATE m TEXT hello MAX_TOKENS 200 IGNORE_EOS");
    redisBufferWrite(g.get(), nullptr);
    EXPECT_TRUE(is_error(cmd(c.get(), {"MODULE", "UNLOAD", "infer"}), "ERR Error unloading module"));
    void * raw = nullptr;
    ASSERT_EQ(redisGetReply(g.get(), &raw), REDIS_OK);
    EXPECT_EQ(static_cast<redisReply *>(raw)->type, REDIS_REPLY_STRING);
    freeReplyObject(raw);
    ASSERT_EQ(cmd(c.get(), {"INFER.UNLOAD", "m"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(is_error(cmd(c.get(), {"MODULE", "UNLOAD", "infer"}), "ERR Error unloading module"));
    EXPECT_EQ(cmd(c.get(), {"INFER.INFO"})->type, REDIS_REPLY_ARRAY);
}

TEST(models_startup, module_args_load_models_in_the_background) {
    redis_server s({"MODEL", "a", "tiny-q8_0.gguf", "CTX", "128", "MODEL", "b", "tiny-q8_0.gguf", "SLOTS", "2"});
    auto c = s.connect();
    ASSERT_TRUE(wait_model_ready(c.get(), "a"));
    ASSERT_TRUE(wait_model_ready(c.get(), "b"));
    EXPECT_EQ(map_get(cmd(c.get(), {"INFER.INFO", "b"}).get(), "slots")->integer, 2);
}

TEST(models_startup, bad_module_args_refuse_to_load) {
    redis_server s({"MODEL", "a", "../escape.gguf"}, {}, /*expect_start=*/false);
    EXPECT_FALSE(s.alive());
    EXPECT_NE(s.log().find("bad MODEL module argument"), std::string::npos) << s.log();
}
