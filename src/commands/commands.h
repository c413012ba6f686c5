// The glue between Redis and the engine: every INFER.* handler, the configs, the INFO section.
// Handlers run on the Redis main thread; they parse, validate, copy what they need out of the
// keyspace and hand typed requests to the engine. They never call llama.cpp.
#pragma once

#include "engine/model_registry.h"
#include "redis/rm.h"

#include <memory>
#include <string>
#include <vector>

namespace infer::cmd {

// Module-wide state, created in OnLoad and destroyed in OnUnload. Configs are main-thread only.
struct module_state {
    model_registry registry;
    std::string model_dir;         // infer.model-dir (canonical), "" = unset
    long long queue_max = 64;      // infer.queue-size: per model, applied at load
    long long max_prompt_bytes = 64ll << 20;  // infer.max-prompt-bytes: PROMPT keys together
    long long max_model_memory = 0;  // infer.max-model-memory: bytes for all models, 0 = no limit
};

module_state & state();
void state_create();
void state_destroy();

// config.cpp
int config_register(RedisModuleCtx * ctx);

// info.cpp
int cmd_info(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
void info_section(RedisModuleInfoCtx * ctx, int for_crash_report);

// models.cpp
int cmd_load(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_unload(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_models(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
// Loads the models named in module arguments: MODEL name path [LOAD options] ...
int models_from_module_args(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
// Queues a load with nobody waiting for it (RDB aux data, replication, AOF); "" or the error.
// p: the load options; path and queue size are filled in here.
std::string load_model_in_background(const std::string & name, const std::string & path, model_params p);

// registry_persistence.cpp
int registry_persistence_register(RedisModuleCtx * ctx);

// The model named by argv, ready to take requests, or a reply_error (models.cpp).
std::shared_ptr<model_instance> ready_model(std::string_view name);
// The same, and of the wanted kind: generation or embedding.
std::shared_ptr<model_instance> ready_model_of_kind(std::string_view name, bool embedding);

// tokens.cpp
int cmd_tokenize(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_detokenize(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);

// embed.cpp: INFER.EMBED, INFER.INGEST; rag.cpp: INFER.RAG
int cmd_embed(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_ingest(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_rag(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);

// generate.cpp, chat.cpp
int cmd_generate(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);
int cmd_chat(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc);

}  // namespace infer::cmd
