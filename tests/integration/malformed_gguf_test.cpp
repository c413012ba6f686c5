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
