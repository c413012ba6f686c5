// INFER.INFO and the `infer` section of INFO: what is running, on what, and how busy it is.
#include "commands/commands.h"

#include "commands/args.h"
#include "engine/backend.h"

namespace infer::cmd {
namespace {

using rm::reply_kv;

void reply_model_stats(RedisModuleCtx * ctx, const model_entry_view & e) {
    const bool ready = e.instance != nullptr;
    const executor_stats s = ready ? e.instance->sched->stats() : executor_stats{};
    const memory_usage m = ready ? e.instance->sched->memory() : memory_usage{};
    RedisModule_ReplyWithMap(ctx, 20);
    reply_kv(ctx, "name", e.name);
    reply_kv(ctx, "state", e.state);
    reply_kv(ctx, "slots_busy", (long long) s.slots_busy);
    reply_kv(ctx, "slots", (long long) (ready ? s.slots_total : e.params.n_slots));
    reply_kv(ctx, "queue_depth", (long long) s.queue_depth);
    reply_kv(ctx, "queue_max", (long long) s.queue_max);
    reply_kv(ctx, "requests", (long long) s.requests_total);
    reply_kv(ctx, "requests_failed", (long long) s.requests_failed);
    reply_kv(ctx, "prompt_tokens", (long long) s.prompt_tokens);
    reply_kv(ctx, "generated_tokens", (long long) s.generated_tokens);
    reply_kv(ctx, "tokens_per_sec", s.tokens_per_sec);
    reply_kv(ctx, "prefix_hits", (long long) s.prefix_hits);
    reply_kv(ctx, "prefix_hit_tokens", (long long) s.prefix_hit_tokens);
    reply_kv(ctx, "prefix_evictions", (long long) s.prefix_evictions);
    reply_kv(ctx, "prefix_copies", (long long) s.prefix_copies);
    reply_kv(ctx, "weights_cpu_bytes", (long long) m.weights_cpu);
    reply_kv(ctx, "weights_gpu_bytes", (long long) m.weights_gpu);
    reply_kv(ctx, "kv_bytes", (long long) m.kv);
    reply_kv(ctx, "compute_bytes", (long long) m.compute);
    reply_kv(ctx, "memory_bytes", (long long) m.total());
}

}  // namespace

// INFER.INFO [model]
//   Without a model: a map of module_version, llama_cpp_version, backend, model_dir and models
//   (an array with one map per model as below). With a model: that model's map:
//   name, state (ready|loading), slots_busy, slots, queue_depth, queue_max, requests,
//   requests_failed, prompt_tokens (prefilled), generated_tokens, tokens_per_sec, prefix_hits,
//   prefix_hit_tokens, prefix_evictions, prefix_copies, then what llama.cpp allocated for it in
//   bytes (0 while loading): weights_cpu_bytes, weights_gpu_bytes, kv_bytes, compute_bytes and
//   memory_bytes (their sum).
// Errors: ERR no such model '<name>'; wrong arity.
int cmd_info(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc > 2) return RedisModule_WrongArity(ctx);
    const auto models = state().registry.list();
    if (argc == 2) {
        const std::string name(rm::str(argv[1]));
        for (const auto & e : models) {
            if (e.name == name) {
                reply_model_stats(ctx, e);
                return REDISMODULE_OK;
            }
        }
        throw rm::reply_error("ERR no such model " + quote(name));
    }
    RedisModule_ReplyWithMap(ctx, 5);
    reply_kv(ctx, "module_version", std::string(REDIS_INFER_VERSION));
    reply_kv(ctx, "llama_cpp_version", backend_version());
    reply_kv(ctx, "backend", backend_description());
    reply_kv(ctx, "model_dir", state().model_dir);
    RedisModule_ReplyWithCString(ctx, "models");
    RedisModule_ReplyWithArray(ctx, long(models.size()));
    for (const auto & e : models) reply_model_stats(ctx, e);
    return REDISMODULE_OK;
}

