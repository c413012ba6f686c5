// Model memory the operator can see (INFO infer, INFER.INFO) and bound (infer.max-model-memory,
// and MemAvailable for loads into host memory), against a live server and the generated models.
// Refusals happen before the weights are read, so a refused load leaves nothing behind.
#include "support/fixture.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

using namespace testing_support;

namespace {

// INFO infer as field -> value; a model's dict line as "model_<name>.<key>".
std::map<std::string, std::string> info_infer(redisContext * c) {
    auto r = cmd(c, {"INFO", "infer"});
    std::map<std::string, std::string> out;
    std::istringstream in(std::string(r->str, r->len));
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (line.empty() || line[0] == '#' || colon == std::string::npos) continue;
        const std::string key = line.substr(0, colon), val = line.substr(colon + 1);
        out[key] = val;
        if (key.rfind("infer_model_", 0) != 0) continue;
        std::istringstream fields(val);
        std::string kv;
        while (std::getline(fields, kv, ',')) {
            const size_t eq = kv.find('=');
            if (eq != std::string::npos) out[key.substr(6) + "." + kv.substr(0, eq)] = kv.substr(eq + 1);
        }
    }
    return out;
}

long long num(const std::map<std::string, std::string> & m, const std::string & k) {
    auto it = m.find(k);
    EXPECT_NE(it, m.end()) << k;
    return it == m.end() ? -1 : std::stoll(it->second);
}

const std::vector<std::string> k_tiny = {"tiny-q8_0.gguf", "CTX", "256", "SLOTS", "2", "THREADS", "1"};

reply_ptr load(redisContext * c, const std::string & name, std::vector<std::string> opts = k_tiny) {
    std::vector<std::string> a = {"INFER.LOAD", name};
    a.insert(a.end(), opts.begin(), opts.end());
    return cmd(c, a);
}

struct measured {
    long long weights = 0, kv = 0, compute = 0;
    long long compute_estimate = 0;  // what the GGUF estimate counts: a 512-token ubatch's logits
    long long estimate() const { return weights + kv + compute_estimate; }
    std::string parts() const {
        return "(weights " + std::to_string(weights) + " + KV " + std::to_string(kv) + " + compute " +
               std::to_string(compute_estimate) + ")";
    }
};

// What tiny with k_tiny takes: loads it as "probe", reads INFER.INFO, unloads it.
measured measure_tiny(redisContext * c) {
    measured m;
    auto r = load(c, "probe");
    EXPECT_EQ(r->type, REDIS_REPLY_STATUS) << (r->str ? r->str : "");
    auto i = cmd(c, {"INFER.INFO", "probe"});
    m.weights = map_get(i.get(), "weights_cpu_bytes")->integer + map_get(i.get(), "weights_gpu_bytes")->integer;
    m.kv = map_get(i.get(), "kv_bytes")->integer;
    m.compute = map_get(i.get(), "compute_bytes")->integer;
    auto models = cmd(c, {"INFER.MODELS"});
    m.compute_estimate = map_get(models->element[0], "vocab_size")->integer * 512 * 4;
    EXPECT_EQ(cmd(c, {"INFER.UNLOAD", "probe"})->type, REDIS_REPLY_STATUS);
    return m;
}

std::string n(long long v) { return std::to_string(v); }

}  // namespace

TEST(model_memory, info_reports_each_models_bytes_and_their_sum) {
    redis_server s;
    auto c = s.connect();
    ASSERT_EQ(load(c.get(), "gen")->type, REDIS_REPLY_STATUS);
    ASSERT_EQ(load(c.get(), "emb", {"bert-tiny-f16.gguf", "EMBEDDING", "THREADS", "1"})->type, REDIS_REPLY_STATUS);
    const auto info = info_infer(c.get());
    long long sum[4] = {0, 0, 0, 0};
    for (const std::string m : {"model_gen", "model_emb"}) {
        const long long w = num(info, m + ".weights_cpu_bytes"), g = num(info, m + ".weights_gpu_bytes");
        const long long kv = num(info, m + ".kv_bytes"), comp = num(info, m + ".compute_bytes");
        EXPECT_GT(w, 0) << m;
        EXPECT_EQ(g, 0) << m << ": a CPU build";
        EXPECT_GT(comp, 0) << m;
        EXPECT_EQ(num(info, m + ".memory_bytes"), w + g + kv + comp) << m;
        sum[0] += w, sum[1] += g, sum[2] += kv, sum[3] += comp;
    }
    EXPECT_GT(num(info, "model_gen.kv_bytes"), 0);
    EXPECT_EQ(num(info, "model_emb.kv_bytes"), 0) << "llama.cpp gives BERT no KV cache";
    EXPECT_EQ(num(info, "infer_models_weights_cpu_bytes"), sum[0]);
    EXPECT_EQ(num(info, "infer_models_weights_gpu_bytes"), sum[1]);
    EXPECT_EQ(num(info, "infer_models_kv_bytes"), sum[2]);
    EXPECT_EQ(num(info, "infer_models_compute_bytes"), sum[3]);
    EXPECT_EQ(num(info, "infer_models_memory_bytes"), sum[0] + sum[1] + sum[2] + sum[3]);
    EXPECT_EQ(num(info, "infer_max_model_memory"), 0);
    // INFER.INFO says the same per model, and the weights are INFER.MODELS' size_bytes.
    auto gi = cmd(c.get(), {"INFER.INFO", "gen"});
    EXPECT_EQ(map_get(gi.get(), "memory_bytes")->integer, num(info, "model_gen.memory_bytes"));
    EXPECT_EQ(map_get(gi.get(), "kv_bytes")->integer, num(info, "model_gen.kv_bytes"));
    auto models = cmd(c.get(), {"INFER.MODELS"});
    for (size_t i = 0; i < models->elements; ++i) {
        const std::string name = map_get(models->element[i], "name")->str;
        EXPECT_EQ(map_get(models->element[i], "size_bytes")->integer, num(info, "model_" + name + ".weights_cpu_bytes"));
    }
}

