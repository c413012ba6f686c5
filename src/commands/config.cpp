// infer.* configs (CONFIG GET/SET, redis.conf, --infer.<name> on the command line).
// infer.max-model-memory is handed to the registry, which checks it on its loader thread.
// infer.model-dir is PROTECTED: with Redis' default enable-protected-configs no it can only be
// set at start-up, so a client cannot point the loader at another directory.
#include "commands/commands.h"

#include "engine/model_path.h"

#include <climits>

namespace infer::cmd {
namespace {

RedisModuleString * get_model_dir(const char *, void *) {
    // Redis takes ownership of nothing here; a static string kept alive between calls.
    static RedisModuleString * cached = nullptr;
    if (cached) RedisModule_FreeString(nullptr, cached);
    cached = RedisModule_CreateString(nullptr, state().model_dir.data(), state().model_dir.size());
    return cached;
}

int set_model_dir(const char *, RedisModuleString * val, void *, RedisModuleString ** err) {
    const std::string v(rm::str(val));
    if (v.empty()) {
        state().model_dir.clear();
        return REDISMODULE_OK;
    }
    const auto dir = model_dir_canonical(v);
    if (!dir) {
        *err = RedisModule_CreateStringPrintf(nullptr, "model-dir must be an existing directory - got '%s'", v.c_str());
        return REDISMODULE_ERR;
    }
    state().model_dir = *dir;
    return REDISMODULE_OK;
}

long long get_num(const char *, void * priv) { return *static_cast<long long *>(priv); }

int set_num(const char *, long long val, void * priv, RedisModuleString **) {
    *static_cast<long long *>(priv) = val;
    return REDISMODULE_OK;
}

long long get_max_model_memory(const char *, void *) { return state().max_model_memory; }

int set_max_model_memory(const char *, long long val, void *, RedisModuleString **) {
    state().max_model_memory = val;
    state().registry.set_max_model_memory(uint64_t(val));
    return REDISMODULE_OK;
}

}  // namespace

int config_register(RedisModuleCtx * ctx) {
    module_state & s = state();
    if (RedisModule_RegisterStringConfig(ctx, "model-dir", "", REDISMODULE_CONFIG_PROTECTED, get_model_dir,
                                         set_model_dir, nullptr, nullptr) != REDISMODULE_OK ||
        RedisModule_RegisterNumericConfig(ctx, "queue-size", 64, REDISMODULE_CONFIG_DEFAULT, 1, 65536, get_num,
                                          set_num, nullptr, &s.queue_max) != REDISMODULE_OK ||
        RedisModule_RegisterNumericConfig(ctx, "max-prompt-bytes", 64ll << 20, REDISMODULE_CONFIG_MEMORY, 4,
                                          1ll << 30, get_num, set_num, nullptr, &s.max_prompt_bytes) != REDISMODULE_OK ||
        // Bytes all models may take together (weights, KV, compute); 0 = no limit. Checked at
        // each load against the GGUF's estimate; lowering it unloads nothing.
        RedisModule_RegisterNumericConfig(ctx, "max-model-memory", 0, REDISMODULE_CONFIG_MEMORY, 0, LLONG_MAX,
                                          get_max_model_memory, set_max_model_memory, nullptr,
                                          nullptr) != REDISMODULE_OK) {
        return REDISMODULE_ERR;
    }
    return RedisModule_LoadConfigs(ctx);
}

}  // namespace infer::cmd
