// The generated test models (tests/CMakeLists.txt's test_models target) as the engine unit tests
// load them: one place for the path and the defaults, so every test loads the same way.
#pragma once

#include "engine/backend.h"
#include "engine/model.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace testing_support {

// Load parameters for a file in the test model directory: the engine's defaults, 2 threads.
inline infer::model_params test_model_params(const std::string & file, bool embedding = false) {
    infer::backend_init();
    infer::model_params p = infer::model_default_params();
    p.path = std::string(REDIS_INFER_MODEL_DIR) + "/" + file;
    p.n_threads = 2;
    p.embedding = embedding;
    return p;
}

// Loads p; a failed load fails the calling test (and returns null).
inline std::shared_ptr<infer::model> load_test_model(const infer::model_params & p) {
    infer::engine_error err;
    auto m = infer::model::load(p, err);
    EXPECT_TRUE(m) << p.path << ": " << err;
    return m;
}

}  // namespace testing_support
