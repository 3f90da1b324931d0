// The NEON kernels (MADDNESS encode and scan with 16- and 64-leaf trees, the pruned products) against the scalar
// reference, bit for bit, built for AArch64 and run under qemu-user on x86 machines
// (tests/cross/check_neon.sh). Standalone: the kernels alone, no GoogleTest, so that it
// cross-compiles with nothing but the toolchain.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/pruned/sparse24_kernels.h"
#include "kernels/cpu/pruned/sparse_kernels.h"

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

// The narrow outputs of one scan (`scan` of a table, `args` describing codes, tables, scales
// and offsets): the integer sums, and bfloat16 Y stored and accumulated, against the reference.
void check_narrow(ScanArgs args, ScanFn KernelTable::*scan, const char* what, long n, long m, int c) {
  const long ldy = m + 3, nblocks = (n + kBlockRows - 1) / kBlockRows;
  args.ldy = ldy;
  std::vector<uint16_t> old(static_cast<size_t>(n * ldy + 1));
  for (size_t i = 0; i < old.size(); ++i) old[i] = float_to_bf16_bits(static_cast<float>(i % 13) * 0.375f - 2.f);
  for (const ScanOutput output : {ScanOutput::sums, ScanOutput::bf16}) {
    for (const bool accumulate : {false, true}) {
      if (output == ScanOutput::sums && accumulate) continue;
      auto run = [&](const KernelTable& table) {
        std::vector<uint16_t> y = old;
        ScanArgs here = args;
        here.output = output;
        here.accumulate = accumulate;
        here.y16 = y.data() + 1;
        (table.*scan)(here, 0, nblocks, 0, m);
        return y;
      };
      expect(run(scalar_kernels()) == run(*neon_kernels()), what, n, m, c, accumulate);
    }
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
  std::vector<float> offsets(static_cast<size_t>(m)), scales(static_cast<size_t>(m));
  for (auto& o : offsets) o = static_cast<float>(byte(rng)) * 0.37f - 40.f;
  for (auto& s : scales) s = 0.0123f * static_cast<float>(1 + byte(rng) % 7);
  ScanArgs base;
  base.packed = packed.data();
  base.rows = n;
  base.npairs = npairs;
  base.tables = tables.data();
  base.outputs = m;
  base.scales = scales.data();
  base.offsets = offsets.data();
  for (bool averaged : {false, true}) {
    base.averaged = averaged;
    auto scan = [&](const KernelTable& table, bool stream = false, long ldy = 0) {
      ldy = ldy > 0 ? ldy : m + 3;
      std::vector<float> y(static_cast<size_t>(n * ldy + 1), -7.25f);
      ScanArgs args = base;
      args.y = y.data() + 1;
      args.ldy = ldy;
      args.stream_y = stream;
      table.scan(args, 0, nblocks, 0, m);
      return y;
    };
    const std::vector<float> expected = scan(scalar_kernels()), got = scan(*neon_kernels());
    expect(std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)) == 0,
           averaged ? "scan averaged" : "scan exact", n, m, c, false);
    // Y through the staged, streamed writer (plain stores on NEON), rows apart and contiguous.
    expect(scan(*neon_kernels(), true) == expected && scan(*neon_kernels(), true, m) == scan(scalar_kernels(), false, m),
           averaged ? "scan averaged, streamed Y" : "scan exact, streamed Y", n, m, c, false);
    check_narrow(base, &KernelTable::scan, averaged ? "narrow outputs, averaged (accumulating: 'column-major')"
                                                    : "narrow outputs, exact (accumulating: 'column-major')",
                 n, m, c);
  }
}

