// AVX2 (+FMA) primitives for the encoder and the scan. Include only from the AVX2
// translation unit.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/isa/store_prefix_avx2.h"

namespace lutmul::kernels {
namespace {

struct Avx2Ops {
  using XsimdArch = xsimd::avx2;

  // ---- Bytes: 32 of a block's 64 bytes (rows w and 32 + w for 16 words) ----
  using Bytes = __m256i;
  static constexpr int kByteWidth = 32;
  static constexpr int kOutputTile = 4;  // 16 ymm registers
  // The row-major encoder reads a row's split values with plain loads: cheaper than
  // vgatherdps on Zen 3 (docs/experiments.md).
  static constexpr bool kRowGathersAsScalarLoads = true;
  // ... and picks each lane's threshold by blends (vblendvps is one µop on Zen 3).
  static constexpr bool kRowEncoderBlends = true;

  static Bytes load_bytes(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Bytes broadcast_table(const uint8_t* p) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Bytes lookup(Bytes table, Bytes index) { return _mm256_shuffle_epi8(table, index); }
  // Each byte's code (0..63) looked up in a 64-byte table: four 16-byte quarters, picked by
  // bits 4 and 5 (shifted to each byte's sign bit for the blends; codes < 64, so vpshufb
  // never sees bit 7 set).
  static Bytes lookup64(const uint8_t* table, Bytes codes) {
    const Bytes q0 = _mm256_shuffle_epi8(broadcast_table(table), codes);
    const Bytes q1 = _mm256_shuffle_epi8(broadcast_table(table + 16), codes);
    const Bytes q2 = _mm256_shuffle_epi8(broadcast_table(table + 32), codes);
    const Bytes q3 = _mm256_shuffle_epi8(broadcast_table(table + 48), codes);
    const Bytes bit4 = _mm256_slli_epi16(codes, 3), bit5 = _mm256_slli_epi16(codes, 2);
    return _mm256_blendv_epi8(_mm256_blendv_epi8(q0, q1, bit4), _mm256_blendv_epi8(q2, q3, bit4), bit5);
  }
  static Bytes low_nibbles(Bytes b) { return _mm256_and_si256(b, _mm256_set1_epi8(15)); }
  static Bytes high_nibbles(Bytes b) { return _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(15)); }
  static Bytes zero_bytes() { return _mm256_setzero_si256(); }
  static Bytes add_u16(Bytes a, Bytes b) { return _mm256_add_epi16(a, b); }
  static Bytes sub_u16(Bytes a, Bytes b) { return _mm256_sub_epi16(a, b); }
  static Bytes high_bytes_u16(Bytes a) { return _mm256_srli_epi16(a, 8); }
  static Bytes shift_left_8_u16(Bytes a) { return _mm256_slli_epi16(a, 8); }
  static Bytes average_u8(Bytes a, Bytes b) { return _mm256_avg_epu8(a, b); }
  static void store_words(Bytes w, uint32_t* out) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(w)));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(w, 1)));
  }
  static void add_words(Bytes w, uint32_t* out) {
    __m256i* o = reinterpret_cast<__m256i*>(out);
    o[0] = _mm256_add_epi32(o[0], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(w)));
    o[1] = _mm256_add_epi32(o[1], _mm256_cvtepu16_epi32(_mm256_extracti128_si256(w, 1)));
  }

  // ---- Floats: 8 rows ----
  using Floats = __m256;
  using Ints = __m256i;
  using NanFlag = __m256;
  static constexpr int kLanes = 8;

  static Floats load_floats(const float* p) { return _mm256_loadu_ps(p); }
  // For the pruned products (rows in lanes, weights broadcast).
  static Floats load_aligned(const float* p) { return _mm256_load_ps(p); }
  static void store_aligned(float* p, Floats v) { _mm256_store_ps(p, v); }
  // Past the caches (p 32-byte aligned); stream_fence orders them before later stores.
  static void stream_floats(float* p, Floats v) { _mm256_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static Floats broadcast(float v) { return _mm256_set1_ps(v); }
  static Floats zero_floats() { return _mm256_setzero_ps(); }
  static Floats add_floats(Floats a, Floats b) { return _mm256_add_ps(a, b); }
  static Floats multiply_add(Floats a, Floats b, Floats c) { return _mm256_fmadd_ps(a, b, c); }  // a·b + c, one rounding
  static Ints row_offsets(int64_t stride) {
    return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int32_t>(stride)));
  }
  static Floats gather_floats(const float* base, Ints offsets) { return _mm256_i32gather_ps(base, offsets, 4); }
  using Thresholds = Floats;
  static Thresholds load_thresholds(const float* p8) { return _mm256_loadu_ps(p8); }
  static Ints zero_ints() { return _mm256_setzero_si256(); }
  static Ints descend(Ints node, Floats x, Thresholds thresholds) {
    const __m256 right = _mm256_cmp_ps(x, _mm256_permutevar8x32_ps(thresholds, node), _CMP_GT_OQ);
    // right is all ones (−1) where x goes right: node·2 − (−1).
    return _mm256_sub_epi32(_mm256_add_epi32(node, node), _mm256_castps_si256(right));
  }
  static Ints load_ints(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // One codebook's 64 codes (node[v] holds rows 8v .. 8v + 7, each < 256) as its packed
  // 64-byte column: byte 2w is row w, byte 2w + 1 row 32 + w.
  static void store_wide_codes(const Ints* node, uint8_t* out) {
    __m128i rows[4];  // rows 16k .. 16k + 15 as bytes
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (int k = 0; k < 4; ++k) {
      // Each vector's 8 low bytes: 4 per 128-bit lane, gathered into the low 8 bytes.
      const __m256i a = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(node[2 * k], low_bytes), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
      const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(node[2 * k + 1], low_bytes), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
      rows[k] = _mm_unpacklo_epi64(_mm256_castsi256_si128(a), _mm256_castsi256_si128(b));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi8(rows[0], rows[2]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi8(rows[0], rows[2]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi8(rows[1], rows[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi8(rows[1], rows[3]));
  }
  // A level of a 64-leaf tree: up to 32 thresholds in four registers, picked by node bits
  // 0-2 (permutes), then bits 3 and 4 (blends on those bits moved to the sign).
  struct WideThresholds {
    Floats part[4];
  };
  static WideThresholds load_wide_thresholds(const float* p32) {
    return {{_mm256_loadu_ps(p32), _mm256_loadu_ps(p32 + 8), _mm256_loadu_ps(p32 + 16), _mm256_loadu_ps(p32 + 24)}};
  }
  // Level kLevel has 2^kLevel nodes: up to level 3 one register holds them all, level 4 two
  // (one blend), level 5 four (three blends). Picking from all four at every level took
  // the encoder 350-380 µs at C = 16, N = 10,016 on Zen 3.
  template <int kLevel>
  static Ints descend_wide(Ints node, Floats x, const WideThresholds& t) {
    __m256 threshold = _mm256_permutevar8x32_ps(t.part[0], node);
    if constexpr (kLevel >= 4) {
      const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 28));
      threshold = _mm256_blendv_ps(threshold, _mm256_permutevar8x32_ps(t.part[1], node), bit3);
      if constexpr (kLevel >= 5) {
        const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(node, 27));
        const __m256 high = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.part[2], node),
                                             _mm256_permutevar8x32_ps(t.part[3], node), bit3);
        threshold = _mm256_blendv_ps(threshold, high, bit4);
      }
    }
    const __m256 right = _mm256_cmp_ps(x, threshold, _CMP_GT_OQ);
    return _mm256_sub_epi32(_mm256_add_epi32(node, node), _mm256_castps_si256(right));
  }
  static uint32_t greater_mask(Floats x, Floats t) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(x, t, _CMP_GT_OQ)));
  }
  // Lane masks as vectors, for the row-major encoder's threshold blends.
  static Floats greater(Floats x, Floats t) { return _mm256_cmp_ps(x, t, _CMP_GT_OQ); }
  static Floats blend(Floats mask, Floats if_set, Floats if_clear) { return _mm256_blendv_ps(if_clear, if_set, mask); }
  static uint32_t mask_bits(Floats mask) { return static_cast<uint32_t>(_mm256_movemask_ps(mask)); }
  static uint32_t nan_mask(Floats x) { return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q))); }
  // Bit c of `bits` to bit 4c of the result.
  static uint64_t spread_to_nibbles(uint32_t bits) { return _pdep_u64(bits, 0x1111111111111111ull); }
  static NanFlag no_nan() { return _mm256_setzero_ps(); }
  static void track_nan(NanFlag& flag, Floats x) { flag = _mm256_or_ps(flag, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); }
  static bool any_nan(NanFlag flag) { return _mm256_movemask_ps(flag) != 0; }
  // 32 codes (4 vectors of 8 int32, values < 256) to 32 bytes in row order.
  static __m256i pack_32_rows(const Ints* v) {
    const __m256i words01 = _mm256_packus_epi32(v[0], v[1]);
    const __m256i words23 = _mm256_packus_epi32(v[2], v[3]);
    const __m256i bytes = _mm256_packus_epi16(words01, words23);
    return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  }
  // lo/hi: codes of codebooks 2p and 2p+1 for rows 8k..8k+7 (k = 0..7).
  static void store_codes(const Ints* lo, const Ints* hi, uint8_t* out) {
    Ints pairs[8];
    for (int k = 0; k < 8; ++k) pairs[k] = _mm256_or_si256(lo[k], _mm256_slli_epi32(hi[k], 4));
    const __m256i first = pack_32_rows(pairs);       // rows 0..31
    const __m256i second = pack_32_rows(pairs + 4);  // rows 32..63
    const __m256i a = _mm256_unpacklo_epi8(first, second);
    const __m256i b = _mm256_unpackhi_epi8(first, second);
    // Byte 2w = row w, byte 2w+1 = row 32+w.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_permute2x128_si256(a, b, 0x31));
  }

  struct Unchanged {
    Floats operator()(Floats v) const { return v; }
  };
  // in[i] holds output i for 8 rows; calls visit(j, row j's outputs in lanes) for j < rows.
  template <class Visit>
  static void transpose_rows(const Floats* in, int rows, Visit visit) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(in[i], in[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(in[i], in[i + 1]);
    }
    for (int g = 0; g < 2; ++g) {
      u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
      u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
      u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
      u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int k = 0; k < 4; ++k) {
      if (k < rows) visit(k, _mm256_permute2f128_ps(u[k], u[4 + k], 0x20));
      if (4 + k < rows) visit(4 + k, _mm256_permute2f128_ps(u[k], u[4 + k], 0x31));
    }
  }
  // transpose_rows for in[0..3] only: visit(j, row) gets row j's four outputs in lanes 0-3
  // (lanes 4-7 hold another row's). Twelve shuffles where the whole transpose takes 24: the
  // last tile of an M such as 10 or 100 (2 and 4 outputs) cost as much as a whole one.
  template <class Visit>
  static void transpose_rows_4(const Floats* in, int rows, Visit visit) {
    const __m256 t0 = _mm256_unpacklo_ps(in[0], in[1]), t1 = _mm256_unpackhi_ps(in[0], in[1]);
    const __m256 t2 = _mm256_unpacklo_ps(in[2], in[3]), t3 = _mm256_unpackhi_ps(in[2], in[3]);
    const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),  // rows k | 4 + k
                         _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
    for (int k = 0; k < 4; ++k) {
      if (k < rows) visit(k, u[k]);
      if (4 + k < rows) visit(4 + k, _mm256_permute2f128_ps(u[k], u[k], 0x01));
    }
  }
  // Stores row j's outputs 0..cols-1 at y + j·ldy, j < rows, each row passed through `finish`.
  template <class Finish = Unchanged>
  static void transpose_store(const Floats* in, float* y, int64_t ldy, int rows, int cols, Finish finish = {}) {
    const auto store = [&](int j, Floats row) { store_prefix_ps(y + j * ldy, finish(row), cols); };
    if (cols <= 4) return transpose_rows_4(in, rows, store);
    transpose_rows(in, rows, store);
  }
  // The low 16 bits of each 32-bit lane (all below 2^16) to out[0..cols).
  static void store_u16_prefix(uint16_t* out, Ints v, int cols) {
    const __m128i packed = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08));
    if (cols >= 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
      return;
    }
    alignas(16) uint16_t lanes[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), packed);
    for (int c = 0; c < cols; ++c) out[c] = lanes[c];
  }
};

}  // namespace
}  // namespace lutmul::kernels
