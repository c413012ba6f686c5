// The model registry as part of the dataset: which models are loaded (name, path relative to
// infer.model-dir, load options) is written as RDB aux data, so it survives a restart (RDB, or
// AOF with its RDB preamble) and a replica learns it at full sync; INFER.LOAD/UNLOAD are then
// propagated to replicas and the AOF like writes, and a replica refuses them from its own
// clients (models.cpp), so its registry stays its primary's. Loading happens in the background
// after the dataset is loaded; INFER.MODELS shows such models as "loading" until ready.
//
// Rejected: module arguments only (a runtime INFER.LOAD would not survive a restart) and a key
// per model (users could DEL it, and Cluster would shard it).
// Consequence: an RDB written with models loaded needs this module to be loaded to read it, and
// MODULE UNLOAD is refused (Redis never unloads a module that has a data type).
#include "commands/commands.h"

#include "commands/args.h"

namespace infer::cmd {
namespace {

constexpr int k_encver = 2;  // 2 added the EMBEDDING flag

std::string relative_to_model_dir(const std::string & path) {
    const std::string & dir = state().model_dir;
    if (!dir.empty() && path.size() > dir.size() + 1 && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/') {
        return path.substr(dir.size() + 1);
    }
    return path;  // resolved again, inside infer.model-dir, when loaded
}

// Writes nothing when no model is loaded, so such an RDB loads without the module.
void aux_save(RedisModuleIO * rdb, int when) {
    if (when != REDISMODULE_AUX_BEFORE_RDB) return;
    const auto models = state().registry.list();
    if (models.empty()) return;
    RedisModule_SaveUnsigned(rdb, models.size());
    for (const auto & m : models) {
        const std::string rel = relative_to_model_dir(m.params.path);
        RedisModule_SaveStringBuffer(rdb, m.name.data(), m.name.size());
        RedisModule_SaveStringBuffer(rdb, rel.data(), rel.size());
        RedisModule_SaveUnsigned(rdb, m.params.n_ctx);
        RedisModule_SaveUnsigned(rdb, m.params.n_slots);
        RedisModule_SaveUnsigned(rdb, m.params.n_batch);
        RedisModule_SaveSigned(rdb, m.params.n_gpu_layers);
        RedisModule_SaveSigned(rdb, m.params.n_threads);
        RedisModule_SaveUnsigned(rdb, m.params.embedding ? 1 : 0);
    }
}

std::string load_string(RedisModuleIO * rdb) {
    size_t n = 0;
    char * p = RedisModule_LoadStringBuffer(rdb, &n);
    std::string s(p ? p : "", p ? n : 0);
    if (p) RedisModule_Free(p);
    return s;
}

int aux_load(RedisModuleIO * rdb, int encver, int when) {
    if (encver < 1 || encver > k_encver || when != REDISMODULE_AUX_BEFORE_RDB) return REDISMODULE_ERR;
    const uint64_t n = RedisModule_LoadUnsigned(rdb);
    for (uint64_t i = 0; i < n; ++i) {
        std::vector<std::string> args;
        const std::string name = load_string(rdb), path = load_string(rdb);
        const auto ctx = RedisModule_LoadUnsigned(rdb), slots = RedisModule_LoadUnsigned(rdb),
                   batch = RedisModule_LoadUnsigned(rdb);
        const auto gpu = RedisModule_LoadSigned(rdb), threads = RedisModule_LoadSigned(rdb);
        const bool embedding = encver >= 2 && RedisModule_LoadUnsigned(rdb) != 0;
        if (RedisModule_IsIOError(rdb)) return REDISMODULE_ERR;
        // Already there (module arguments, an earlier sync): keep it.
        if (state().registry.find(name) || state().registry.is_loading(name)) continue;
        model_params p = model_default_params();
        p.n_ctx = uint32_t(ctx);
        p.n_slots = uint32_t(slots);
        p.n_batch = uint32_t(batch);
        p.n_gpu_layers = int32_t(gpu);
        p.n_threads = int32_t(threads);
        p.embedding = embedding;
        const std::string err = load_model_in_background(name, path, p);
        if (!err.empty()) RedisModule_Log(nullptr, "warning", "model %s from the RDB not loaded: %s", name.c_str(), err.c_str());
    }
    return REDISMODULE_OK;
}

void * rdb_load_none(RedisModuleIO *, int) { return nullptr; }  // the type has no keys
void rdb_save_none(RedisModuleIO *, void *) {}
void free_none(void *) {}

}  // namespace

int registry_persistence_register(RedisModuleCtx * ctx) {
    RedisModuleTypeMethods tm = {};
    tm.version = REDISMODULE_TYPE_METHOD_VERSION;
    tm.rdb_load = rdb_load_none;
    tm.rdb_save = rdb_save_none;
    tm.free = free_none;
    tm.aux_load = aux_load;
    tm.aux_save2 = aux_save;
    tm.aux_save_triggers = REDISMODULE_AUX_BEFORE_RDB;
    return RedisModule_CreateDataType(ctx, "infer-reg", k_encver, &tm) ? REDISMODULE_OK : REDISMODULE_ERR;
}

}  // namespace infer::cmd
