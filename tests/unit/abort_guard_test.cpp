// The abort guard (engine/backend.h) against llama.cpp itself: inside a guard, a GGML_ASSERT on
// this thread throws instead of aborting the process; guards nest; outside one nothing changes
// (the death test). The model files are the fuzzer's reproductions in tests/fuzz/crashes.
#include "engine/backend.h"
#include "engine/model.h"

#include <gguf.h>
#include <gtest/gtest.h>
#include <llama.h>

#include <cstdio>
#include <fstream>

#include <string>

using namespace infer;

namespace {

std::string crash_file(const char * name) { return std::string(REDIS_INFER_CRASH_DIR) + "/" + name; }

// The BERT vocabulary without BOS/SEP loads (vocabulary only, as llama.cpp allows) and asserts
// on its first tokenize with special tokens: the smallest way to reach a GGML_ASSERT at will.
llama_model_ptr load_vocab_without_bos() {
    backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    return llama_model_ptr(llama_model_load_from_file(crash_file("repro-bert-no-bos").c_str(), mp));
}

int32_t tokenize_with_bos(const llama_model * m) {
    llama_token ids[16];
    return llama_tokenize(llama_model_get_vocab(m), "hello", 5, ids, 16, /*add_special=*/true, false);
}

}  // namespace

TEST(abort_guard, an_assert_inside_a_guard_throws_and_the_guard_stays_usable) {
    auto m = load_vocab_without_bos();
    ASSERT_TRUE(m);
    for (int i = 0; i < 3; ++i) {
        abort_guard outer;
        try {
            abort_guard inner;
            tokenize_with_bos(m.get());
            FAIL() << "expected the assert to throw";
        } catch (const ggml_abort_error & e) {
            EXPECT_NE(std::string(e.what()).find("llama-vocab.cpp"), std::string::npos) << e.what();
        }
        // Still guarded after the inner guard threw: the outer one catches the next assert.
        EXPECT_THROW(tokenize_with_bos(m.get()), ggml_abort_error);
    }
}

TEST(abort_guard_death, an_assert_outside_a_guard_still_aborts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto m = load_vocab_without_bos();
    ASSERT_TRUE(m);
    EXPECT_DEATH(tokenize_with_bos(m.get()), "llama.cpp aborted the process");
}

TEST(abort_guard, model_load_turns_the_fuzz_crash_files_into_errors) {
    backend_init();
    for (const char * f : {"repro-duplicate-token", "repro-zero-layers", "repro-bert-byte-token", "repro-bert-no-bos"}) {
        model_params p = model_default_params();
        p.path = crash_file(f);
        p.n_ctx = 32;
        p.n_threads = 1;
        engine_error err;
        EXPECT_FALSE(model::load(p, err)) << f;
        EXPECT_FALSE(err.empty()) << f;
    }
}

// A GGUF whose tokenizer is "none" (placeholder tokens from <arch>.vocab_size) loads in
// llama.cpp, which then asserts on every piece lookup: refused at load with a clear error.
TEST(model_load, a_model_without_a_tokenizer_is_refused) {
    backend_init();
    const std::string src = std::string(REDIS_INFER_MODEL_DIR) + "/tiny-q8_0.gguf";
    const std::string dst = ::testing::TempDir() + "no-tokenizer.gguf";
    // New metadata, then the original tensor data (offsets are relative to the data section).
    gguf_init_params ip = {/*no_alloc=*/true, nullptr};
    gguf_context * g = gguf_init_from_file(src.c_str(), ip);
    ASSERT_TRUE(g);
    const size_t data_offset = gguf_get_data_offset(g);
    gguf_set_val_str(g, "tokenizer.ggml.model", "none");
    gguf_set_val_u32(g, "qwen3.vocab_size", 151936);
    ASSERT_TRUE(gguf_write_to_file(g, dst.c_str(), /*only_meta=*/true));
    gguf_free(g);
    std::ifstream in(src, std::ios::binary);
    in.seekg(std::streamoff(data_offset));
    std::ofstream(dst, std::ios::binary | std::ios::app) << in.rdbuf();

    model_params p = model_default_params();
    p.path = dst;
    p.n_ctx = 32;
    engine_error err;
    EXPECT_FALSE(model::load(p, err));
    EXPECT_NE(err.detail.find("has no tokenizer"), std::string::npos) << err;
    std::remove(dst.c_str());
}
