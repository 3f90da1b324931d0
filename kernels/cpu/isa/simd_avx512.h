// AVX-512 (F, BW, DQ, VL) primitives for the encoder and the scan. Include only from the
// AVX-512 translation unit.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/isa/kernel_inline.h"

namespace lutmul::kernels {
namespace {

struct Avx512Ops {
  using XsimdArch = xsimd::avx512bw;

  // ---- Bytes: 64 rows of one codebook pair ----
  using Bytes = __m512i;
  static constexpr int kByteWidth = 64;
  static constexpr int kOutputTile = 8;
  // The row-major encoder gathers a row's split values (plain loads not measured here).
  static constexpr bool kRowGathersAsScalarLoads = false;
  static constexpr bool kRowEncoderBlends = false;  // compares and bit selects (not measured here)

  static Bytes load_bytes(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static Bytes broadcast_table(const uint8_t* p) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Bytes lookup(Bytes table, Bytes index) { return _mm512_shuffle_epi8(table, index); }
  // Each byte's code (0..63) looked up in a 64-byte table.
  static Bytes lookup64(const uint8_t* table, Bytes codes) {
#if defined(__AVX512VBMI__)
    return _mm512_permutexvar_epi8(codes, _mm512_loadu_si512(table));
#else  // four 16-byte quarters, picked by bits 4 and 5
    const Bytes q0 = _mm512_shuffle_epi8(broadcast_table(table), codes);
    const Bytes q1 = _mm512_shuffle_epi8(broadcast_table(table + 16), codes);
    const Bytes q2 = _mm512_shuffle_epi8(broadcast_table(table + 32), codes);
    const Bytes q3 = _mm512_shuffle_epi8(broadcast_table(table + 48), codes);
    const __mmask64 bit4 = _mm512_test_epi8_mask(codes, _mm512_set1_epi8(16));
    const __mmask64 bit5 = _mm512_test_epi8_mask(codes, _mm512_set1_epi8(32));
    return _mm512_mask_blend_epi8(bit5, _mm512_mask_blend_epi8(bit4, q0, q1), _mm512_mask_blend_epi8(bit4, q2, q3));
#endif
  }
  static Bytes low_nibbles(Bytes b) { return _mm512_and_si512(b, _mm512_set1_epi8(15)); }
  static Bytes high_nibbles(Bytes b) { return _mm512_and_si512(_mm512_srli_epi16(b, 4), _mm512_set1_epi8(15)); }
  static Bytes zero_bytes() { return _mm512_setzero_si512(); }
  static Bytes add_u16(Bytes a, Bytes b) { return _mm512_add_epi16(a, b); }
  static Bytes sub_u16(Bytes a, Bytes b) { return _mm512_sub_epi16(a, b); }
  static Bytes high_bytes_u16(Bytes a) { return _mm512_srli_epi16(a, 8); }
  static Bytes shift_left_8_u16(Bytes a) { return _mm512_slli_epi16(a, 8); }
  static Bytes average_u8(Bytes a, Bytes b) { return _mm512_avg_epu8(a, b); }
  static void store_words(Bytes w, uint32_t* out) {
    _mm512_store_si512(out, _mm512_cvtepu16_epi32(_mm512_castsi512_si256(w)));
    _mm512_store_si512(out + 16, _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(w, 1)));
  }
  static void add_words(Bytes w, uint32_t* out) {
    const __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(w));
    const __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(w, 1));
    _mm512_store_si512(out, _mm512_add_epi32(_mm512_load_si512(out), lo));
    _mm512_store_si512(out + 16, _mm512_add_epi32(_mm512_load_si512(out + 16), hi));
  }

  // ---- Floats: 16 rows ----
  using Floats = __m512;
  using Ints = __m512i;
  using NanFlag = __mmask16;
  static constexpr int kLanes = 16;

