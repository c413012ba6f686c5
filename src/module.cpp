// redis_infer.so entry points: RedisModule_OnLoad (configs, the one command table, INFO, module
// arguments) and RedisModule_OnUnload.
//
// Threading model of the whole module, in one paragraph: the Redis main thread runs command
// handlers (parse, copy keys, validate, block, post) and reply callbacks (write RESP, write
// keys). Each loaded model has one scheduler thread that owns its llama_context and does all the
// inference; a single loader thread loads and frees models. The main thread never waits for
// either: queues are bounded and a full one is an immediate error.
#include "commands/commands.h"
#include "commands/outputs.h"
#include "engine/backend.h"
#include "redis/rm.h"

#include <memory>

namespace infer::cmd {
namespace {
std::unique_ptr<module_state> g_state;
}
module_state & state() { return *g_state; }
void state_create() { g_state = std::make_unique<module_state>(); }
void state_destroy() { g_state.reset(); }
}  // namespace infer::cmd

namespace {

using namespace infer;

struct command_def {
    const char * name;
    RedisModuleCmdFunc fn;
    const char * flags;
    int first_key, last_key, key_step;
};

// Flags: LOAD/UNLOAD are admin (they touch the filesystem and memory); nothing here may run
// inside scripts, since every INFER command that does work blocks the client.
const command_def k_commands[] = {
    {"infer.info",       rm::guarded_command<cmd::cmd_info>,       "readonly fast allow-loading allow-stale", 0, 0, 0},
    {"infer.models",     rm::guarded_command<cmd::cmd_models>,     "readonly fast allow-loading allow-stale", 0, 0, 0},
    {"infer.load",       rm::guarded_command<cmd::cmd_load>,       "admin deny-script blocking", 0, 0, 0},
    {"infer.unload",     rm::guarded_command<cmd::cmd_unload>,     "admin deny-script blocking", 0, 0, 0},
    {"infer.tokenize",   rm::guarded_command<cmd::cmd_tokenize>,   "write deny-oom deny-script blocking getkeys-api", 0, 0, 0},
    {"infer.detokenize", rm::guarded_command<cmd::cmd_detokenize>, "readonly deny-script blocking", 2, 2, 1},
    // GENERATE and CHAT write only with STORE/STREAM/a session, through their own replicated
    // SET/XADD, so they are neither "readonly" nor "write" (see docs/commands.md).
    {"infer.generate",   rm::guarded_command<cmd::cmd_generate>,   "may-replicate deny-script blocking getkeys-api", 0, 0, 0},
    {"infer.chat",       rm::guarded_command<cmd::cmd_chat>,       "may-replicate deny-oom deny-script blocking getkeys-api", 0, 0, 0},
    // EMBED and RAG write only with STORE/VADD/STREAM, like GENERATE; INGEST always writes.
    {"infer.embed",      rm::guarded_command<cmd::cmd_embed>,      "may-replicate deny-script blocking getkeys-api", 0, 0, 0},
    {"infer.ingest",     rm::guarded_command<cmd::cmd_ingest>,     "write deny-oom deny-script blocking", 3, 4, 1},
    {"infer.rag",        rm::guarded_command<cmd::cmd_rag>,        "may-replicate deny-script blocking getkeys-api", 0, 0, 0},
};

// On SHUTDOWN, stop every scheduler (cancelling work) before the process exits, so no
// inference thread runs while Redis tears itself down.
void on_shutdown(RedisModuleCtx *, RedisModuleEvent, uint64_t, void *) { cmd::state().registry.shutdown(); }

void log_to_redis(log_level level, std::string_view msg) {
    const char * lv = level == log_level::error || level == log_level::warning ? "warning"
                      : level == log_level::info                             ? "notice"
                                                                             : "debug";
    RedisModule_Log(nullptr, lv, "%.*s", int(msg.size()), msg.data());
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx * ctx, RedisModuleString ** argv,
                                                                       int argc) {
    if (RedisModule_Init(ctx, "infer", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    try {
        backend_init(log_to_redis);
        cmd::state_create();
        if (RedisModule_AddACLCategory(ctx, "infer") != REDISMODULE_OK) return REDISMODULE_ERR;
        for (const auto & c : k_commands) {
            if (RedisModule_CreateCommand(ctx, c.name, c.fn, c.flags, c.first_key, c.last_key, c.key_step) !=
                REDISMODULE_OK) {
                RedisModule_Log(ctx, "warning", "cannot register %s", c.name);
                return REDISMODULE_ERR;
            }
            RedisModuleCommand * cmd = RedisModule_GetCommand(ctx, c.name);
            if (!cmd || RedisModule_SetCommandACLCategories(cmd, "infer") != REDISMODULE_OK) return REDISMODULE_ERR;
        }
        if (cmd::config_register(ctx) != REDISMODULE_OK) return REDISMODULE_ERR;
        cmd::outputs_init(ctx);
        if (cmd::registry_persistence_register(ctx) != REDISMODULE_OK) return REDISMODULE_ERR;
        if (RedisModule_RegisterInfoFunc(ctx, cmd::info_section) != REDISMODULE_OK) return REDISMODULE_ERR;
        if (cmd::models_from_module_args(ctx, argv, argc) != REDISMODULE_OK) return REDISMODULE_ERR;
        RedisModule_SubscribeToServerEvent(ctx, RedisModuleEvent_Shutdown, on_shutdown);
        RedisModule_Log(ctx, "notice", "redis-infer %s on llama.cpp %s, %s", REDIS_INFER_VERSION,
                        backend_version().c_str(), backend_description().c_str());
    } catch (const std::exception & e) {
        RedisModule_Log(ctx, "warning", "redis-infer failed to load: %s", e.what());
        return REDISMODULE_ERR;
    }
    return REDISMODULE_OK;
}

extern "C" __attribute__((visibility("default"))) int RedisModule_OnUnload(RedisModuleCtx * ctx) {
    // Unloading the module with models loaded would free code that scheduler threads run.
    if (!cmd::state().registry.list().empty()) {
        RedisModule_Log(ctx, "warning", "MODULE UNLOAD refused: INFER.UNLOAD every model first");
        return REDISMODULE_ERR;
    }
    cmd::state().registry.shutdown();
    cmd::outputs_shutdown();
    cmd::state_destroy();
    return REDISMODULE_OK;
}
