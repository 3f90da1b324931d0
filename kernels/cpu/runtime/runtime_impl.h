// The glue kernels written once on xsimd batches of float and instantiated per ISA by
// kernels/cpu/isa/runtime_*.cpp. Loops run whole vectors, then a scalar tail; sums are kept in
// several vector accumulators and reduced at the end, so they round differently from the
// scalar reference (which sums in double): tests/cpp/runtime states the tolerances.
#pragma once

#include <cmath>
#include <cstdint>
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
      s0 = xsimd::fma(u, u, s0);
      s1 = xsimd::fma(v, v, s1);
    }
    for (; j + W <= h; j += W) {
      const B u = B::load_unaligned(x + j) - m;
      s0 = xsimd::fma(u, u, s0);
    }
    float squares = xsimd::hadd(s0 + s1);
    for (; j < h; ++j) squares += (x[j] - mean) * (x[j] - mean);
    const float inv = 1.f / std::sqrt(squares / static_cast<float>(h) + eps);
    const B scale(inv);
    j = 0;
    for (; j + W <= h; j += W) {
      const B y = (B::load_unaligned(x + j) - m) * scale;
      xsimd::fma(y, B::load_unaligned(gamma + j), B::load_unaligned(beta + j)).store_unaligned(x + j);
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
  // so that each query's scores are vectors over keys: q[c] broadcast times row c of Kᵀ.
  // Probabilities then weight rows of V, vectors over the head's d columns.
  static void attention(const AttentionArgs& a) {
    const int64_t n = a.length, d = a.d, padded = (n + W - 1) / W * W;
    float* kt = a.scratch;              // d × padded
    float* p = a.scratch + d * padded;  // padded
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < d; ++c) kt[c * padded + j] = a.k[j * a.ld_qkv + c];
    for (int64_t c = 0; c < d; ++c)
      for (int64_t j = n; j < padded; ++j) kt[c * padded + j] = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float* q = a.q + i * a.ld_qkv;
      for (int64_t j = 0; j < padded; j += W) {
        B acc0(0.f), acc1(0.f);
        int64_t c = 0;
        for (; c + 1 < d; c += 2) {
          acc0 = xsimd::fma(B(q[c]), B::load_unaligned(kt + c * padded + j), acc0);
          acc1 = xsimd::fma(B(q[c + 1]), B::load_unaligned(kt + (c + 1) * padded + j), acc1);
        }
        if (c < d) acc0 = xsimd::fma(B(q[c]), B::load_unaligned(kt + c * padded + j), acc0);
        ((acc0 + acc1) * B(a.scale)).store_unaligned(p + j);
      }
      float top = p[0];
      for (int64_t j = 1; j < n; ++j) top = p[j] > top ? p[j] : top;
      B total(0.f);
      for (int64_t j = 0; j < padded; j += W) {
        const B e = vector_exp<Arch>(B::load_unaligned(p + j) - B(top));
        e.store_unaligned(p + j);
        if (j + W <= n) total += e;
      }
      float denominator = xsimd::hadd(total);
      for (int64_t j = n / W * W; j < n; ++j) denominator += p[j];  // the partial vector's real keys
      const float inv = 1.f / denominator;
      float* context = a.context + i * a.ld_context;
      int64_t c = 0;
      for (; c + W <= d; c += W) {
        B acc(0.f);
        for (int64_t j = 0; j < n; ++j) acc = xsimd::fma(B(p[j]), B::load_unaligned(a.v + j * a.ld_qkv + c), acc);
        (acc * B(inv)).store_unaligned(context + c);
      }
      for (; c < d; ++c) {
        float acc = 0.f;
        for (int64_t j = 0; j < n; ++j) acc += p[j] * a.v[j * a.ld_qkv + c];
        context[c] = acc * inv;
      }
    }
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
      s = xsimd::fma(v, v, s);
    }
    float squares = xsimd::hadd(s);
    for (; j < h; ++j) squares += out[j] * out[j];
    if (squares == 0.f) return;
    const float inv = 1.f / std::sqrt(squares);
    for (j = 0; j + W <= h; j += W) (B::load_unaligned(out + j) * B(inv)).store_unaligned(out + j);
    for (; j < h; ++j) out[j] *= inv;
  }

  static RuntimeKernelTable table() { return {embedding, gelu, residual_norm, attention, pool}; }
};

}  // namespace
}  // namespace lutmul::kernels
