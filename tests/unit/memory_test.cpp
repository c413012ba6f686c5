// The pre-load memory estimate (GGUF header only) against what llama.cpp allocates once the
// model and its context exist, on the generated tiny (generation) and bert-tiny (embedding)
// models: the registry refuses loads on the estimate, INFO reports the measured numbers, so
// the two must agree closely enough for a bound on one to mean something for the other.
#include "engine/backend.h"
#include "engine/embedder.h"
#include "engine/memory.h"
#include "engine/model.h"
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace infer;

namespace {

model_params params_for(const char * file, bool embedding) {
    backend_init();
    model_params p = model_default_params();
    p.path = std::string(REDIS_INFER_MODEL_DIR) + "/" + file;
    p.n_threads = 1;
    p.embedding = embedding;
    return p;
}

// Measures, estimates and compares: within 30% of llama.cpp's total, and never below the
// weights (the part that cannot shrink). Embedding models' compute buffers are not estimated,
// so for them the comparison is with weights + KV (with_compute false).
void expect_estimate_close(const model_params & p, const executor & e, bool with_compute) {
    const memory_usage m = e.memory();
    memory_estimate est;
    std::string err;
    ASSERT_TRUE(memory_estimate_gguf(p, est, err)) << err;
    const uint64_t actual = m.weights_cpu + m.weights_gpu + m.kv + (with_compute ? m.compute : 0);
    std::printf("%s: estimate weights %llu + kv %llu + compute %llu = %llu; llama.cpp weights %llu (cpu) + %llu (gpu), kv %llu, "
                "compute %llu, total %llu\n",
                p.path.c_str(), (unsigned long long) est.weights, (unsigned long long) est.kv, (unsigned long long) est.compute,
                (unsigned long long) est.total(), (unsigned long long) m.weights_cpu, (unsigned long long) m.weights_gpu,
                (unsigned long long) m.kv, (unsigned long long) m.compute, (unsigned long long) m.total());
    EXPECT_EQ(m.weights_cpu + m.weights_gpu, e.get_model().info().size_bytes) << "the breakdown's weights are llama_model_size";
    EXPECT_GE(est.total(), m.weights_cpu + m.weights_gpu);
    EXPECT_GT(m.compute, 0u);
    EXPECT_LE(double(est.total()), double(actual) * 1.3);
    EXPECT_GE(double(est.total()), double(actual) * 0.7);
}

uint64_t est_compute(const model_params & p) {
    memory_estimate est;
    std::string err;
    EXPECT_TRUE(memory_estimate_gguf(p, est, err)) << err;
    return est.compute;
}

}  // namespace

TEST(memory, generation_estimate_is_within_30_percent_of_what_llama_cpp_allocates) {
    model_params p = params_for("tiny-q8_0.gguf", false);
    p.n_ctx = 512;
    p.n_slots = 4;
    engine_error err;
    auto m = model::load(p, err);
    ASSERT_TRUE(m) << err;
    scheduler s("tiny", m);
    EXPECT_GT(s.memory().kv, 0u);
    expect_estimate_close(p, s, true);
    s.stop(stop_mode_cancel);
}

TEST(memory, generation_estimate_uses_the_default_sizes_the_load_uses) {
    model_params p = params_for("tiny-q8_0.gguf", false);  // CTX, SLOTS 0: the defaults
    engine_error err;
    auto m = model::load(p, err);
    ASSERT_TRUE(m) << err;
    scheduler s("tiny", m);
    expect_estimate_close(p, s, true);
    s.stop(stop_mode_cancel);
}

TEST(memory, embedding_estimate_is_within_30_percent_of_what_llama_cpp_allocates) {
    model_params p = params_for("bert-tiny-f16.gguf", true);
    engine_error err;
    auto m = model::load(p, err);
    ASSERT_TRUE(m) << err;
    embedder e("bert", m);
    EXPECT_EQ(e.memory().kv, 0u) << "llama.cpp gives BERT no KV cache";
    EXPECT_EQ(est_compute(p), 0u);
    expect_estimate_close(p, e, false);
    e.stop(stop_mode_cancel);
}

TEST(memory, estimate_of_a_file_that_is_not_a_gguf_fails_without_a_number) {
    const std::string path = testing::TempDir() + "not-a-gguf.gguf";
    std::ofstream(path) << "this is not a gguf file";
    model_params p = params_for("x", false);
    p.path = path;
    memory_estimate est;
    std::string err;
    EXPECT_FALSE(memory_estimate_gguf(p, est, err));
    EXPECT_EQ(err, "the GGUF header cannot be read");
    std::remove(path.c_str());
}

TEST(memory, available_reads_memavailable_from_the_meminfo_file) {
    const std::string path = testing::TempDir() + "meminfo";
    std::ofstream(path) << "MemTotal:       16000000 kB\nMemFree:          100000 kB\nMemAvailable:     123456 kB\n";
    setenv("REDIS_INFER_MEMINFO", path.c_str(), 1);
    EXPECT_EQ(memory_available(), 123456ll * 1024);
    std::ofstream(path) << "MemTotal:       16000000 kB\n";
    EXPECT_EQ(memory_available(), -1);
    unsetenv("REDIS_INFER_MEMINFO");
    std::remove(path.c_str());
    EXPECT_GT(memory_available(), 0) << "this machine's /proc/meminfo";
}
