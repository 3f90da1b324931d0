// Internal interface of the encoder runtime's glue kernels: the work between the linear layers
// of a BERT block (embeddings, LayerNorm, GELU, attention, pooling). Rows are tokens, each of
// `h` floats. Checked by the caller; no throwing, no allocation.
#pragma once

#include <cstdint>

namespace lutmul::kernels {

// out[t] = LayerNorm(word[ids[t]] + position[positions[t]] + type0) for t in [begin, end).
struct EmbeddingArgs {
  const int32_t* ids = nullptr;
  const int32_t* positions = nullptr;
  const float* word = nullptr;      // vocab × h
  const float* position = nullptr;  // max_positions × h
  const float* type0 = nullptr;     // h: token type 0
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0.f;
  int64_t h = 0;
  float* out = nullptr;  // rows × h
};
using EmbeddingFn = void (*)(const EmbeddingArgs&, int64_t begin, int64_t end);

// y[r][j] = gelu(y[r][j] + bias[j]) (bias may be null) for rows [begin, end) of y (leading
// dimension ld, `cols` columns); gelu(x) = x·Φ(x), Φ through erfc, exact to ~2e-7 relative.
using GeluFn = void (*)(float* y, int64_t ld, int64_t cols, const float* bias, int64_t begin, int64_t end);

// residual[r] = LayerNorm(x[r] + bias + residual[r]) for rows [begin, end), in place in
// `residual`; bias may be null.
struct ResidualNormArgs {
  const float* x = nullptr;  // rows × h, leading dimension ldx
  int64_t ldx = 0;
  const float* bias = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float eps = 0.f;
  int64_t h = 0;
  float* residual = nullptr;  // rows × h, packed
};
using ResidualNormFn = void (*)(const ResidualNormArgs&, int64_t begin, int64_t end);

// One head of one sequence: context[i] = Σ_j softmax_j(q[i]·k[j]·scale)·v[j] over the
// sequence's own `length` tokens (no mask, no padding).
struct AttentionArgs {
  const float* q = nullptr;  // length rows of d floats, leading dimension ld_qkv
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t ld_qkv = 0;
  int64_t length = 0;
  int64_t d = 0;
  float scale = 0.f;
  float* context = nullptr;  // length rows of d floats, leading dimension ld_context
  int64_t ld_context = 0;
  float* scratch = nullptr;  // attention_scratch_floats(length, d) floats
};
// Kᵀ (d rows) and the probabilities (length rows), each row the length padded to whole vectors
// (16 lanes at most).
inline int64_t attention_scratch_floats(int64_t length, int64_t d) { return (d + length) * (length + 16); }
using AttentionFn = void (*)(const AttentionArgs&);

// out = mean (or first row) of `count` rows of h floats, then divided by its L2 norm when
// `normalize` (a zero vector stays zero).
using PoolFn = void (*)(const float* rows, int64_t count, int64_t h, bool mean, bool normalize, float* out);

// out[i] = the bfloat16 bits of x[i], rounded to nearest even; a NaN stays a (quiet) NaN.
// Returns whether every x[i] was finite (the operator's check of X, in the same pass).
// Bf16Linear's rounding of X (and so the runtime's at precision bf16). Integer arithmetic on
// the float bits (round_to_bf16_bits), so every ISA gives the same bits.
using RoundBf16Fn = bool (*)(const float* x, int64_t n, uint16_t* out);
// The same rounding, each result widened back to the float it stands for (its bits shifted up
// 16): Bf16Linear's X for the panel product, which multiplies floats.
using RoundBf16FloatsFn = bool (*)(const float* x, int64_t n, float* out);

// The bfloat16 bits of the float with bits b: ties to even by adding 0x7fff plus the kept
// part's lowest bit; a NaN keeps its top bits and is made quiet (rounding could carry it into
// an infinity or, through the sign, a zero).
inline uint16_t round_to_bf16_bits(uint32_t b) {
  const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((b & 0x7fffffffu) > 0x7f800000u ? (b >> 16) | 0x40u : rounded);
}

struct RuntimeKernelTable {
  EmbeddingFn embedding = nullptr;
  GeluFn gelu = nullptr;
  ResidualNormFn residual_norm = nullptr;
  AttentionFn attention = nullptr;
  PoolFn pool = nullptr;
  RoundBf16Fn round_bf16 = nullptr;
  RoundBf16FloatsFn round_bf16_floats = nullptr;
};

RuntimeKernelTable runtime_scalar_kernels();
// Built only where the ISA is (LUTMUL_HAVE_*_KERNELS).
RuntimeKernelTable runtime_avx2_kernels();
RuntimeKernelTable runtime_avx512_kernels();

}  // namespace lutmul::kernels