// 64-leaf trees: encode (both layouts, a partial last block) and the exact scan.
void check_wide_shape(long n, long m, int c, std::mt19937_64& rng) {
  const long d = 2 * c + 7;
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::uniform_int_distribution<long> pick_dim(0, d - 1);
  std::uniform_int_distribution<int> byte(0, 255), code(0, kWideLeaves - 1);
  std::vector<int32_t> dims(static_cast<size_t>(c * kWideTreeDepth));
  for (auto& v : dims) v = static_cast<int32_t>(pick_dim(rng));
  std::vector<float> thresholds(static_cast<size_t>(c * kWideTreeDepth * kWideThresholdStride));
  for (size_t i = 0; i < thresholds.size(); ++i)
    thresholds[i] = i % 13 == 6 ? std::numeric_limits<float>::infinity() : value(rng);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (size_t i = 0; i < a.size(); ++i) a[i] = i % 7 == 0 ? thresholds[i % thresholds.size()] : value(rng);
  for (float& x : a)
    if (std::isinf(x)) x = 0.5f;
  const long nblocks = (n + kBlockRows - 1) / kBlockRows;
  for (bool col_major : {false, true}) {
    const long ld = col_major ? n + 3 : d + 5;
    std::vector<float> storage(static_cast<size_t>((col_major ? d : n) * ld + 1), 1e30f);
    float* base = storage.data() + 1;
    for (long i = 0; i < n; ++i)
      for (long j = 0; j < d; ++j) (col_major ? base[j * ld + i] : base[i * ld + j]) = a[static_cast<size_t>(i * d + j)];
    std::vector<float> scratch(encode_scratch_floats(c));
    auto encode = [&](const KernelTable& table) {
      std::vector<uint8_t> packed(static_cast<size_t>(nblocks * c * kBlockRows), 0xAB);
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
      table.encode_wide(args, 0, nblocks);
      return packed;
    };
    expect(encode(scalar_kernels()) == encode(*neon_kernels()), "encode 64 leaves", n, m, c, col_major);
  }
  std::vector<uint8_t> packed(static_cast<size_t>(nblocks * c * kBlockRows));
  for (auto& b : packed) b = static_cast<uint8_t>(code(rng));
  std::vector<uint8_t> tables(static_cast<size_t>(m * c * kWideLeaves));
  for (auto& t : tables) t = static_cast<uint8_t>(byte(rng));
  std::vector<float> offsets(static_cast<size_t>(m)), scales(static_cast<size_t>(m));
  for (auto& o : offsets) o = static_cast<float>(byte(rng)) * 0.37f - 40.f;
  for (auto& s : scales) s = 0.0123f * static_cast<float>(1 + byte(rng) % 7);
  ScanArgs base;
  base.packed = packed.data();
  base.rows = n;
  base.npairs = (c + 1) / 2;
  base.ncodebooks = c;
  base.tables = tables.data();
  base.outputs = m;
  base.scales = scales.data();
  base.offsets = offsets.data();
  auto scan = [&](const KernelTable& table, bool gelu = false, bool accumulate = false) {
    const long ldy = m + 3;
    std::vector<float> y(static_cast<size_t>(n * ldy + 1), -7.25f);
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 13) * 0.125f - 0.75f;
    ScanArgs args = base;
    args.gelu = gelu;
    args.accumulate = accumulate;
    args.y = y.data() + 1;
    args.ldy = ldy;
    table.scan_wide(args, 0, nblocks, 0, m);
    return y;
  };
  const std::vector<float> expected = scan(scalar_kernels()), got = scan(*neon_kernels());
  expect(std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)) == 0, "scan 64 leaves", n, m, c,
         false);
  // The epilogue: accumulation bit for bit, GELU (the runtime's vector GELU) to 1e-6.
  expect(scan(scalar_kernels(), false, true) == scan(*neon_kernels(), false, true), "scan 64 leaves, accumulate", n, m,
         c, false);
  const std::vector<float> activated = scan(scalar_kernels(), true, true), activated_here = scan(*neon_kernels(), true, true);
  bool close = true;
  for (size_t i = 0; i < activated.size(); ++i)
    close = close && std::fabs(activated[i] - activated_here[i]) <= 1e-6f * std::max(1.f, std::fabs(activated[i]));
  expect(close, "scan 64 leaves, GELU and accumulate", n, m, c, false);
  check_narrow(base, &KernelTable::scan_wide, "narrow outputs, 64 leaves (accumulating: 'column-major')", n, m, c);
}

// A 64-byte aligned float buffer, as the operators give the pruned kernels.
struct Scratch {
  explicit Scratch(int64_t count) : storage(static_cast<size_t>(count + 16)) {
    data = storage.data();
    while (reinterpret_cast<uintptr_t>(data) % 64 != 0) ++data;
  }
  std::vector<float> storage;
  float* data;
};

