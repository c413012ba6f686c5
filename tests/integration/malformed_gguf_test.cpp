// Malformed GGUF files load with an error, never a crash: the tiny model truncated at many
// points (header, metadata, tensor infos, data) and with bytes flipped in its metadata.
#include "support/fixture.h"

#include <fstream>
#include <random>
#include <unistd.h>

using namespace testing_support;

namespace {
std::string read_all(const std::string & p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_all(const std::string & p, const std::string & d) { std::ofstream(p, std::ios::binary) << d; }
}  // namespace

TEST(malformed_gguf, truncated_and_corrupted_files_are_errors) {
    redis_server s;
    auto c = s.connect();
    const std::string good = read_all(model_dir() + "/tiny-q8_0.gguf");
    ASSERT_GT(good.size(), 1000000u);
    const std::string bad = model_dir() + "/malformed.gguf";
    std::vector<std::string> variants;
    for (size_t cut : {size_t(0), size_t(3), size_t(4), size_t(8), size_t(16), size_t(24), size_t(100), size_t(4096),
                       size_t(100000), good.size() / 3, good.size() / 2, good.size() - 4096, good.size() - 1}) {
        variants.push_back(good.substr(0, cut));
    }
    std::mt19937 rng(11);
    for (int i = 0; i < 24; ++i) {  // flips in the header and metadata (the first 64 KiB)
        std::string v = good;
        for (int k = 0; k < 4; ++k) v[rng() % 65536] ^= char(1 << (rng() % 8));
        variants.push_back(v);
    }
    int errors = 0, loaded = 0;
    for (size_t i = 0; i < variants.size(); ++i) {
        write_all(bad, variants[i]);
        auto r = cmd(c.get(), {"INFER.LOAD", "m" + std::to_string(i), "malformed.gguf", "CTX", "64", "SLOTS", "1"});
        ASSERT_TRUE(s.alive()) << "variant " << i << " crashed the server\n" << s.log();
        ASSERT_TRUE(r) << "variant " << i;
        if (r->type == REDIS_REPLY_ERROR) {
            ++errors;
            EXPECT_EQ(std::string(r->str).rfind("ERR cannot load model", 0), 0u) << r->str;
        } else {
            ++loaded;  // a flip in an unimportant byte: it must still generate safely
            auto g = cmd(c.get(), {"INFER.GENERATE", "m" + std::to_string(i), "TEXT", "hi", "MAX_TOKENS", "4"});
            ASSERT_TRUE(s.alive()) << "variant " << i << " crashed on generate\n" << s.log();
            cmd(c.get(), {"INFER.UNLOAD", "m" + std::to_string(i)});
        }
    }
    unlink(bad.c_str());
    RecordProperty("errors", errors);
    RecordProperty("loaded", loaded);
    EXPECT_GE(errors, 13);  // every truncation
    EXPECT_EQ(cmd(c.get(), {"PING"})->type, REDIS_REPLY_STATUS);
}

// The files the GGUF fuzzer found aborting llama.cpp (tests/fuzz/crashes/README.md). Each one
// took Redis down through INFER.LOAD (or, for the BERT vocabulary without BOS/SEP, through the
// first text it tokenized); now each is a load error and the server, its data and the models
// already loaded are untouched.
TEST(malformed_gguf, fuzz_crash_reproductions_are_load_errors) {
    redis_server s;
    auto c = s.connect();
    const std::string canary = canary_write(c.get());
    const pid_t pid = s.pid();
    ASSERT_EQ(cmd(c.get(), {"INFER.LOAD", "tiny", "tiny-q8_0.gguf", "CTX", "64", "SLOTS", "1"})->type, REDIS_REPLY_STATUS);
    ASSERT_TRUE(wait_model_ready(c.get(), "tiny"));
    const auto before = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "4", "TEMPERATURE", "0"});
    ASSERT_EQ(before->type, REDIS_REPLY_STRING);
    struct repro {
        const char * file;
        bool embedding;
        const char * reason;  // in the error text
    };
    const repro repros[] = {
        {"repro-duplicate-token", false, "could not load the file"},
        {"repro-zero-layers", false, "could not load the file"},
        {"repro-bert-byte-token", true, "could not load the file"},
        {"repro-bert-no-bos", true, "asks for a BOS token it does not have"},
        {"repro-bert-no-bos", false, "asks for a BOS token it does not have"},
    };
    for (const auto & r : repros) {
        const std::string name = std::string(r.file) + ".gguf";
        write_all(model_dir() + "/" + name, read_all(std::string(REDIS_INFER_CRASH_DIR) + "/" + r.file));
        std::vector<std::string> args = {"INFER.LOAD", "bad", name};
        if (r.embedding) args.push_back("EMBEDDING");
        for (int attempt = 0; attempt < 2; ++attempt) {  // a failed load leaves nothing behind to trip on
            auto e = cmd(c.get(), args);
            ASSERT_TRUE(s.alive()) << r.file << " crashed the server\n" << s.log();
            ASSERT_TRUE(is_error(e, "ERR cannot load model")) << r.file;
            EXPECT_NE(std::string(e->str).find(r.reason), std::string::npos) << r.file << ": " << e->str;
        }
        unlink((model_dir() + "/" + name).c_str());
        auto models = cmd(c.get(), {"INFER.MODELS"});
        ASSERT_EQ(models->type, REDIS_REPLY_ARRAY);
        EXPECT_EQ(models->elements, 1u) << "a failed load must not register a model";
    }
    const auto after = cmd(c.get(), {"INFER.GENERATE", "tiny", "TEXT", "hi", "MAX_TOKENS", "4", "TEMPERATURE", "0"});
    ASSERT_EQ(after->type, REDIS_REPLY_STRING);
    EXPECT_EQ(std::string(after->str, after->len), std::string(before->str, before->len));
    EXPECT_EQ(s.pid(), pid);
    EXPECT_EQ(canary_digest(c.get()), canary);
    EXPECT_NE(s.log().find("llama.cpp assertion failed (refused, not aborted)"), std::string::npos)
        << "the three aborting files should have gone through the abort guard";
}
