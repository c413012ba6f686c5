// The embedder against llama.cpp itself, on the generated bert-tiny model: inputs embedded
// together in one decode give the vectors they get alone, batching really happens, limits give
// errors, and every request completes exactly once (also when the model is stopped).
#include "engine/backend.h"
#include "engine/embedder.h"
#include "engine/model.h"
#include "support/test_models.h"

#include <gtest/gtest.h>

#include <cmath>
#include <future>

using namespace infer;
using namespace testing_support;

namespace {

std::shared_ptr<model> load_bert(uint32_t slots = 16, uint32_t ctx = 0) {
    model_params p = test_model_params("bert-tiny-f16.gguf", true);
    p.n_slots = slots;
    p.n_ctx = ctx;
    return load_test_model(p);
}

std::future<infer_result> embed(executor & e, const std::string & text, bool normalize = false) {
    auto r = std::make_unique<infer_request>();
    r->kind = request_kind_embed;
    r->text = text;
    r->normalize = normalize;
    auto p = std::make_shared<std::promise<infer_result>>();
    auto f = p->get_future();
    r->on_done = [p](infer_result && res) { p->set_value(std::move(res)); };
    EXPECT_EQ(e.submit(r), submit_status_ok);
    return f;
}

}  // namespace

TEST(embedder, batched_inputs_equal_single_inputs) {
    auto m = load_bert();
    ASSERT_TRUE(m);
    embedder e("bert", m);
    std::vector<std::string> texts;
    for (int i = 0; i < 12; ++i) texts.push_back("input number " + std::to_string(i) + std::string(size_t(i * 3), 'x'));
    std::vector<std::vector<float>> alone;
    for (const auto & t : texts) {
        auto r = embed(e, t).get();
        ASSERT_TRUE(r.error.empty()) << r.error;
        ASSERT_EQ(r.embedding.size(), 64u);
        alone.push_back(r.embedding);
    }
    const uint64_t steps_before = e.stats().steps;
    std::vector<std::future<infer_result>> fs;
    for (const auto & t : texts) fs.push_back(embed(e, t));
    for (size_t i = 0; i < fs.size(); ++i) {
        auto r = fs[i].get();
        ASSERT_TRUE(r.error.empty()) << r.error;
        ASSERT_EQ(r.embedding.size(), alone[i].size());
        for (size_t j = 0; j < r.embedding.size(); ++j) EXPECT_NEAR(r.embedding[j], alone[i][j], 1e-4) << i << "," << j;
    }
    // 12 inputs posted at once take fewer decodes than inputs.
    EXPECT_LT(e.stats().steps - steps_before, texts.size());
}

TEST(embedder, normalizes_and_refuses_what_it_cannot_embed) {
    auto m = load_bert(4, 32);
    ASSERT_TRUE(m);
    embedder e("bert", m);
    auto n = embed(e, "unit length please", true).get();
    double sum = 0;
    for (float v : n.embedding) sum += double(v) * v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "word ";
    auto too_long = embed(e, long_text).get();
    EXPECT_EQ(too_long.error.code, error_code::input_over_context) << too_long.error;
    EXPECT_EQ(too_long.error.got, 42);
    EXPECT_EQ(too_long.error.limit, 32);

    auto gen = std::make_unique<infer_request>();
    gen->kind = request_kind_generate;
    gen->text = "x";
    std::promise<infer_result> p;
    gen->on_done = [&](infer_result && r) { p.set_value(std::move(r)); };
    ASSERT_EQ(e.submit(gen), submit_status_ok);
    EXPECT_EQ(p.get_future().get().error.code, error_code::not_a_generation_model);
}

TEST(embedder, stop_completes_every_request_once) {
    auto m = load_bert(2);
    ASSERT_TRUE(m);
    auto e = std::make_unique<embedder>("bert", m);
    std::atomic<int> done{0};
    int taken = 0;
    for (int i = 0; i < 50; ++i) {
        auto r = std::make_unique<infer_request>();
        r->kind = request_kind_embed;
        r->text = "request " + std::to_string(i);
        r->on_done = [&](infer_result &&) { done.fetch_add(1); };
        taken += e->submit(r) == submit_status_ok;
    }
    e->stop(stop_mode_cancel);
    EXPECT_EQ(done.load(), taken);
    auto late = std::make_unique<infer_request>();
    late->kind = request_kind_embed;
    late->text = "late";
    EXPECT_EQ(e->submit(late), submit_status_stopped);
}

TEST(embedder, batch_smaller_than_ctx_is_refused_at_load) {
    model_params p = test_model_params("bert-tiny-f16.gguf", true);
    p.n_ctx = 256;
    p.n_batch = 128;
    engine_error err;
    EXPECT_FALSE(model::load(p, err));
    EXPECT_EQ(err.code, error_code::batch_below_context);
    EXPECT_EQ(err.got, 128);
    EXPECT_EQ(err.limit, 256);
}

// llama.cpp aborts the process for these; the load must refuse them first.
TEST(embedder, slots_not_dividing_batch_is_refused_at_load) {
    model_params p = test_model_params("bert-tiny-f16.gguf", true);
    p.n_slots = 3;
    p.n_batch = 2048;
    engine_error err;
    EXPECT_FALSE(model::load(p, err));
    EXPECT_EQ(err.code, error_code::batch_not_multiple_of_slots);
    EXPECT_EQ(err.got, 2048);
    EXPECT_EQ(err.limit, 3);
    p.n_slots = 3;
    p.n_batch = 0;
    p.n_ctx = 3000;  // default BATCH rounds up to a multiple of SLOTS
    EXPECT_TRUE(model::load(p, err)) << err;
}

TEST(embedder, slots_over_batch_is_refused_for_generation_models) {
    model_params p = test_model_params("tiny-q8_0.gguf");
    p.n_slots = 17;
    p.n_batch = 16;
    engine_error err;
    EXPECT_FALSE(model::load(p, err));
    EXPECT_EQ(err.code, error_code::slots_above_batch);
    EXPECT_EQ(err.got, 17);
    EXPECT_EQ(err.limit, 16);
}
