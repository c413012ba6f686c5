# Prints which redis-server the integration tests start (its path and version) and fails if it
# is not the one CMake was configured with (scripts/deps.sh picks it: a system 8.x on PATH, else
# the pinned build), so a swapped binary cannot pass unnoticed. The ctest name carries the
# version seen at configure time.
#   cmake -DREDIS_SERVER=<bin> -DEXPECTED=<x.y.z> -P redis_server_version.cmake
execute_process(COMMAND ${REDIS_SERVER} --version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH " v=([^ ]+)" _ "${out}")
set(ver "${CMAKE_MATCH_1}")
if(NOT rc EQUAL 0 OR NOT ver)
  message(FATAL_ERROR "${REDIS_SERVER} --version failed (${rc}): ${out}${err}")
endif()
message(STATUS "redis-server used by the tests: ${REDIS_SERVER} v=${ver}")
if(NOT ver MATCHES "^8\\.")
  message(FATAL_ERROR "${REDIS_SERVER} is Redis ${ver}; the module needs 8.x")
endif()
if(NOT ver STREQUAL EXPECTED)
  message(FATAL_ERROR "${REDIS_SERVER} is now v=${ver}, configured with v=${EXPECTED}: re-run cmake (scripts/test.sh does)")
endif()
