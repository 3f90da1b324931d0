// Stores the first `count` floats (0..8) of a ymm register. Include only from translation
// units built for AVX2 (or later).
//
// Not vmaskmovps: its store form is microcoded on AMD (Zen 2 to Zen 4), about 12 cycles
// each where a plain store takes one, and a scan that ended each row with one spent half
// its time there (docs/experiments.md, "Zen 3"). Whole registers take a plain store; a
// partial one goes out in 4-, 2- and 1-float pieces, never touching memory past `count`.
#pragma once

#include <immintrin.h>

namespace lutmul::kernels {
namespace {

inline void store_prefix_ps(float* p, __m256 v, int count) {
  if (count >= 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  __m128 part = _mm256_castps256_ps128(v);
  if (count & 4) {
    _mm_storeu_ps(p, part);
    part = _mm256_extractf128_ps(v, 1);
    p += 4;
  }
  if (count & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
    part = _mm_movehl_ps(part, part);
    p += 2;
  }
  if (count & 1) _mm_store_ss(p, part);
}

}  // namespace
}  // namespace lutmul::kernels
