// The module's load-time ISA check: which build flags a CPU lacks, read from /proc/cpuinfo text.
#include "engine/cpu_isa.h"

#include <gtest/gtest.h>

using namespace infer;

namespace {

const char * k_zen2 =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2\n"
    "bugs\t\t: sysret_ss_attrs\n\nprocessor\t: 1\nflags\t\t: fpu sse\n";
const char * k_sapphire =
    "processor\t: 0\nflags\t\t: sse4_2 avx avx2 fma f16c bmi2 avx_vnni avx512f avx512dq avx512cd avx512bw avx512vl "
    "avx512_vbmi avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\nvmx flags\t: vnmi\n";

}  // namespace

TEST(cpu_isa, reads_the_first_flags_line_only) {
    EXPECT_EQ(cpuinfo_flags(k_zen2), " fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2");
    // "vmx flags" is not "flags".
    EXPECT_EQ(cpuinfo_flags("vmx flags\t: vnmi\n"), "");
    EXPECT_EQ(cpuinfo_flags(""), "");
}

TEST(cpu_isa, an_avx2_build_runs_on_both) {
    const std::string req = "sse4_2,avx,avx2,fma,f16c,bmi2";
    EXPECT_TRUE(cpu_isa_missing(req, cpuinfo_flags(k_zen2)).empty());
    EXPECT_TRUE(cpu_isa_missing(req, cpuinfo_flags(k_sapphire)).empty());
}

TEST(cpu_isa, an_avx512_build_names_what_a_zen2_lacks) {
    const std::string req = "sse4_2,avx,avx2,fma,f16c,bmi2,avx512f,avx512cd,avx512vl,avx512dq,avx512bw,avx512_vnni";
    EXPECT_TRUE(cpu_isa_missing(req, cpuinfo_flags(k_sapphire)).empty());
    const auto missing = cpu_isa_missing(req, cpuinfo_flags(k_zen2));
    const std::vector<std::string> want = {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512_vnni"};
    EXPECT_EQ(missing, want);
}

TEST(cpu_isa, whole_names_only_and_nothing_required_is_fine) {
    // avx512f must not be satisfied by avx512fp16, nor avx by avx2.
    EXPECT_EQ(cpu_isa_missing("avx512f", "avx512fp16 avx2"), std::vector<std::string>{"avx512f"});
    EXPECT_EQ(cpu_isa_missing("avx", "avx2"), std::vector<std::string>{"avx"});
    EXPECT_TRUE(cpu_isa_missing("", "avx").empty());
    EXPECT_EQ(cpu_isa_missing("avx2", ""), std::vector<std::string>{"avx2"});
}
