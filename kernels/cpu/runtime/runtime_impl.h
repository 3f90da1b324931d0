// The glue kernels written once on xsimd batches of float and instantiated per ISA by
// kernels/cpu/isa/runtime_*.cpp. Loops run whole vectors, then a scalar tail; sums are kept in
// several vector accumulators and reduced at the end, so they round differently from the
// scalar reference (which sums in double): tests/cpp/runtime states the tolerances.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/runtime/runtime_kernels.h"
#include "kernels/cpu/runtime/vector_math.h"

namespace lutmul::kernels {
namespace {

template <class Arch>
struct RuntimeKernels {
  using B = xsimd::batch<float, Arch>;
  static constexpr int64_t W = static_cast<int64_t>(B::size);

  static float sum(const float* x, int64_t n) {
    B a0(0.f), a1(0.f);
    int64_t j = 0;
    for (; j + 2 * W <= n; j += 2 * W) {
      a0 += B::load_unaligned(x + j);
      a1 += B::load_unaligned(x + j + W);
    }
    for (; j + W <= n; j += W) a0 += B::load_unaligned(x + j);
    float total = xsimd::hadd(a0 + a1);
    for (; j < n; ++j) total += x[j];
    return total;
  }

  // LayerNorm of h values in place, the variance from the centred values (two passes over a
  // row in L1: no cancellation).
  static void layer_norm(float* x, int64_t h, const float* gamma, const float* beta, float eps) {
    const float mean = sum(x, h) / static_cast<float>(h);
    const B m(mean);
    B s0(0.f), s1(0.f);
    int64_t j = 0;
    for (; j + 2 * W <= h; j += 2 * W) {
      const B u = B::load_unaligned(x + j) - m, v = B::load_unaligned(x + j + W) - m;
      s0 = fmadd<Arch>(u, u, s0);
      s1 = fmadd<Arch>(v, v, s1);
    }
    for (; j + W <= h; j += W) {
      const B u = B::load_unaligned(x + j) - m;
      s0 = fmadd<Arch>(u, u, s0);
    }
    float squares = xsimd::hadd(s0 + s1);
    for (; j < h; ++j) squares += (x[j] - mean) * (x[j] - mean);
    const float inv = 1.f / std::sqrt(squares / static_cast<float>(h) + eps);
    const B scale(inv);
    j = 0;
    for (; j + W <= h; j += W) {
      const B y = (B::load_unaligned(x + j) - m) * scale;
      fmadd<Arch>(y, B::load_unaligned(gamma + j), B::load_unaligned(beta + j)).store_unaligned(x + j);
    }
    for (; j < h; ++j) x[j] = (x[j] - mean) * inv * gamma[j] + beta[j];
  }

  static void embedding(const EmbeddingArgs& a, int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* word = a.word + static_cast<int64_t>(a.ids[t]) * a.h;
      const float* position = a.position + static_cast<int64_t>(a.positions[t]) * a.h;
      float* out = a.out + t * a.h;
      int64_t j = 0;
      for (; j + W <= a.h; j += W)
        (B::load_unaligned(word + j) + B::load_unaligned(position + j) + B::load_unaligned(a.type0 + j)).store_unaligned(out + j);
      for (; j < a.h; ++j) out[j] = word[j] + position[j] + a.type0[j];
      layer_norm(out, a.h, a.gamma, a.beta, a.eps);
    }
  }

  static void gelu(float* y, int64_t ld, int64_t cols, const float* bias, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = y + r * ld;
      int64_t j = 0;
      for (; j + W <= cols; j += W) {
        B x = B::load_unaligned(row + j);
        if (bias) x += B::load_unaligned(bias + j);
        vector_gelu<Arch>(x).store_unaligned(row + j);
      }
      for (; j < cols; ++j) {
        const double x = row[j] + (bias ? bias[j] : 0.f);  // summed in float, as the vectors
        row[j] = static_cast<float>(x * 0.5 * std::erfc(-x / std::sqrt(2.0)));
      }
    }
  }

