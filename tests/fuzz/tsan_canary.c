/* A module with one deliberate data race, for scripts/tsan.sh: TSANCANARY.RACE starts a thread
 * that writes a counter the main thread writes too, without a lock. If preloading the TSan
 * runtime into an uninstrumented redis-server ever stops reporting races in an instrumented
 * module (a runtime or kernel change), this canary shows it before "no reports" is believed.
 * Built by scripts/tsan.sh with gcc -fsanitize=thread; never part of the product. */
#include "redismodule.h"

#include <pthread.h>

static long counter;

static void * writer(void * arg) {
    (void) arg;
    counter++; /* races with the main thread's write below */
    return NULL;
}

static int race(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    counter++;
    pthread_join(t, NULL);
    return RedisModule_ReplyWithLongLong(ctx, counter);
}

int RedisModule_OnLoad(RedisModuleCtx * ctx, RedisModuleString ** argv, int argc) {
    (void) argv;
    (void) argc;
    if (RedisModule_Init(ctx, "tsancanary", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
    return RedisModule_CreateCommand(ctx, "tsancanary.race", race, "", 0, 0, 0);
}
