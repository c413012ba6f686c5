// The module refuses to load on a CPU without the ISA its ggml was built for, instead of dying
// with SIGILL at the first decode. REDIS_INFER_CPUINFO points the check at a cpuinfo of a CPU
// without AVX2/FMA (an old Atom-class part); the real CPU runs the rest of the suite.
#include "support/redis_server.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace testing_support;

TEST(cpu_isa_startup, module_refuses_a_cpu_without_the_build_isa) {
    char tmpl[] = "/tmp/redis-infer-cpuinfo-XXXXXX";
    const int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    {
        std::ofstream f(tmpl);
        f << "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2\n";
    }
    setenv("REDIS_INFER_CPUINFO", tmpl, 1);
    redis_server s({"MODEL", "tiny", "tiny-q8_0.gguf"}, {}, /*expect_start=*/false);
    unsetenv("REDIS_INFER_CPUINFO");
    ::close(fd);
    std::remove(tmpl);
    EXPECT_FALSE(s.alive()) << "the module loaded on a CPU without AVX2";
    const std::string log = s.log();
    EXPECT_NE(log.find("redis-infer refuses to load: it was built for a CPU with"), std::string::npos) << log;
    EXPECT_NE(log.find("this CPU lacks avx,avx2,fma,f16c,bmi2"), std::string::npos) << log;
    EXPECT_NE(log.find("REDIS_INFER_CPU_PRESET=portable"), std::string::npos) << log;
}

TEST(cpu_isa_startup, module_loads_when_the_cpu_has_the_isa) {
    char tmpl[] = "/tmp/redis-infer-cpuinfo-XXXXXX";
    const int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    {
        std::ofstream f(tmpl);
        f << "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi1 bmi2 avx2 avx512f avx512cd "
             "avx512vl avx512dq avx512bw avx512_vbmi avx512_vnni avx512_bf16 avx_vnni amx_tile\n";
    }
    setenv("REDIS_INFER_CPUINFO", tmpl, 1);
    redis_server s({}, {});
    unsetenv("REDIS_INFER_CPUINFO");
    ::close(fd);
    std::remove(tmpl);
    EXPECT_TRUE(s.alive()) << s.log();
}
