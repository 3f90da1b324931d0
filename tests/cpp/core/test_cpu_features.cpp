// The cache sizes lutmul reads (CpuFeatures::l2_bytes, last_level_bytes): Linux's sysfs figures
// for the first CPU, where it has them.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "lutmul/core/cpu_features.h"

namespace {

// The size of the cache at sysfs index `index` of CPU 0, by a parse of its own; -1 if absent.
int64_t sysfs_size(int index) {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
  std::string text;
  if (!(in >> text) || text.empty()) return -1;
  const char unit = text.back();
  const int64_t number = std::stoll(unit >= '0' && unit <= '9' ? text : text.substr(0, text.size() - 1));
  return unit == 'K' ? number * 1024 : unit == 'M' ? number * 1024 * 1024 : number;
}

int sysfs_level(int index) {
  std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/level");
  int level = 0;
  return in >> level ? level : -1;
}

TEST(CpuFeatures, CacheSizesAreSysfsFigures) {
  int64_t l2 = -1, last = -1;
  for (int index = 0; index < 8 && sysfs_level(index) > 0; ++index) {
    if (sysfs_level(index) == 2) l2 = sysfs_size(index);
    if (sysfs_level(index) >= 2) last = sysfs_size(index);
  }
  if (l2 <= 0) GTEST_SKIP() << "this machine's sysfs lists no L2 for CPU 0";
  const lutmul::CpuFeatures& cpu = lutmul::cpu_features();
  EXPECT_EQ(l2, cpu.l2_bytes);
  EXPECT_EQ(last, cpu.last_level_bytes);
  EXPECT_GE(cpu.last_level_bytes, cpu.l2_bytes);
}

}  // namespace