// Unstructured pruning: random kept weights (about `density` of them), both kernels on the
// same rows; the pruned kernels must match the reference bit for bit.
void check_sparse(long n, long k, long m, double density, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::bernoulli_distribution keep(density);
  const long blocks = (k + kSparseBlockK - 1) / kSparseBlockK;
  std::vector<int64_t> start(static_cast<size_t>(blocks * m + 1), 0);
  std::vector<uint8_t> offsets;
  std::vector<float> values;
  for (long b = 0; b < blocks; ++b)
    for (long j = 0; j < m; ++j) {
      for (long i = b * kSparseBlockK; i < std::min(k, (b + 1) * kSparseBlockK); ++i)
        if (keep(rng)) {
          offsets.push_back(static_cast<uint8_t>(i - b * kSparseBlockK));
          values.push_back(value(rng));
        }
      start[static_cast<size_t>(b * m + j + 1)] = static_cast<int64_t>(values.size());
    }
  const long ldx = k + 3, ldy = m + 2;
  std::vector<float> x(static_cast<size_t>(n * ldx)), bias(static_cast<size_t>(m));
  for (auto& v : x) v = value(rng);
  for (auto& v : bias) v = value(rng);
  auto run = [&](SparseFn kernel) {
    std::vector<float> y(static_cast<size_t>(n * ldy), -3.5f);
    Scratch scratch(sparse_scratch_floats(k, m));
    SparseArgs args;
    args.x = x.data();
    args.ldx = ldx;
    args.k = k;
    args.m = m;
    args.blocks = blocks;
    args.segment_start = start.data();
    args.offsets = offsets.data();
    args.values = values.data();
    args.bias = bias.data();
    args.y = y.data();
    args.ldy = ldy;
    args.scratch = scratch.data;
    // Chunks of at most kSparseTileRows rows, as the operator hands them.
    for (long r0 = 0; r0 < n; r0 += kSparseTileRows) {
      args.x = x.data() + r0 * ldx;
      args.y = y.data() + r0 * ldy;
      kernel(args, 0, std::min<long>(kSparseTileRows, n - r0));
    }
    return y;
  };
  const std::vector<float> expected = run(sparse_scalar_kernel()), got = run(sparse_neon_kernel());
  expect(std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)) == 0, "sparse", n, m,
         static_cast<int>(k), false);
}

// 2:4: random positions and values in the packed layout of sparse24_kernels.h.
void check_sparse24(long n, long k, long m, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::uniform_int_distribution<int> pair(0, 5);
  static const int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  const Sparse24Layout layout{k / 4, m};
  std::vector<float> values(static_cast<size_t>(layout.value_count()));
  for (auto& v : values) v = value(rng);
  std::vector<uint8_t> codes(static_cast<size_t>(layout.code_count()), 0);
  for (int64_t b = 0; b < layout.blocks(); ++b)
    for (long j = 0; j < m; ++j)
      for (int64_t g = 0; g < layout.count(b); ++g) {
        const int* p = kPairs[pair(rng)];
        codes[static_cast<size_t>(layout.code_offset(b, j) + g / 2)] |= static_cast<uint8_t>((p[0] | p[1] << 2) << (4 * (g % 2)));
      }
  const long ldx = k + 1, ldy = m + 3;
  std::vector<float> x(static_cast<size_t>(n * ldx)), bias(static_cast<size_t>(m));
  for (auto& v : x) v = value(rng);
  for (auto& v : bias) v = value(rng);
  auto run = [&](Sparse24Fn kernel) {
    std::vector<float> y(static_cast<size_t>(n * ldy), 2.5f);
    Scratch scratch(sparse24_scratch_floats(layout));
    Sparse24Args args;
    args.ldx = ldx;
    args.layout = layout;
    args.values = values.data();
    args.codes = codes.data();
    args.bias = bias.data();
    args.ldy = ldy;
    args.scratch = scratch.data;
    for (long r0 = 0; r0 < n; r0 += kSparse24TileRows) {
      args.x = x.data() + r0 * ldx;
      args.y = y.data() + r0 * ldy;
      kernel(args, 0, std::min<long>(kSparse24TileRows, n - r0));
    }
    return y;
  };
  const std::vector<float> expected = run(sparse24_scalar_kernel()), got = run(sparse24_neon_kernel());
  expect(std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)) == 0, "2:4", n, m,
         static_cast<int>(k), false);
}

}  // namespace

int main() {
  std::mt19937_64 rng(2024);
  for (long n : {1L, 31L, 33L, 64L, 1000L})
    for (long m : {1L, 3L, 10L, 100L})
      for (int c : {1, 2, 3, 8, 16, 24, 32, 64}) check_shape(n, m, c, rng);
  for (long n : {1L, 33L, 64L, 1000L})
    for (long m : {1L, 3L, 10L, 100L})
      for (int c : {1, 3, 16, 33, 300}) check_wide_shape(n, m, c, rng);
  // Pruned products: tiles of 4, 8 and 16 rows and their tails, K across block edges.
  for (long n : {1L, 3L, 5L, 9L, 17L, 40L, 131L})
    for (long k : {1L, 7L, 64L, 130L, 300L})
      for (long m : {1L, 5L, 17L})
        for (double density : {0.0, 0.1, 0.5, 1.0}) check_sparse(n, k, m, density, rng);
  for (long n : {1L, 3L, 5L, 9L, 17L, 40L, 131L})
    for (long k : {4L, 60L, 68L, 300L})
      for (long m : {1L, 5L, 17L}) check_sparse24(n, k, m, rng);
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
