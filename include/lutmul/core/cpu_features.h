// What the CPU (and the operating system, for the register state it saves) can run, read
// once per process. The kernel registry decides from these which kernels may run; they are
// public so that programs can print them next to a measurement.
#pragma once

#include <cstdint>
#include <string>

namespace lutmul {

struct CpuFeatures {
  // x86-64. Each AVX flag is true only when the OS also saves the registers it needs.
  bool avx2 = false, fma = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512vbmi = false;  // vpermb
  bool avx512vnni = false;  // 512-bit vpdpbusd (Cascade Lake, Ice Lake, Zen 4)
  bool avxvnni = false;     // VEX-encoded 256-bit vpdpbusd (Alder Lake, Sapphire Rapids, Zen 5)
  bool avx512bf16 = false;  // vdpbf16ps (Cooper Lake, Sapphire Rapids, Zen 4)
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;  // Sapphire Rapids and later
  // AArch64: Advanced SIMD is part of the architecture.
  bool neon = false;
  // Cache sizes the OS reports, in bytes (0 where it reports none): L2 per core, and the last
  // level (L3, else L2).
  int64_t l2_bytes = 0, last_level_bytes = 0;
};

// Read on first use (cpuid and xgetbv on x86-64); the same object afterwards.
const CpuFeatures& cpu_features();

// The flags that are set, space-separated ("avx2 fma bmi2 avx512f ..."), for reports.
std::string describe(const CpuFeatures& features);

}  // namespace lutmul