  static Floats load_floats(const float* p) { return _mm512_loadu_ps(p); }
  // For the pruned products (rows in lanes, weights broadcast).
  static Floats load_aligned(const float* p) { return _mm512_load_ps(p); }
  static void store_aligned(float* p, Floats v) { _mm512_store_ps(p, v); }
  // Past the caches (p 64-byte aligned); stream_fence orders them before later stores.
  static void stream_floats(float* p, Floats v) { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static Floats broadcast(float v) { return _mm512_set1_ps(v); }
  static Floats zero_floats() { return _mm512_setzero_ps(); }
  static Floats add_floats(Floats a, Floats b) { return _mm512_add_ps(a, b); }
  static Floats multiply_add(Floats a, Floats b, Floats c) { return _mm512_fmadd_ps(a, b, c); }  // a·b + c, one rounding
  static Ints row_offsets(int64_t stride) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32(static_cast<int32_t>(stride)));
  }
  static Floats gather_floats(const float* base, Ints offsets) { return _mm512_i32gather_ps(offsets, base, 4); }
  using Thresholds = Floats;
  static Thresholds load_thresholds(const float* p8) { return _mm512_castps256_ps512(_mm256_loadu_ps(p8)); }
  static Ints zero_ints() { return _mm512_setzero_si512(); }
  static Ints descend(Ints node, Floats x, Thresholds thresholds) {
    const __mmask16 right = _mm512_cmp_ps_mask(x, _mm512_permutexvar_ps(node, thresholds), _CMP_GT_OQ);
    const Ints twice = _mm512_add_epi32(node, node);
    return _mm512_mask_add_epi32(twice, right, twice, _mm512_set1_epi32(1));
  }
  static Ints load_ints(const int32_t* p) { return _mm512_loadu_si512(p); }
  // One codebook's 64 codes (node[v] holds rows 16v .. 16v + 15, each < 256) as its packed
  // 64-byte column: byte 2w is row w, byte 2w + 1 row 32 + w.
  static void store_wide_codes(const Ints* node, uint8_t* out) {
    const __m128i r0 = _mm512_cvtepi32_epi8(node[0]), r16 = _mm512_cvtepi32_epi8(node[1]);
    const __m128i r32 = _mm512_cvtepi32_epi8(node[2]), r48 = _mm512_cvtepi32_epi8(node[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi8(r0, r32));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi8(r0, r32));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi8(r16, r48));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi8(r16, r48));
  }
  // A level of a 64-leaf tree: up to 32 thresholds, picked by node with one two-table permute.
  struct WideThresholds {
    Floats low, high;
  };
  static WideThresholds load_wide_thresholds(const float* p32) { return {_mm512_loadu_ps(p32), _mm512_loadu_ps(p32 + 16)}; }
  template <int kLevel>  // one permute at every level
  static Ints descend_wide(Ints node, Floats x, const WideThresholds& t) {
    const __mmask16 right = _mm512_cmp_ps_mask(x, _mm512_permutex2var_ps(t.low, node, t.high), _CMP_GT_OQ);
    const Ints twice = _mm512_add_epi32(node, node);
    return _mm512_mask_add_epi32(twice, right, twice, _mm512_set1_epi32(1));
  }
  static uint32_t greater_mask(Floats x, Floats t) { return _mm512_cmp_ps_mask(x, t, _CMP_GT_OQ); }
  static uint32_t nan_mask(Floats x) { return _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q); }
  // Bit c of `bits` to bit 4c of the result.
  static uint64_t spread_to_nibbles(uint32_t bits) { return _pdep_u64(bits, 0x1111111111111111ull); }
  static NanFlag no_nan() { return 0; }
  static void track_nan(NanFlag& flag, Floats x) { flag = static_cast<NanFlag>(flag | _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q)); }
  static bool any_nan(NanFlag flag) { return flag != 0; }
  // lo/hi: codes of codebooks 2p and 2p+1 for rows 16k..16k+15 (k = 0..3).
  static void store_codes(const Ints* lo, const Ints* hi, uint8_t* out) {
    __m128i rows[4];
    for (int k = 0; k < 4; ++k)
      rows[k] = _mm512_cvtepi32_epi8(_mm512_or_si512(lo[k], _mm512_slli_epi32(hi[k], 4)));
    // Byte 2w = row w, byte 2w+1 = row 32+w.
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi8(rows[0], rows[2]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi8(rows[0], rows[2]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi8(rows[1], rows[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi8(rows[1], rows[3]));
  }

  struct Unchanged {
    Floats operator()(Floats v) const { return v; }
  };
  // in[i] holds output i for 16 rows; calls visit(j, row j's outputs in lanes) for j < rows.
  template <class Visit>
  LUTMUL_KERNEL_INLINE static void transpose_rows(const Floats* in, int rows, Visit visit) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(in[i], in[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(in[i], in[i + 1]);
    }
    for (int g = 0; g < 4; ++g) {
      const __m512 a = t[4 * g], b = t[4 * g + 1], c = t[4 * g + 2], d = t[4 * g + 3];
      u[4 * g + 0] = _mm512_shuffle_ps(a, c, 0x44);
      u[4 * g + 1] = _mm512_shuffle_ps(a, c, 0xEE);
      u[4 * g + 2] = _mm512_shuffle_ps(b, d, 0x44);
      u[4 * g + 3] = _mm512_shuffle_ps(b, d, 0xEE);
    }
    // u[4g + k], 128-bit lane L: inputs 4g..4g+3 of element 4L + k.
    for (int k = 0; k < 4; ++k) {
      const __m512 v88 = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);
      const __m512 vdd = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
      const __m512 w88 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
      const __m512 wdd = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
      const __m512 out[4] = {_mm512_shuffle_f32x4(v88, w88, 0x88), _mm512_shuffle_f32x4(vdd, wdd, 0x88),
                             _mm512_shuffle_f32x4(v88, w88, 0xDD), _mm512_shuffle_f32x4(vdd, wdd, 0xDD)};
      for (int q = 0; q < 4; ++q) {
        const int row = 4 * q + k;
        if (row < rows) visit(row, out[q]);
      }
    }
  }
  // Stores row j's outputs 0..cols-1 at y + j·ldy, j < rows, each row passed through `finish`.
  template <class Finish = Unchanged>
  LUTMUL_KERNEL_INLINE static void transpose_store(const Floats* in, float* y, int64_t ldy, int rows, int cols,
                                                   Finish finish = {}) {
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    transpose_rows(in, rows, [&](int j, Floats row) { _mm512_mask_storeu_ps(y + j * ldy, mask, finish(row)); });
  }
  // The low 16 bits of each 32-bit lane (all below 2^16) to out[0..cols).
  static void store_u16_prefix(uint16_t* out, Ints v, int cols) {
    const __mmask16 mask = cols >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1u);
    _mm512_mask_cvtepi32_storeu_epi16(out, mask, v);
  }
};

}  // namespace
}  // namespace lutmul::kernels
