// The only place that asks the CPU what it has. Built without ISA flags.
#include "lutmul/core/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

#include <cstdint>
#include <utility>

namespace lutmul {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
bool bit(uint32_t value, int index) { return ((value >> index) & 1u) != 0; }

// XCR0: which register state the OS saves on a context switch.
uint64_t xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures probe() {
  CpuFeatures f;
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = bit(ecx, 27), avx = bit(ecx, 28), fma = bit(ecx, 12);
  const uint64_t saved = osxsave ? xcr0() : 0;
  const bool os_avx = (saved & 0x6) == 0x6;                     // XMM and YMM state
  const bool os_avx512 = os_avx && (saved & 0xe0) == 0xe0;      // opmask, ZMM0-15 upper, ZMM16-31
  const bool os_amx = (saved & 0x60000) == 0x60000;             // XTILECFG, XTILEDATA

  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const uint32_t leaf7_ebx = ebx, leaf7_ecx = ecx, leaf7_edx = edx;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const uint32_t leaf7_1_eax = eax;

  f.fma = os_avx && avx && fma;
  f.avx2 = os_avx && avx && bit(leaf7_ebx, 5);
  f.bmi2 = bit(leaf7_ebx, 8);
  f.avx512f = os_avx512 && bit(leaf7_ebx, 16);
  f.avx512dq = f.avx512f && bit(leaf7_ebx, 17);
  f.avx512bw = f.avx512f && bit(leaf7_ebx, 30);
  f.avx512vl = f.avx512f && bit(leaf7_ebx, 31);
  f.avx512vbmi = f.avx512f && bit(leaf7_ecx, 1);
  f.avx512vnni = f.avx512f && bit(leaf7_ecx, 11);
  f.avxvnni = f.avx2 && bit(leaf7_1_eax, 4);
  f.avx512bf16 = f.avx512f && bit(leaf7_1_eax, 5);
  f.amx_tile = os_amx && bit(leaf7_edx, 24);
  f.amx_int8 = f.amx_tile && bit(leaf7_edx, 25);
  f.amx_bf16 = f.amx_tile && bit(leaf7_edx, 22);
  return f;
}
#elif defined(__aarch64__)
CpuFeatures probe() {
  CpuFeatures f;
  f.neon = true;
  return f;
}
#else
CpuFeatures probe() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = probe();
  return features;
}

std::string describe(const CpuFeatures& f) {
  const std::pair<const char*, bool> flags[] = {
      {"avx2", f.avx2},         {"fma", f.fma},           {"bmi2", f.bmi2},         {"avx512f", f.avx512f},
      {"avx512bw", f.avx512bw}, {"avx512dq", f.avx512dq}, {"avx512vl", f.avx512vl}, {"avx512vbmi", f.avx512vbmi},
      {"avx512vnni", f.avx512vnni}, {"avxvnni", f.avxvnni}, {"avx512bf16", f.avx512bf16}, {"amx-tile", f.amx_tile},
      {"amx-int8", f.amx_int8}, {"amx-bf16", f.amx_bf16}, {"neon", f.neon}};
  std::string out;
  for (const auto& [name, present] : flags)
    if (present) out += (out.empty() ? "" : " ") + std::string(name);
  return out;
}

}  // namespace lutmul