// INFO infer: module facts, the memory of all models together (bytes, what llama.cpp
// allocated: models_memory_bytes is the sum of the other four; max_model_memory is the config,
// 0 = no limit), then one dict line per model
//   model_<name>:state=ready,slots_busy=0,slots=4,queue_depth=0,...,memory_bytes=N
void info_section(RedisModuleInfoCtx * ctx, int) {
    RedisModule_InfoAddSection(ctx, "");
    RedisModule_InfoAddFieldCString(ctx, "module_version", REDIS_INFER_VERSION);
    RedisModule_InfoAddFieldCString(ctx, "llama_cpp_version", backend_version().c_str());
    RedisModule_InfoAddFieldCString(ctx, "backend", backend_description().c_str());
    const auto models = state().registry.list();
    RedisModule_InfoAddFieldLongLong(ctx, "models", (long long) models.size());
    memory_usage sum;
    for (const auto & e : models) {
        if (!e.instance) continue;
        const memory_usage & m = e.instance->sched->memory();
        sum.weights_cpu += m.weights_cpu;
        sum.weights_gpu += m.weights_gpu;
        sum.kv += m.kv;
        sum.compute += m.compute;
    }
    RedisModule_InfoAddFieldULongLong(ctx, "models_weights_cpu_bytes", sum.weights_cpu);
    RedisModule_InfoAddFieldULongLong(ctx, "models_weights_gpu_bytes", sum.weights_gpu);
    RedisModule_InfoAddFieldULongLong(ctx, "models_kv_bytes", sum.kv);
    RedisModule_InfoAddFieldULongLong(ctx, "models_compute_bytes", sum.compute);
    RedisModule_InfoAddFieldULongLong(ctx, "models_memory_bytes", sum.total());
    RedisModule_InfoAddFieldLongLong(ctx, "max_model_memory", state().max_model_memory);
    for (const auto & e : models) {
        std::string field = "model_";
        for (char c : e.name) field += (isalnum((unsigned char) c) || c == '_' || c == '-') ? c : '_';
        const executor_stats s = e.instance ? e.instance->sched->stats() : executor_stats{};
        RedisModule_InfoBeginDictField(ctx, field.c_str());
        RedisModule_InfoAddFieldCString(ctx, "state", e.state.c_str());
        RedisModule_InfoAddFieldULongLong(ctx, "slots_busy", s.slots_busy);
        RedisModule_InfoAddFieldULongLong(ctx, "slots", s.slots_total);
        RedisModule_InfoAddFieldULongLong(ctx, "queue_depth", s.queue_depth);
        RedisModule_InfoAddFieldULongLong(ctx, "requests", s.requests_total);
        RedisModule_InfoAddFieldULongLong(ctx, "requests_failed", s.requests_failed);
        RedisModule_InfoAddFieldULongLong(ctx, "prompt_tokens", s.prompt_tokens);
        RedisModule_InfoAddFieldULongLong(ctx, "generated_tokens", s.generated_tokens);
        RedisModule_InfoAddFieldDouble(ctx, "tokens_per_sec", s.tokens_per_sec);
        RedisModule_InfoAddFieldULongLong(ctx, "prefix_hits", s.prefix_hits);
        RedisModule_InfoAddFieldULongLong(ctx, "prefix_hit_tokens", s.prefix_hit_tokens);
        RedisModule_InfoAddFieldULongLong(ctx, "prefix_evictions", s.prefix_evictions);
        const memory_usage m = e.instance ? e.instance->sched->memory() : memory_usage{};
        RedisModule_InfoAddFieldULongLong(ctx, "weights_cpu_bytes", m.weights_cpu);
        RedisModule_InfoAddFieldULongLong(ctx, "weights_gpu_bytes", m.weights_gpu);
        RedisModule_InfoAddFieldULongLong(ctx, "kv_bytes", m.kv);
        RedisModule_InfoAddFieldULongLong(ctx, "compute_bytes", m.compute);
        RedisModule_InfoAddFieldULongLong(ctx, "memory_bytes", m.total());
        RedisModule_InfoEndDictField(ctx);
    }
}

}  // namespace infer::cmd
