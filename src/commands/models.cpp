// Model management: INFER.LOAD, INFER.UNLOAD, INFER.MODELS and MODEL module arguments, and
// ready_model*, the lookup every other command starts with.
// Loading and unloading happen on the registry's loader thread; the calling client is blocked,
// the server is not. The registry's typed outcomes are worded here (registry_error_text).
//
// The registry is replicated state (registry_persistence.cpp): a replica follows its primary's,
// so it applies LOAD/UNLOAD arriving over the master link (and from its AOF) and refuses them
// from its own clients with READONLY - a writable replica (replica-read-only no) too, since a
// local change would diverge from the primary and be undone or kept by chance at the next sync.
#include "commands/commands.h"

#include "commands/args.h"
#include "commands/errors.h"
#include "engine/model_path.h"
#include "redis/blocking.h"

#include <thread>

namespace infer::cmd {
namespace {

struct load_args {
    std::string name;
    std::string path;  // resolved
    model_params params = model_default_params();
    bool replace = false;
};

// Limits that keep llama.cpp's own asserts out of reach.
constexpr long long k_max_ctx = 1 << 20;
constexpr long long k_max_slots = 256;  // LLAMA_MAX_SEQ
constexpr long long k_max_batch = 1 << 16;
constexpr long long k_max_threads = 512;

void check_name(std::string_view name) {
    bool ok = !name.empty() && name.size() <= 64;
    for (char c : name) ok = ok && (isalnum((unsigned char) c) || c == '_' || c == '-' || c == '.');
    if (!ok) {
        throw rm::reply_error("ERR invalid model name - got " + quote(name) +
                              ", expected 1-64 characters of letters, digits, '_', '-', '.'");
    }
}

load_args parse_load(RedisModuleString ** argv, int argc, int pos, bool allow_replace) {
    load_args a;
    arg_reader r(argv, argc, pos);
    a.name = r.next_str("model name");
    check_name(a.name);
    const std::string user_path(r.next_str("model path"));
    while (!r.done()) {
        if (r.match("CTX")) a.params.n_ctx = uint32_t(r.next_int("CTX", 16, k_max_ctx));
        else if (r.match("SLOTS")) a.params.n_slots = uint32_t(r.next_int("SLOTS", 1, k_max_slots));
        else if (r.match("BATCH")) a.params.n_batch = uint32_t(r.next_int("BATCH", 1, k_max_batch));
        else if (r.match("GPU_LAYERS")) a.params.n_gpu_layers = int32_t(r.next_int("GPU_LAYERS", -1, 1024));
        else if (r.match("THREADS")) a.params.n_threads = int32_t(r.next_int("THREADS", 1, k_max_threads));
        else if (r.match("EMBEDDING")) a.params.embedding = true;
        else if (allow_replace && r.match("REPLACE")) a.replace = true;
        else r.unknown_option("INFER.LOAD");
    }
    if (state().model_dir.empty()) throw rm::reply_error("ERR infer.model-dir is not set - set it at start-up");
    const auto resolved = model_path_resolve(state().model_dir, user_path);
    if (!resolved) {
        // One message for missing, outside, symlinked-out, directory, device or FIFO: the
        // reply must not reveal what exists outside the model directory.
        throw rm::reply_error("ERR model path not found or not a regular file inside infer.model-dir (" +
                              state().model_dir + ") - got " + quote(user_path));
    }
    a.path = *resolved;
    a.params.path = a.path;
    a.params.queue_max = uint32_t(state().queue_max);
    return a;
}

// Commands that arrive over the master link (REDISMODULE_CTX_FLAGS_REPLICATED: the client is
// the master) or from the AOF cannot block anybody: they start the work and answer at once.
bool from_replication_or_aof(RedisModuleCtx * ctx) {
    return RedisModule_GetContextFlags(ctx) & (REDISMODULE_CTX_FLAGS_REPLICATED | REDISMODULE_CTX_FLAGS_LOADING);
}

// A replica's own clients may not change its registry (see the top of this file). The text is
// Redis's own for a write on a replica, so clients handle it as they do for SET.
void refuse_on_replica(RedisModuleCtx * ctx) {
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_SLAVE) {
        throw rm::reply_error("READONLY You can't write against a read only replica.");
    }
}

// The reply for a registry outcome; "" for registry_status_ok.
std::string registry_error_text(const std::string & name, const registry_result & r) {
    switch (r.status) {
    case registry_status_ok: return "";
    case registry_status_shutting_down: return "ERR the module is shutting down";
    case registry_status_name_taken: return "ERR model " + quote(name) + " is already loaded - use REPLACE to swap it";
    case registry_status_already_loading: return "ERR model " + quote(name) + " is already being loaded";
    case registry_status_no_such_model: return "ERR no such model " + quote(name);
    case registry_status_load_failed: return "ERR cannot load model " + quote(name) + " - " + load_error_text(r.error);
    case registry_status_load_cancelled: return "ERR model " + quote(name) + " was unloaded before its load finished";
    }
    return "ERR internal error";
}

std::string registry_error_text(const std::string & name, registry_status st) { return registry_error_text(name, {st, {}}); }

// A load nobody waits for (replication, AOF, RDB): a failure is a warning in the log, a cancel
// (an UNLOAD, shutdown) is not.
void log_background_load(const std::string & name, const registry_result & r) {
    if (r.status == registry_status_ok) return;
    const bool cancelled = r.status == registry_status_load_cancelled || r.status == registry_status_shutting_down;
    rm::log(cancelled ? "notice" : "warning",
            "background load of model " + name + (cancelled ? " stopped: " : " failed: ") + registry_error_text(name, r));
}

}  // namespace

