// The scalar references of the glue kernels: plain loops, sums in double, std::erfc and
// std::exp. The SIMD kernels match them to the tolerances tests/cpp/runtime states.
#include <cmath>
#include <cstring>

#include "kernels/cpu/runtime/runtime_kernels.h"

namespace lutmul::kernels {
namespace {

// LayerNorm of h values in place: (x − mean) / sqrt(var + eps)·gamma + beta, var biased.
void layer_norm(float* x, int64_t h, const float* gamma, const float* beta, float eps) {
  double sum = 0.0;
  for (int64_t j = 0; j < h; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(h);
  double squares = 0.0;
  for (int64_t j = 0; j < h; ++j) squares += (x[j] - mean) * (x[j] - mean);
  const double inv = 1.0 / std::sqrt(squares / static_cast<double>(h) + eps);
  for (int64_t j = 0; j < h; ++j) x[j] = static_cast<float>((x[j] - mean) * inv * gamma[j] + beta[j]);
}

void embedding_reference(const EmbeddingArgs& a, int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; ++t) {
    const float* word = a.word + static_cast<int64_t>(a.ids[t]) * a.h;
    const float* position = a.position + static_cast<int64_t>(a.positions[t]) * a.h;
    float* out = a.out + t * a.h;
    for (int64_t j = 0; j < a.h; ++j) out[j] = word[j] + position[j] + a.type0[j];
    layer_norm(out, a.h, a.gamma, a.beta, a.eps);
  }
}

void gelu_reference(float* y, int64_t ld, int64_t cols, const float* bias, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double x = y[r * ld + j] + (bias ? bias[j] : 0.f);  // the biased value is a float
      y[r * ld + j] = static_cast<float>(x * 0.5 * std::erfc(-x / std::sqrt(2.0)));
    }
}

void residual_norm_reference(const ResidualNormArgs& a, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) {
    float* out = a.residual + r * a.h;
    const float* x = a.x + r * a.ldx;
    for (int64_t j = 0; j < a.h; ++j) out[j] = x[j] + (a.bias ? a.bias[j] : 0.f) + out[j];
    layer_norm(out, a.h, a.gamma, a.beta, a.eps);
  }
}

void attention_reference(const AttentionArgs& a) {
  float* p = a.scratch;  // one row of probabilities
  for (int64_t i = 0; i < a.length; ++i) {
    const float* q = a.q + i * a.ld_qkv;
    float top = -INFINITY;
    for (int64_t j = 0; j < a.length; ++j) {
      double dot = 0.0;
      for (int64_t c = 0; c < a.d; ++c) dot += static_cast<double>(q[c]) * a.k[j * a.ld_qkv + c];
      p[j] = static_cast<float>(dot) * a.scale;
      top = std::fmax(top, p[j]);
    }
    double total = 0.0;
    for (int64_t j = 0; j < a.length; ++j) {
      p[j] = std::exp(p[j] - top);
      total += p[j];
    }
    float* context = a.context + i * a.ld_context;
    for (int64_t c = 0; c < a.d; ++c) {
      double sum = 0.0;
      for (int64_t j = 0; j < a.length; ++j) sum += static_cast<double>(p[j]) * a.v[j * a.ld_qkv + c];
      context[c] = static_cast<float>(sum / total);
    }
  }
}

void pool_reference(const float* rows, int64_t count, int64_t h, bool mean, bool normalize, float* out) {
  for (int64_t j = 0; j < h; ++j) {
    double sum = 0.0;
    for (int64_t r = 0; r < (mean ? count : 1); ++r) sum += rows[r * h + j];
    out[j] = static_cast<float>(mean ? sum / static_cast<double>(count) : sum);
  }
  if (!normalize) return;
  double squares = 0.0;
  for (int64_t j = 0; j < h; ++j) squares += static_cast<double>(out[j]) * out[j];
  if (squares == 0.0) return;
  const double inv = 1.0 / std::sqrt(squares);
  for (int64_t j = 0; j < h; ++j) out[j] = static_cast<float>(out[j] * inv);
}

bool round_bf16_reference(const float* x, int64_t n, uint16_t* out) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    out[i] = round_to_bf16_bits(bits);
    finite = finite && std::isfinite(x[i]);
  }
  return finite;
}

bool round_bf16_floats_reference(const float* x, int64_t n, float* out) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    const uint32_t wide = uint32_t{round_to_bf16_bits(bits)} << 16;
    finite = finite && std::isfinite(x[i]);
    std::memcpy(out + i, &wide, sizeof wide);
  }
  return finite;
}

}  // namespace

RuntimeKernelTable runtime_scalar_kernels() {
  return {embedding_reference, gelu_reference, residual_norm_reference, attention_reference, pool_reference,
          round_bf16_reference, round_bf16_floats_reference};
}

}  // namespace lutmul::kernels
