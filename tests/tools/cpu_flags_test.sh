#!/usr/bin/env bash
# scripts/deps.sh's ISA selection on CPUs we do not have: the flags it turns on follow the CPU's
# cpuinfo (AVX-512 only where present), AMX is never on, the portable preset is the AVX2 baseline
# whatever the CPU, and REDIS_INFER_CPU_FLAGS overrides with the ISA it needs recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # name, got, want
    if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2', want '$3'"; fail=1; else echo "ok   $1"; fi
}
on_flags() { tr ' ' '\n' <<<"$DEPS_CPU_FLAGS" | grep '=ON$' | sed 's/^-D//; s/=ON$//' | tr '\n' ' ' | sed 's/ $//'; }

printf 'processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 sse4a\n' >"$tmp/zen2"
printf 'flags\t\t: sse4_2 avx avx2 fma f16c bmi2 avx_vnni avx512f avx512dq avx512cd avx512bw avx512vl avx512_vbmi avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n' >"$tmp/spr"
printf 'flags\t\t: sse sse2 ssse3 sse4_1 sse4_2\n' >"$tmp/atom"
printf 'flags\t\t: sse4_2 avx avx2 fma f16c bmi2 avx512f avx512cd\n' >"$tmp/partial512"

REDIS_INFER_CPUINFO=$tmp/zen2 REDIS_INFER_CPU_PRESET=detect deps_cpu_flags
check "zen2 detect" "$(on_flags)" "GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2"
check "zen2 isa" "$DEPS_CPU_ISA" "sse4_2,avx,avx2,fma,f16c,bmi2"
zen2_flags=$DEPS_CPU_FLAGS

REDIS_INFER_CPUINFO=$tmp/spr REDIS_INFER_CPU_PRESET=detect deps_cpu_flags
check "sapphire rapids detect" "$(on_flags)" \
    "GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2 GGML_AVX_VNNI GGML_AVX512 GGML_AVX512_VBMI GGML_AVX512_VNNI GGML_AVX512_BF16"
case "$DEPS_CPU_FLAGS" in *AMX*=ON*) check "no AMX" on off;; *) check "no AMX" off off;; esac
case "$DEPS_CPU_FLAGS" in *"-DGGML_AMX_TILE=OFF"*) check "AMX explicitly off" yes yes;; *) check "AMX explicitly off" no yes;; esac

REDIS_INFER_CPUINFO=$tmp/spr REDIS_INFER_CPU_PRESET=portable deps_cpu_flags
check "portable on sapphire rapids" "$(on_flags)" "GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2"
check "portable equals a zen2 build (one cache entry)" "$DEPS_CPU_FLAGS" "$zen2_flags"

REDIS_INFER_CPUINFO=$tmp/partial512 REDIS_INFER_CPU_PRESET=detect deps_cpu_flags
check "AVX-512 needs F+CD+VL+DQ+BW" "$(on_flags)" "GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2"

REDIS_INFER_CPUINFO=$tmp/atom REDIS_INFER_CPU_PRESET=detect deps_cpu_flags
check "no AVX" "$(on_flags)" "GGML_SSE42"

REDIS_INFER_CPU_FLAGS="-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_AVX512=ON" deps_cpu_flags
check "override isa" "$DEPS_CPU_ISA" "avx,avx2,avx512f,avx512cd,avx512vl,avx512dq,avx512bw"

if REDIS_INFER_CPU_PRESET=bogus deps_cpu_flags 2>/dev/null; then check "bad preset refused" accepted refused; else check "bad preset refused" refused refused; fi
exit $fail