  static void residual_norm(const ResidualNormArgs& a, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* out = a.residual + r * a.h;
      const float* x = a.x + r * a.ldx;
      int64_t j = 0;
      for (; j + W <= a.h; j += W) {
        B v = B::load_unaligned(x + j) + B::load_unaligned(out + j);
        if (a.bias) v += B::load_unaligned(a.bias + j);
        v.store_unaligned(out + j);
      }
      for (; j < a.h; ++j) out[j] = x[j] + (a.bias ? a.bias[j] : 0.f) + out[j];
      layer_norm(out, a.h, a.gamma, a.beta, a.eps);
    }
  }

  // Kᵀ is laid out once per (sequence, head), d rows of the length padded to whole vectors,
  // so that scores are vectors over keys: a tile of kScoreRows queries shares each load of Kᵀ
  // (independent accumulators hide the FMA latency). Rows of probabilities, normalised, then
  // weight rows of V in tiles of kContextRows queries × two vectors of the head's columns.
  static constexpr int kScoreRows = 8;
  static constexpr int kContextRows = 4;

  template <int kRows>
  static void score_tile(const AttentionArgs& a, const float* kt, int64_t padded, int64_t i0, float* p) {
    const float* q[kRows];
    for (int r = 0; r < kRows; ++r) q[r] = a.q + (i0 + r) * a.ld_qkv;
    for (int64_t j = 0; j < padded; j += W) {
      B acc[kRows];
      for (int r = 0; r < kRows; ++r) acc[r] = B(0.f);
      for (int64_t c = 0; c < a.d; ++c) {
        const B keys = B::load_unaligned(kt + c * padded + j);
        for (int r = 0; r < kRows; ++r) acc[r] = fmadd<Arch>(B(q[r][c]), keys, acc[r]);
      }
      for (int r = 0; r < kRows; ++r) (acc[r] * B(a.scale)).store_unaligned(p + (i0 + r) * padded + j);
    }
  }

  // Row i of p (n real entries, then padding to a whole vector) becomes its softmax. The
  // padding holds scores of zero keys: masked out of the maximum and the sum, left zero, and
  // never read by context_tile. Whole vectors only, so no scalar exp for the last keys.
  static void softmax_row(float* p, int64_t n) {
    alignas(64) float lanes[W];
    for (int64_t lane = 0; lane < W; ++lane) lanes[lane] = static_cast<float>(lane);
    const B lane_index = B::load_aligned(lanes);
    const auto real = [&](int64_t j) { return lane_index < B(static_cast<float>(n - j)); };
    const B lowest(-std::numeric_limits<float>::infinity());
    B tops = lowest;
    for (int64_t j = 0; j < n; j += W) tops = xsimd::max(tops, xsimd::select(real(j), B::load_unaligned(p + j), lowest));
    tops.store_aligned(lanes);
    float top = lanes[0];
    for (int64_t lane = 1; lane < W; ++lane) top = lanes[lane] > top ? lanes[lane] : top;
    B total(0.f);
    for (int64_t j = 0; j < n; j += W) {
      const B e = xsimd::select(real(j), vector_exp<Arch>(B::load_unaligned(p + j) - B(top)), B(0.f));
      e.store_unaligned(p + j);
      total += e;
    }
    const B inv(1.f / xsimd::hadd(total));
    for (int64_t j = 0; j < n; j += W) (B::load_unaligned(p + j) * inv).store_unaligned(p + j);
  }

  template <int kRows>
  static void context_tile(const AttentionArgs& a, const float* p, int64_t padded, int64_t i0) {
    const int64_t n = a.length, whole = a.d / W * W;
    float* out[kRows];
    for (int r = 0; r < kRows; ++r) out[r] = a.context + (i0 + r) * a.ld_context;
    int64_t c = 0;
    for (; c + 2 * W <= whole; c += 2 * W) {
      B acc[kRows][2];
      for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = B(0.f);
      for (int64_t j = 0; j < n; ++j) {
        const B v0 = B::load_unaligned(a.v + j * a.ld_qkv + c), v1 = B::load_unaligned(a.v + j * a.ld_qkv + c + W);
        for (int r = 0; r < kRows; ++r) {
          const B weight(p[(i0 + r) * padded + j]);
          acc[r][0] = fmadd<Arch>(weight, v0, acc[r][0]);
          acc[r][1] = fmadd<Arch>(weight, v1, acc[r][1]);
        }
      }
      for (int r = 0; r < kRows; ++r) {
        acc[r][0].store_unaligned(out[r] + c);
        acc[r][1].store_unaligned(out[r] + c + W);
      }
    }
    for (; c < whole; c += W) {
      B acc[kRows];
      for (int r = 0; r < kRows; ++r) acc[r] = B(0.f);
      for (int64_t j = 0; j < n; ++j) {
        const B v0 = B::load_unaligned(a.v + j * a.ld_qkv + c);
        for (int r = 0; r < kRows; ++r) acc[r] = fmadd<Arch>(B(p[(i0 + r) * padded + j]), v0, acc[r]);
      }
      for (int r = 0; r < kRows; ++r) acc[r].store_unaligned(out[r] + c);
    }
    for (; c < a.d; ++c)
      for (int r = 0; r < kRows; ++r) {
        float acc = 0.f;
        for (int64_t j = 0; j < n; ++j) acc += p[(i0 + r) * padded + j] * a.v[j * a.ld_qkv + c];
        out[r][c] = acc;
      }
  }

  static void attention(const AttentionArgs& a) {
    const int64_t n = a.length, d = a.d, padded = (n + W - 1) / W * W;
    float* kt = a.scratch;              // d × padded
    float* p = a.scratch + d * padded;  // n × padded
    // Kᵀ a vector of keys at a time: one gather of column c over W keys, one store (the
    // scalar copy, a load and a store per value, was a third of this kernel on Sapphire Rapids).
    using Index = xsimd::batch<int32_t, Arch>;
    alignas(64) int32_t offsets[W];
    for (int64_t lane = 0; lane < W; ++lane) offsets[lane] = static_cast<int32_t>(lane * a.ld_qkv);
    const Index keys = Index::load_aligned(offsets);
    for (int64_t c = 0; c < d; ++c) {
      float* row = kt + c * padded;
      int64_t j = 0;
      for (; j + W <= n; j += W) B::gather(a.k + j * a.ld_qkv + c, keys).store_unaligned(row + j);
      for (; j < n; ++j) row[j] = a.k[j * a.ld_qkv + c];
      for (; j < padded; ++j) row[j] = 0.f;
    }
    int64_t i = 0;
    for (; i + kScoreRows <= n; i += kScoreRows) score_tile<kScoreRows>(a, kt, padded, i, p);
    for (; i < n; ++i) score_tile<1>(a, kt, padded, i, p);
    for (i = 0; i < n; ++i) softmax_row(p + i * padded, n);
    for (i = 0; i + kContextRows <= n; i += kContextRows) context_tile<kContextRows>(a, p, padded, i);
    for (; i < n; ++i) context_tile<1>(a, p, padded, i);
  }

  static void pool(const float* rows, int64_t count, int64_t h, bool mean, bool normalize, float* out) {
    const int64_t used = mean ? count : 1;
    const float factor = mean ? 1.f / static_cast<float>(count) : 1.f;
    int64_t j = 0;
    for (; j + W <= h; j += W) {
      B acc(0.f);
      for (int64_t r = 0; r < used; ++r) acc += B::load_unaligned(rows + r * h + j);
      (acc * B(factor)).store_unaligned(out + j);
    }
    for (; j < h; ++j) {
      float acc = 0.f;
      for (int64_t r = 0; r < used; ++r) acc += rows[r * h + j];
      out[j] = acc * factor;
    }
    if (!normalize) return;
    B s(0.f);
    j = 0;
    for (; j + W <= h; j += W) {
      const B v = B::load_unaligned(out + j);
      s = fmadd<Arch>(v, v, s);
    }
    float squares = xsimd::hadd(s);
    for (; j < h; ++j) squares += out[j] * out[j];
    if (squares == 0.f) return;
    const float inv = 1.f / std::sqrt(squares);
    for (j = 0; j + W <= h; j += W) (B::load_unaligned(out + j) * B(inv)).store_unaligned(out + j);
    for (; j < h; ++j) out[j] *= inv;
  }

  // A plain loop of integer operations: compiled with this ISA's flags (kernels/cpu/isa) the
  // compiler vectorises it at the full width, several times fewer instructions per float
  // than the baseline build's 128-bit loop, which bounded Bf16Linear on AMX.
  static bool round_bf16(const float* x, int64_t n, uint16_t* out) {
    uint32_t non_finite = 0;  // 0x7f800000 where some x[i] has an all-ones exponent
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      out[i] = round_to_bf16_bits(bits);
      non_finite |= (bits & 0x7f800000u) == 0x7f800000u ? 0x7f800000u : 0u;
    }
    return non_finite == 0;
  }

  static bool round_bf16_floats(const float* x, int64_t n, float* out) {
    uint32_t non_finite = 0;
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      const uint32_t wide = uint32_t{round_to_bf16_bits(bits)} << 16;
      std::memcpy(out + i, &wide, sizeof wide);
      non_finite |= (bits & 0x7f800000u) == 0x7f800000u ? 0x7f800000u : 0u;
    }
    return non_finite == 0;
  }

  static RuntimeKernelTable table() {
    return {embedding, gelu, residual_norm, attention, pool, round_bf16, round_bf16_floats};
  }
};

}  // namespace
}  // namespace lutmul::kernels
