/* A module with two deliberate bugs, for scripts/asan.sh: ASANCANARY.OVERFLOW reads one byte
 * past a heap block, ASANCANARY.LEAK drops the only pointer to a heap block (reported by
 * LeakSanitizer when the server exits). If preloading GCC's ASan runtime into an uninstrumented
 * redis-server ever stops catching bugs in an instrumented module (a runtime, kernel or wrapper
 * change, log_path going nowhere, a suppression that is too broad), these show it before
 * "no reports" is believed. Built by scripts/asan.sh with gcc -fsanitize=address; never part of
 * the product. */
#include "redismodule.h"

#include <stdlib.h>
#include <string.h>

static int overflow(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    char * p = malloc(8);
    memset(p, 1, 8);
    volatile char c = p[8]; /* heap-buffer-overflow: ASan stops the server here */
    free(p);
    return RedisModule_ReplyWithLongLong(ctx, c);
}

/* Not inlined, so no copy of the pointer stays in the command's frame. */
__attribute__((noinline)) static void leak_one(void) {
    void * volatile p = malloc(4096);
    memset(p, 2, 4096);
    p = NULL;
}

static int leak(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    leak_one();
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

int RedisModule_OnLoad(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    if (RedisModule_Init(ctx, "asancanary", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    if (RedisModule_CreateCommand(ctx, "asancanary.overflow", overflow, "", 0, 0, 0) == REDISMODULE_ERR) return REDISMODULE_ERR;
    return RedisModule_CreateCommand(ctx, "asancanary.leak", leak, "", 0, 0, 0);
}
