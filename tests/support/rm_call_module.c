/* A test-only module that calls other commands through RedisModule_Call, as a module built on
 * top of redis-infer would. RMCALL.CALL <flags> <command> [arg ...] runs the command with the
 * format "v" plus <flags> ("-" for none; "E" returns Redis's own refusals as error replies) and
 * replies with whatever the call replied. Used by tests/integration/rm_call_test.cpp to check
 * that INFER's blocking commands, reached from a module, answer with a clear error instead of
 * blocking a client that cannot block. Never part of the product. */
#include "redismodule.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int call(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    size_t n = 0;
    const char * flags = RedisModule_StringPtrLen(argv[1], &n);
    char fmt[16] = "v";
    if (strcmp(flags, "-") != 0) {
        if (n > sizeof fmt - 2) return RedisModule_ReplyWithError(ctx, "ERR flags too long");
        memcpy(fmt + 1, flags, n + 1);
    }
    const char * command = RedisModule_StringPtrLen(argv[2], NULL);
    RedisModuleCallReply * reply = RedisModule_Call(ctx, command, fmt, argv + 3, (size_t) (argc - 3));
    if (!reply) {
        char err[64];
        snprintf(err, sizeof err, "ERR RedisModule_Call returned NULL, errno %d", errno);
        return RedisModule_ReplyWithError(ctx, err);
    }
    RedisModule_ReplyWithCallReply(ctx, reply);
    RedisModule_FreeCallReply(reply);
    return REDISMODULE_OK;
}

int RedisModule_OnLoad(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    if (RedisModule_Init(ctx, "rmcall", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    return RedisModule_CreateCommand(ctx, "rmcall.call", call, "write", 0, 0, 0);
}
