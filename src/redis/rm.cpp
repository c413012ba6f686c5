// Defines redismodule.h's API pointers (see rm.h) and the logging helper.
#define REDISMODULE_API
#include "redis/rm.h"

namespace infer::rm {

void log(const char * level, const std::string & msg) {
    RedisModule_Log(nullptr, level, "%s", msg.c_str());
}

}  // namespace infer::rm