TEST(model_memory, max_model_memory_refuses_a_load_that_does_not_fit_before_reading_it) {
    redis_server s;
    auto c = s.connect();
    const measured t = measure_tiny(c.get());
    const long long need = t.estimate();  // tensors + f16 KV of every cell + a ubatch's logits
    // One byte short: refused, with the numbers, and nothing is loaded.
    ASSERT_EQ(cmd(c.get(), {"CONFIG", "SET", "infer.max-model-memory", n(need - 1)})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(is_error_exactly(load(c.get(), "a"),
                                 "ERR cannot load model 'a' - it needs about " + n(need) + " bytes " + t.parts() +
                                     ", infer.max-model-memory leaves " +
                                     n(need - 1) + " of " + n(need - 1) + " (other models use 0)"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
    EXPECT_EQ(num(info_infer(c.get()), "infer_max_model_memory"), need - 1);
    // Room for one model and one byte short of a second: the first loads, the second is refused.
    const long long one = t.weights + t.kv + t.compute;  // what a loaded tiny counts for
    const long long limit = one + need - 1;
    ASSERT_EQ(cmd(c.get(), {"CONFIG", "SET", "infer.max-model-memory", n(limit)})->type, REDIS_REPLY_STATUS);
    auto a = load(c.get(), "a");
    ASSERT_EQ(a->type, REDIS_REPLY_STATUS) << (a->str ? a->str : "");
    EXPECT_TRUE(is_error_exactly(load(c.get(), "b"),
                                 "ERR cannot load model 'b' - it needs about " + n(need) + " bytes " + t.parts() +
                                     ", infer.max-model-memory leaves " +
                                     n(need - 1) + " of " + n(limit) + " (other models use " + n(one) + ")"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 1u);
    // REPLACE does not count the model it replaces (that one is freed once it drains).
    std::vector<std::string> replace = k_tiny;
    replace.push_back("REPLACE");
    auto r = load(c.get(), "a", replace);
    EXPECT_EQ(r->type, REDIS_REPLY_STATUS) << (r->str ? r->str : "");
    // One byte more and the second fits.
    ASSERT_EQ(cmd(c.get(), {"CONFIG", "SET", "infer.max-model-memory", n(limit + 1)})->type, REDIS_REPLY_STATUS);
    auto b = load(c.get(), "b");
    EXPECT_EQ(b->type, REDIS_REPLY_STATUS) << (b->str ? b->str : "");
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 2u);
}

TEST(model_memory, max_model_memory_refuses_a_start_up_load_too) {
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf"}, {"--infer.max-model-memory", "1000"});
    auto c = s.connect();
    ASSERT_TRUE(wait_for([&] { return cmd(c.get(), {"INFER.MODELS"})->elements == 0; }));
    ASSERT_TRUE(wait_for([&] { return s.log().find("start-up load of model tiny did not finish") != std::string::npos; }));
    const std::string log = s.log();
    EXPECT_NE(log.find("ERR cannot load model 'tiny' - it needs about "), std::string::npos) << log;
    EXPECT_NE(log.find("infer.max-model-memory leaves 1000 of 1000 (other models use 0)"), std::string::npos) << log;
}

// REDIS_INFER_MEMINFO plays a machine with 1 MiB available; it is read at each load.
TEST(model_memory, a_cpu_load_larger_than_memavailable_is_refused) {
    char path[] = "/tmp/redis-infer-meminfo-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    std::ofstream(path) << "MemTotal: 67108864 kB\nMemAvailable: 67108864 kB\n";
    setenv("REDIS_INFER_MEMINFO", path, 1);
    redis_server s;
    unsetenv("REDIS_INFER_MEMINFO");
    auto c = s.connect();
    const measured t = measure_tiny(c.get());
    std::ofstream(path) << "MemTotal: 67108864 kB\nMemAvailable: 1024 kB\n";
    EXPECT_TRUE(is_error_exactly(load(c.get(), "a"),
                                 "ERR cannot load model 'a' - it needs about " + n(t.estimate()) + " bytes " +
                                     t.parts() + ", the machine has 1048576 available (MemAvailable)"));
    EXPECT_EQ(cmd(c.get(), {"INFER.MODELS"})->elements, 0u);
    std::ofstream(path) << "MemTotal: 67108864 kB\nMemAvailable: 67108864 kB\n";
    EXPECT_EQ(load(c.get(), "a")->type, REDIS_REPLY_STATUS);
    std::remove(path);
}