std::string load_model_in_background(const std::string & name, const std::string & path, model_params p) {
    const auto resolved = model_path_resolve(state().model_dir, path);
    if (!resolved) return "model path not found or not a regular file inside infer.model-dir - got " + quote(path);
    p.path = *resolved;
    p.queue_max = uint32_t(state().queue_max);
    const registry_status st =
        state().registry.load_async(name, p, false, [name](const registry_result & r) { log_background_load(name, r); });
    return registry_error_text(name, st);
}

// INFER.LOAD name path [CTX n] [SLOTS n] [BATCH n] [GPU_LAYERS n] [THREADS n] [EMBEDDING] [REPLACE]
//   Loads a GGUF from inside infer.model-dir, off the main thread (the client waits, the
//   server does not). CTX is tokens per slot (prompt + output, default min(4096, trained)),
//   SLOTS concurrent sequences (default 4, at most 256), BATCH tokens per decode step
//   (default 512), GPU_LAYERS layers on the GPU (-1 all, default 0), THREADS CPU threads
//   (default cores - 1). EMBEDDING loads it as an embedding model (INFER.EMBED, INGEST, RAG's
//   EMBED_MODEL) with the model's pooling: CTX is then tokens per input, SLOTS inputs per
//   decode (default 16) and BATCH tokens per decode (default max(CTX, 2048), at least CTX).
//   REPLACE swaps a loaded model: new requests go to the new one, requests
//   in flight finish on the old one, which is then freed.
// Reply: +OK once the model is ready. The command is propagated to replicas and the AOF, and
//   the registry is part of the RDB (registry_persistence.cpp): replicas load the same models
//   from their own infer.model-dir, and a restart loads them again in the background.
// Errors: READONLY You can't write against a read only replica. (on any replica, before the
//   arguments are read); ERR infer.model-dir is not set; ERR model path not found or not a
//   regular file inside infer.model-dir - got '<path>'; ERR model '<name>' is already loaded -
//   use REPLACE to swap it; ERR model '<name>' is already being loaded; ERR cannot load model
//   '<name>' - <reason>; ERR model '<name>' was unloaded before its load finished (an UNLOAD
//   cancelled it); ERR the module is shutting down; ERR invalid model name; range errors for
//   the numbers; ERR unknown option; wrong arity.
int cmd_load(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    const bool replicated = from_replication_or_aof(ctx);
    if (!replicated) refuse_on_replica(ctx);
    load_args a = parse_load(argv, argc, 1, true);
    if (replicated) {
        // Idempotent: a replica may already have it from the RDB it synced with.
        const auto have = state().registry.find(a.name);
        if ((have && have->weights->params().path == a.path && !a.replace) || state().registry.is_loading(a.name)) {
            return RedisModule_ReplyWithSimpleString(ctx, "OK");
        }
        const std::string name = a.name;
        const registry_status st = state().registry.load_async(a.name, a.params, true, [name](const registry_result & r) {
            log_background_load(name, r);
        });
        log_background_load(name, {st, {}});
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    rm::require_blocking_allowed(ctx, "INFER.LOAD");
    const rm::pending_reply pending = rm::block_client(ctx, std::make_shared<request_control>(),
        [](RedisModuleCtx * c, infer_result &) { return RedisModule_ReplyWithSimpleString(c, "OK"); });
    const std::string name = a.name;
    const registry_status st = state().registry.load_async(a.name, a.params, a.replace, [pending, name](const registry_result & res) {
        pending.complete({}, registry_error_text(name, res));
    });
    if (st != registry_status_ok) {
        pending.abort();
        throw rm::reply_error(registry_error_text(name, st));
    }
    RedisModule_ReplicateVerbatim(ctx);  // replicas and the AOF load it too
    return REDISMODULE_OK;
}

// INFER.UNLOAD name
//   Removes the model at once (new requests get "no such model"); queued requests get
//   "ERR model '<name>' was unloaded", running ones end with that error too; a load of the name
//   in progress (or a REPLACE) is cancelled, and its client gets "ERR model '<name>' was
//   unloaded before its load finished". The reply comes once the memory is returned.
// Reply: +OK.  Errors: READONLY You can't write against a read only replica. (on any replica);
//   ERR no such model '<name>'; ERR the module is shutting down; arity.
//   Propagated to replicas and the AOF like INFER.LOAD.
int cmd_unload(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    const std::string name(rm::str(argv[1]));
    if (from_replication_or_aof(ctx)) {
        state().registry.unload_async(name, nullptr);  // "no such model" is fine here
        return RedisModule_ReplyWithSimpleString(ctx, "OK");
    }
    refuse_on_replica(ctx);
    rm::require_blocking_allowed(ctx, "INFER.UNLOAD");
    const rm::pending_reply pending = rm::block_client(ctx, std::make_shared<request_control>(),
        [](RedisModuleCtx * c, infer_result &) { return RedisModule_ReplyWithSimpleString(c, "OK"); });
    const registry_status st = state().registry.unload_async(name, [pending, name](const registry_result & res) {
        pending.complete({}, registry_error_text(name, res));
    });
    if (st != registry_status_ok) {
        pending.abort();
        throw rm::reply_error(registry_error_text(name, st));
    }
    RedisModule_ReplicateVerbatim(ctx);
    return REDISMODULE_OK;
}

// INFER.MODELS
//   Reply: an array with one map per model: name, state (ready|loading), path, arch,
//   description, parameters, size_bytes, vocab_size, context (per slot), context_train, slots,
//   batch, threads, gpu_layers, kind (generation|embedding), dimension (embedding width).
//   Loading models show only what is known before load.
int cmd_models(RedisModuleCtx * ctx, RedisModuleString **, int argc) {
    if (argc != 1) return RedisModule_WrongArity(ctx);
    const auto models = state().registry.list();
    RedisModule_ReplyWithArray(ctx, long(models.size()));
    for (const auto & e : models) {
        const model_info info = e.instance ? e.instance->weights->info() : model_info{};
        const model_params & p = e.params;
        RedisModule_ReplyWithMap(ctx, 16);
        const auto kv_s = [&](const char * k, const std::string & v) { rm::reply_kv(ctx, k, v); };
        const auto kv_i = [&](const char * k, long long v) { rm::reply_kv(ctx, k, v); };
        kv_s("name", e.name);
        kv_s("state", e.state);
        kv_s("path", p.path);
        kv_s("arch", info.arch);
        kv_s("description", info.description);
        kv_i("parameters", (long long) info.n_params);
        kv_i("size_bytes", (long long) info.size_bytes);
        kv_i("vocab_size", info.n_vocab);
        kv_i("context", p.n_ctx);
        kv_i("context_train", info.n_ctx_train);
        kv_i("slots", p.n_slots);
        kv_i("batch", p.n_batch);
        kv_i("threads", p.n_threads);
        kv_i("gpu_layers", p.n_gpu_layers);
        kv_s("kind", p.embedding ? "embedding" : "generation");
        kv_i("dimension", info.n_embd);
    }
    return REDISMODULE_OK;
}

// Module arguments: MODEL name path [CTX n] [SLOTS n] ... [MODEL name path ...]
// Models load in the background after start-up; INFER.MODELS shows them as "loading" until ready.
int models_from_module_args(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    int i = 0;
    while (i < argc) {
        if (!iequals(rm::str(argv[i]), "MODEL")) {
            RedisModule_Log(ctx, "warning", "unknown module argument '%s' (expected MODEL name path [options])",
                            std::string(rm::str(argv[i])).c_str());
            return REDISMODULE_ERR;
        }
        int end = i + 1;
        while (end < argc && !iequals(rm::str(argv[end]), "MODEL")) ++end;
        try {
            const load_args a = parse_load(argv, end, i + 1, false);
            const std::string name = a.name;
            const registry_status st = state().registry.load_async(a.name, a.params, false, [name](const registry_result & r) {
                if (r.status != registry_status_ok) {
                    rm::log(r.status == registry_status_load_failed ? "warning" : "notice",
                            "start-up load of model " + name + " did not finish: " + registry_error_text(name, r));
                }
            });
            if (st != registry_status_ok) throw rm::reply_error(registry_error_text(name, st));
        } catch (const std::exception & e) {
            RedisModule_Log(ctx, "warning", "bad MODEL module argument: %s", e.what());
            return REDISMODULE_ERR;
        }
        i = end;
    }
    return REDISMODULE_OK;
}

namespace {

// Edits (insert, delete, replace; letters compared without case) that turn a into b, up to
// limit + 1: a model name one slip away from a loaded one is a typo worth pointing at.
size_t edit_distance(std::string_view a, std::string_view b, size_t limit) {
    if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
    const auto lc = [](char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; };
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (lc(a[i - 1]) != lc(b[j - 1]))});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

}  // namespace

