// The NEON kernels against the scalar reference, bit for bit, built for AArch64 and run
// under qemu-user on x86 machines (tests/cross/check_neon.sh). Standalone: the kernels
// alone, no GoogleTest, so that it cross-compiles with nothing but the toolchain.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/kernels.h"

using namespace lutmul::kernels;

namespace {

int failures = 0, passes = 0;

void expect(bool ok, const char* what, long n, long m, int c, bool col_major) {
  if (ok) {
    ++passes;
  } else {
    ++failures;
    std::printf("FAILED: %s N=%ld M=%ld C=%d %s\n", what, n, m, c, col_major ? "column-major" : "row-major");
  }
}

void check_shape(long n, long m, int c, std::mt19937_64& rng) {
  const long d = 3 * c + 5;
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::uniform_int_distribution<long> pick_dim(0, d - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<int32_t> dims(static_cast<size_t>(c * kTreeDepth));
  for (auto& v : dims) v = static_cast<int32_t>(pick_dim(rng));
  std::vector<float> thresholds(static_cast<size_t>(c * kTreeDepth * kThresholdStride));
  for (size_t i = 0; i < thresholds.size(); ++i)
    thresholds[i] = i % 11 == 5 ? std::numeric_limits<float>::infinity() : value(rng);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (size_t i = 0; i < a.size(); ++i) a[i] = i % 7 == 0 ? thresholds[i % thresholds.size()] : value(rng);
  for (auto& v : a)
    if (std::isinf(v)) v = 0.5f;

  const int npairs = (c + 1) / 2;
  const long nblocks = (n + kBlockRows - 1) / kBlockRows;
  for (bool col_major : {false, true}) {
    const long ld = col_major ? n + 3 : d + 5;
    std::vector<float> storage(static_cast<size_t>((col_major ? d : n) * ld + 1), 1e30f);
    float* base = storage.data() + 1;
    for (long i = 0; i < n; ++i)
      for (long j = 0; j < d; ++j) (col_major ? base[j * ld + i] : base[i * ld + j]) = a[static_cast<size_t>(i * d + j)];
    std::vector<float> scratch(encode_scratch_floats(c));
    auto encode = [&](const KernelTable& table) {
      std::vector<uint8_t> packed(static_cast<size_t>(nblocks * npairs * kBlockRows), 0xAB);
      EncodeArgs args;
      args.a = base;
      args.rows = n;
      args.row_stride = col_major ? 1 : ld;
      args.col_stride = col_major ? ld : 1;
      args.ncodebooks = c;
      args.split_dims = dims.data();
      args.thresholds = thresholds.data();
      args.packed = packed.data();
      args.tail_scratch = scratch.data();
      table.encode(args, 0, nblocks);
      return packed;
    };
    expect(encode(scalar_kernels()) == encode(*neon_kernels()), "encode", n, m, c, col_major);
  }

  std::vector<uint8_t> packed(static_cast<size_t>(nblocks * npairs * kBlockRows));
  for (auto& b : packed) b = static_cast<uint8_t>(byte(rng));
  std::vector<uint8_t> tables(static_cast<size_t>(m * npairs * kPairBytes));
  for (auto& t : tables) t = static_cast<uint8_t>(byte(rng));
  std::vector<float> offsets(static_cast<size_t>(m));
  for (auto& o : offsets) o = static_cast<float>(byte(rng)) * 0.37f - 40.f;
  for (bool averaged : {false, true}) {
    auto scan = [&](const KernelTable& table) {
      const long ldy = m + 3;
      std::vector<float> y(static_cast<size_t>(n * ldy + 1), -7.25f);
      ScanArgs args;
      args.packed = packed.data();
      args.rows = n;
      args.npairs = npairs;
      args.tables = tables.data();
      args.outputs = m;
      args.scale = 0.0123f;
      args.offsets = offsets.data();
      args.averaged = averaged;
      args.y = y.data() + 1;
      args.ldy = ldy;
      table.scan(args, 0, nblocks, 0, m);
      return y;
    };
    const std::vector<float> expected = scan(scalar_kernels()), got = scan(*neon_kernels());
    expect(std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)) == 0,
           averaged ? "scan averaged" : "scan exact", n, m, c, false);
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(2024);
  for (long n : {1L, 31L, 33L, 64L, 1000L})
    for (long m : {1L, 3L, 10L, 100L})
      for (int c : {1, 2, 3, 8, 16, 24, 32, 64}) check_shape(n, m, c, rng);
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
