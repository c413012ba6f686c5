// redis_infer.so entry points: RedisModule_OnLoad (configs, the one command table, INFO, module
// arguments) and RedisModule_OnUnload.
//
// Threading model of the whole module (docs/architecture.md has the long form):
// - the Redis main thread runs command handlers (parse, copy keys, validate, block, post),
//   reply callbacks (write RESP) and main-thread jobs (redis/main_jobs.h: every keyspace read or
//   write a request makes after its command returned, run from a module timer that an
//   event-loop one-shot arms);
// - each loaded model has one executor thread (engine/executor.h: a scheduler or an embedder)
//   that owns its llama_context and does all tokenizing, prompt assembly and inference; with
//   the model on a GPU, a scheduler also has a small sampling pool (engine/worker_pool.h);
// - one loader thread (engine/model_registry.h) loads, replaces and frees models.
// The main thread never waits for the others while serving: queues are bounded and a full one is
// an immediate error. It does wait once, at SHUTDOWN (on_shutdown below): it cancels every
// request and joins every model thread, so no inference runs while Redis tears itself down; a
// long prefill in progress finishes its decode step first.
#include "commands/commands.h"
#include "commands/keyspace.h"
#include "engine/backend.h"
#include "engine/cpu_isa.h"
#include "redis/main_jobs.h"
#include "redis/rm.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

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
    const char * acl;  // ACL categories, space separated: "infer" and Redis's own
    int first_key, last_key, key_step;
    // What the command does to the keys first_key..last_key (REDISMODULE_CMD_KEY_*): ACL checks
    // these against the user's key patterns (%R~ read, %W~ write). 0: no fixed key positions.
    // Without it Redis takes such keys as read and written, so a read-only pattern could not
    // DETOKENIZE. INGEST writes its set and chunk key and never returns them: write only.
    uint64_t key_flags;
};

// Flags: LOAD/UNLOAD are admin (they touch the filesystem and memory); nothing here may run
// inside scripts, since every INFER command that does work blocks the client.
//
// ACL categories: Redis derives none from a module command's flags (it does for its own
// commands), so each command names them here, as Redis files its comparable commands:
// - LOAD/UNLOAD: @admin @dangerous, as MODULE LOAD and CONFIG SET: they read files and take
//   memory and CPU from everyone. A "+@all -@dangerous -@admin" user cannot run them.
// - @read for a command that reads keys the caller names or that a key names: the PROMPT keys
//   (GENERATE, EMBED), the session (CHAT), the token key (DETOKENIZE), the vector set, the
//   chunk keys and SYSTEM_KEY (RAG).
// - @write for a command that may write a key, as SORT and GEORADIUS are @write for their STORE:
//   STORE (TOKENIZE, GENERATE, CHAT, EMBED, RAG), STREAM (GENERATE, CHAT, RAG), the session
//   (CHAT, always), VADD (EMBED), the set and the chunk key (INGEST, always). GENERATE, CHAT,
//   EMBED and RAG are therefore both; TOKENIZE reads no key (its input is argv), INGEST only
//   writes (it never returns what was stored), DETOKENIZE only reads.
// - @slow @blocking for every command that blocks the client for model work (the flag
//   "blocking"; LOAD/UNLOAD block for the loader thread); INFO and MODELS answer at once from
//   memory and read no key: @fast only.
const command_def k_commands[] = {
    {"infer.info",       rm::guarded_command<cmd::cmd_info>,       "readonly fast allow-loading allow-stale",
     "infer fast", 0, 0, 0, 0},
    {"infer.models",     rm::guarded_command<cmd::cmd_models>,     "readonly fast allow-loading allow-stale",
     "infer fast", 0, 0, 0, 0},
    {"infer.load",       rm::guarded_command<cmd::cmd_load>,       "admin deny-script blocking",
     "infer admin dangerous slow blocking", 0, 0, 0, 0},
    {"infer.unload",     rm::guarded_command<cmd::cmd_unload>,     "admin deny-script blocking",
     "infer admin dangerous slow blocking", 0, 0, 0, 0},
    {"infer.tokenize",   rm::guarded_command<cmd::cmd_tokenize>,   "write deny-oom deny-script blocking getkeys-api",
     "infer write slow blocking", 0, 0, 0, 0},
    {"infer.detokenize", rm::guarded_command<cmd::cmd_detokenize>, "readonly deny-script blocking",
     "infer read slow blocking", 2, 2, 1, REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS},
    // GENERATE and CHAT write only with STORE/STREAM/a session, through their own replicated
    // SET/XADD, so they are neither "readonly" nor "write" (see docs/commands.md).
    {"infer.generate",   rm::guarded_command<cmd::cmd_generate>,   "may-replicate deny-script blocking getkeys-api",
     "infer read write slow blocking", 0, 0, 0, 0},
    {"infer.chat",       rm::guarded_command<cmd::cmd_chat>,       "may-replicate deny-oom deny-script blocking getkeys-api",
     "infer read write slow blocking", 0, 0, 0, 0},
    // EMBED and RAG write only with STORE/VADD/STREAM, like GENERATE; INGEST always writes.
    {"infer.embed",      rm::guarded_command<cmd::cmd_embed>,      "may-replicate deny-script blocking getkeys-api",
     "infer read write slow blocking", 0, 0, 0, 0},
    {"infer.ingest",     rm::guarded_command<cmd::cmd_ingest>,     "write deny-oom deny-script blocking",
     "infer write slow blocking", 3, 4, 1, REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_UPDATE},
    {"infer.rag",        rm::guarded_command<cmd::cmd_rag>,        "may-replicate deny-script blocking getkeys-api",
     "infer read write slow blocking", 0, 0, 0, 0},
};