std::shared_ptr<model_instance> ready_model(std::string_view name) {
    const std::string n(name);
    if (auto inst = state().registry.find(n)) return inst;
    if (state().registry.is_loading(n)) throw rm::reply_error("ERR model " + quote(n) + " is still loading");
    std::string close, loaded;
    for (const auto & e : state().registry.list()) {
        loaded += (loaded.empty() ? "" : ", ") + e.name;
        if (close.empty() && edit_distance(n, e.name, 2) <= 2) close = e.name;
    }
    if (!close.empty()) {
        throw rm::reply_error("ERR no such model " + quote(n) + " - did you mean " + quote(close) + "? loaded: " + loaded);
    }
    throw rm::reply_error("ERR no such model " + quote(n));
}

std::shared_ptr<model_instance> ready_model_of_kind(std::string_view name, bool embedding) {
    // An embedding model is what a newcomer most often lacks (a server started with only a
    // generation model): say how to get one, not only that the name is unknown.
    if (const std::string n(name); embedding && !state().registry.find(n) && !state().registry.is_loading(n)) {
        throw rm::reply_error("ERR no such model " + quote(n) +
                              " - load an embedding model with INFER.LOAD <name> <file.gguf> EMBEDDING");
    }
    auto inst = ready_model(name);
    if (inst->weights->params().embedding != embedding) {
        throw rm::reply_error(kind_error_text(name, embedding));
    }
    return inst;
}

}  // namespace infer::cmd
