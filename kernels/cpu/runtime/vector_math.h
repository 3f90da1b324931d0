// exp and erfc on xsimd batches, written for the glue kernels: float accuracy (a few ulps)
// from a range reduction and short polynomials, no table lookups. Include only from an ISA
// translation unit (through runtime_impl.h).
#pragma once

#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace lutmul::kernels {
namespace {

// a·b + c and a·b − c with one rounding. xsimd 8.1 has no FMA for its AVX-512 architectures:
// it multiplies and adds, which -ffp-contract=off keeps apart (two roundings, twice the
// instructions, and the exact split of z² below would be lost), so AVX-512 asks for the
// instructions itself.
template <class Arch>
xsimd::batch<float, Arch> fmadd(xsimd::batch<float, Arch> a, xsimd::batch<float, Arch> b, xsimd::batch<float, Arch> c) {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

template <class Arch>
xsimd::batch<float, Arch> fmsub(xsimd::batch<float, Arch> a, xsimd::batch<float, Arch> b, xsimd::batch<float, Arch> c) {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_fmsub_ps(a, b, c);
#endif
  return xsimd::fms(a, b, c);
}

// e^(hi + lo), hi and lo floats: hi + lo = n·ln2 + r with |r| ≤ ln2/2, r = (hi − n·ln2) + lo with
// hi − n·ln2 exact to float (ln2 split in two), so a large hi loses nothing to rounding of the
// sum; e^r by its Taylor series to r^7 (error below 6e-9 relative), 2^n put into the exponent
// bits. Sums outside [−87.3, 88.3] are clamped there, so e^x never underflows to a denormal or
// overflows: callers that need exact zeros (softmax padding) set them themselves.
template <class Arch>
xsimd::batch<float, Arch> vector_exp_sum(xsimd::batch<float, Arch> hi, xsimd::batch<float, Arch> lo) {
  using B = xsimd::batch<float, Arch>;
  using I = xsimd::batch<int32_t, Arch>;
  const B x = hi + lo;
  const B clamped = xsimd::min(xsimd::max(x, B(-87.3f)), B(88.3f));
  const auto outside = clamped != x;
  hi = xsimd::select(outside, clamped, hi);
  lo = xsimd::select(outside, B(0.f), lo);
  const B n = xsimd::nearbyint(clamped * B(1.44269504088896341f));
  B r = fmadd<Arch>(n, B(-0.693359375f), hi);  // ln2's high part: n·0.693359375 is exact
  r = fmadd<Arch>(n, B(2.12194440e-4f), r) + lo;  // ln2 = 0.693359375 − 2.12194440e-4
  B p = B(1.f / 5040.f);
  p = fmadd<Arch>(p, r, B(1.f / 720.f));
  p = fmadd<Arch>(p, r, B(1.f / 120.f));
  p = fmadd<Arch>(p, r, B(1.f / 24.f));
  p = fmadd<Arch>(p, r, B(1.f / 6.f));
  p = fmadd<Arch>(p, r, B(0.5f));
  p = fmadd<Arch>(p, r, B(1.f));
  p = fmadd<Arch>(p, r, B(1.f));
  const I exponent = (xsimd::to_int(n) + I(127)) << 23;
  return p * xsimd::bitwise_cast<B>(exponent);
}

template <class Arch>
xsimd::batch<float, Arch> vector_exp(xsimd::batch<float, Arch> x) {
  return vector_exp_sum<Arch>(x, xsimd::batch<float, Arch>(0.f));
}

// erfc(z) for z ≥ 0 by the Chebyshev-fitted form of Numerical Recipes (erfcc: relative error
// below 1.2e-7 for every z ≥ 0), erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2). z² comes in as
// square + square_error exactly, so the result stays relatively accurate where erfc is tiny
// (an error δ in z² is a relative error δ in erfc, and z² reaches 87):
// e^(−square + (P(t) − square_error)) with the large part kept apart until the range reduction.
template <class Arch>
xsimd::batch<float, Arch> vector_erfc_parts(xsimd::batch<float, Arch> z, xsimd::batch<float, Arch> square,
                                            xsimd::batch<float, Arch> square_error) {
  using B = xsimd::batch<float, Arch>;
  const B t = B(1.f) / fmadd<Arch>(z, B(0.5f), B(1.f));
  B p = B(0.17087277f);
  p = fmadd<Arch>(p, t, B(-0.82215223f));
  p = fmadd<Arch>(p, t, B(1.48851587f));
  p = fmadd<Arch>(p, t, B(-1.13520398f));
  p = fmadd<Arch>(p, t, B(0.27886807f));
  p = fmadd<Arch>(p, t, B(-0.18628806f));
  p = fmadd<Arch>(p, t, B(0.09678418f));
  p = fmadd<Arch>(p, t, B(0.37409196f));
  p = fmadd<Arch>(p, t, B(1.00002368f));
  p = fmadd<Arch>(p, t, B(-1.26551223f));
  return t * vector_exp_sum<Arch>(-square, p - square_error);
}

// erfc(z) for z ≥ 0, z² split exactly by an FMA.
template <class Arch>
xsimd::batch<float, Arch> vector_erfc_nonnegative(xsimd::batch<float, Arch> z) {
  const xsimd::batch<float, Arch> square = z * z;
  return vector_erfc_parts<Arch>(z, square, fmsub<Arch>(z, z, square));
}

// x·Φ(x) = x·erfc(−x/√2)/2: for x < 0 straight from erfc (relatively accurate in the tail),
// for x ≥ 0 as x·(1 − erfc(|x|/√2)/2). z² = x²/2 is taken from x, not from the rounded x/√2,
// whose rounding GELU's tail would amplify 2z² times.
template <class Arch>
xsimd::batch<float, Arch> vector_gelu(xsimd::batch<float, Arch> x) {
  using B = xsimd::batch<float, Arch>;
  const B a = xsimd::abs(x);
  const B square = a * a;
  const B square_error = fmsub<Arch>(a, a, square);
  const B half_erfc =
      B(0.5f) * vector_erfc_parts<Arch>(a * B(0.70710678118654752f), B(0.5f) * square, B(0.5f) * square_error);
  return x * xsimd::select(x < B(0.f), half_erfc, B(1.f) - half_erfc);
}

}  // namespace
}  // namespace lutmul::kernels
