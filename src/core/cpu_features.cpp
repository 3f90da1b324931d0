// The only place that asks the CPU what it has. Built without ISA flags.
#include "lutmul/core/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
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

// A cache's size as Linux's sysfs writes it ("512K", "32768K", "1M"); 0 if unreadable.
int64_t sysfs_cache_bytes(const std::string& path) {
  std::ifstream in(path);
  int64_t value = 0;
  std::string unit;
  if (!(in >> value) || value <= 0) return 0;
  in >> unit;
  return unit == "K" ? value << 10 : unit == "M" ? value << 20 : unit == "G" ? value << 30 : value;
}

// The caches of the first CPU from Linux's sysfs: the L3 there is the slice this core shares
// (one CCX's 32 MiB on an EPYC), where glibc's sysconf reports the whole package's (256 MiB).
// Elsewhere, or with no sysfs, sysconf's figures (0 where it knows none).
CpuFeatures with_cache_sizes(CpuFeatures f) {
  const std::string root = "/sys/devices/system/cpu/cpu0/cache/index";
  for (int index = 0; index < 8; ++index) {
    std::ifstream level_file(root + std::to_string(index) + "/level"), type_file(root + std::to_string(index) + "/type");
    int level = 0;
    std::string type;
    if (!(level_file >> level) || !(type_file >> type)) break;
    if (type == "Instruction") continue;
    const int64_t bytes = sysfs_cache_bytes(root + std::to_string(index) + "/size");
    if (level == 2) f.l2_bytes = bytes;
    if (level >= 2 && bytes > 0) f.last_level_bytes = bytes;
  }
#if defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  if (f.l2_bytes == 0) f.l2_bytes = std::max<long>(sysconf(_SC_LEVEL2_CACHE_SIZE), 0);
  if (f.last_level_bytes == 0) {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    f.last_level_bytes = l3 > 0 ? l3 : f.l2_bytes;
  }
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = with_cache_sizes(probe());
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
