// The x86 instruction-set extensions ggml was compiled for, checked against the CPU the module
// runs on. ggml's CPU backend is built for a fixed ISA (scripts/deps.sh derives it from the build
// machine, or the portable AVX2 baseline); loaded on a CPU without it, the first decode dies with
// SIGILL and takes Redis and its data with it. Refusing to load is the only safe answer.
// Flag names are /proc/cpuinfo's (avx2, avx512f, avx512_vnni, ...), the kernel's view, which
// also drops extensions the OS does not enable (AVX-512 state not saved, for one).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace infer {

// The flags of the first "flags" line of a /proc/cpuinfo text ("" if there is none).
std::string cpuinfo_flags(std::string_view cpuinfo);

// The flags in `required` (comma- or space-separated) that `cpu_flags` (space-separated) lacks,
// in the order required names them.
std::vector<std::string> cpu_isa_missing(std::string_view required, std::string_view cpu_flags);

}  // namespace infer