// Replaces the key spec RedisModule_CreateCommand made for first_key..last_key (flagged as read
// and written) with one carrying the command's own key_flags.
int set_key_range_flags(RedisModuleCommand * cmd, const command_def & c) {
    RedisModuleCommandKeySpec specs[2] = {};  // the second, zeroed, ends the list
    specs[0].flags = c.key_flags;
    specs[0].begin_search_type = REDISMODULE_KSPEC_BS_INDEX;
    specs[0].bs.index.pos = c.first_key;
    specs[0].find_keys_type = REDISMODULE_KSPEC_FK_RANGE;
    specs[0].fk.range.lastkey = c.last_key - c.first_key;
    specs[0].fk.range.keystep = c.key_step;
    specs[0].fk.range.limit = 0;
    RedisModuleCommandInfo info = {};
    info.version = REDISMODULE_COMMAND_INFO_VERSION;
    info.key_specs = specs;
    return RedisModule_SetCommandInfo(cmd, &info);
}

// On SHUTDOWN, stop every scheduler (cancelling work) before the process exits, so no
// inference thread runs while Redis tears itself down.
void on_shutdown(RedisModuleCtx *, RedisModuleEvent, uint64_t, void *) { cmd::state().registry.shutdown(); }

void log_to_redis(log_level level, std::string_view msg) {
    const char * lv = level == log_level::error || level == log_level::warning ? "warning"
                      : level == log_level::info                             ? "notice"
                                                                             : "debug";
    RedisModule_Log(nullptr, lv, "%.*s", int(msg.size()), msg.data());
}

// The ISA extensions ggml was built for that this CPU lacks (see engine/cpu_isa.h). The
// REDIS_INFER_CPUINFO environment variable names another cpuinfo file: the tests use it to load
// the module "on" a CPU without AVX2.
std::vector<std::string> missing_cpu_isa() {
    const char * path = std::getenv("REDIS_INFER_CPUINFO");
    std::ifstream in(path && *path ? path : "/proc/cpuinfo");
    if (!in) return {};  // not Linux on x86, or no procfs: nothing to compare with
    std::stringstream text;
    text << in.rdbuf();
    return cpu_isa_missing(REDIS_INFER_CPU_ISA, cpuinfo_flags(text.str()));
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx * ctx, RedisModuleString ** argv,
                                                                       int argc) {
    if (RedisModule_Init(ctx, "infer", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    try {
        // Before any ggml code runs: on a CPU without the build's ISA it would die with SIGILL.
        if (const auto missing = missing_cpu_isa(); !missing.empty()) {
            std::string list;
            for (const auto & f : missing) list += (list.empty() ? "" : ",") + f;
            RedisModule_Log(ctx, "warning",
                            "redis-infer refuses to load: it was built for a CPU with %s, and this CPU lacks %s. "
                            "Rebuild on this machine (scripts/deps.sh detects the CPU) or with "
                            "REDIS_INFER_CPU_PRESET=portable for an AVX2 build that runs on any x86-64-v3 CPU.",
                            REDIS_INFER_CPU_ISA, list.c_str());
            return REDISMODULE_ERR;
        }
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
            if (!cmd || RedisModule_SetCommandACLCategories(cmd, c.acl) != REDISMODULE_OK) return REDISMODULE_ERR;
            if (c.key_flags && set_key_range_flags(cmd, c) != REDISMODULE_OK) return REDISMODULE_ERR;
        }
        if (cmd::config_register(ctx) != REDISMODULE_OK) return REDISMODULE_ERR;
        rm::main_jobs_init(ctx);
        cmd::keyspace_init(ctx);
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
    rm::main_jobs_shutdown();
    cmd::keyspace_shutdown();
    cmd::state_destroy();
    return REDISMODULE_OK;
}
