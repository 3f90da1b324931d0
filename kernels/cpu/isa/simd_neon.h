// NEON (AArch64) primitives for the encoder and the scan. Include only from the NEON
// translation unit.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <xsimd/xsimd.hpp>

namespace lutmul::kernels {
namespace {

struct NeonOps {
  using XsimdArch = xsimd::neon64;

  // ---- Bytes: 16 of a block's 64 bytes ----
  using Bytes = uint8x16_t;
  static constexpr int kByteWidth = 16;
  static constexpr int kOutputTile = 8;
  // gather_floats is already lane loads.
  static constexpr bool kRowGathersAsScalarLoads = false;
  static constexpr bool kRowEncoderBlends = false;  // compares and bit selects (not measured here)

  static Bytes load_bytes(const uint8_t* p) { return vld1q_u8(p); }
  static Bytes broadcast_table(const uint8_t* p) { return vld1q_u8(p); }
  static Bytes lookup(Bytes table, Bytes index) { return vqtbl1q_u8(table, index); }
  // Each byte's code (0..63) looked up in a 64-byte table: one tbl over four registers.
  static Bytes lookup64(const uint8_t* table, Bytes codes) { return vqtbl4q_u8(vld1q_u8_x4(table), codes); }
  static Bytes low_nibbles(Bytes b) { return vandq_u8(b, vdupq_n_u8(15)); }
  static Bytes high_nibbles(Bytes b) { return vshrq_n_u8(b, 4); }
  static Bytes zero_bytes() { return vdupq_n_u8(0); }
  static Bytes add_u16(Bytes a, Bytes b) {
    return vreinterpretq_u8_u16(vaddq_u16(vreinterpretq_u16_u8(a), vreinterpretq_u16_u8(b)));
  }
  static Bytes sub_u16(Bytes a, Bytes b) {
    return vreinterpretq_u8_u16(vsubq_u16(vreinterpretq_u16_u8(a), vreinterpretq_u16_u8(b)));
  }
  static Bytes high_bytes_u16(Bytes a) { return vreinterpretq_u8_u16(vshrq_n_u16(vreinterpretq_u16_u8(a), 8)); }
  static Bytes shift_left_8_u16(Bytes a) { return vreinterpretq_u8_u16(vshlq_n_u16(vreinterpretq_u16_u8(a), 8)); }
  static Bytes average_u8(Bytes a, Bytes b) { return vrhaddq_u8(a, b); }
  static void store_words(Bytes w, uint32_t* out) {
    const uint16x8_t words = vreinterpretq_u16_u8(w);
    vst1q_u32(out, vmovl_u16(vget_low_u16(words)));
    vst1q_u32(out + 4, vmovl_u16(vget_high_u16(words)));
  }
  static void add_words(Bytes w, uint32_t* out) {
    const uint16x8_t words = vreinterpretq_u16_u8(w);
    vst1q_u32(out, vaddq_u32(vld1q_u32(out), vmovl_u16(vget_low_u16(words))));
    vst1q_u32(out + 4, vaddq_u32(vld1q_u32(out + 4), vmovl_u16(vget_high_u16(words))));
  }

  // ---- Floats: 4 rows ----
  using Floats = float32x4_t;
  using Ints = uint32x4_t;
  using NanFlag = uint32x4_t;
  static constexpr int kLanes = 4;

  static Floats load_floats(const float* p) { return vld1q_f32(p); }
  // For the pruned products (rows in lanes, weights broadcast).
  static Floats load_aligned(const float* p) { return vld1q_f32(p); }
  static void store_aligned(float* p, Floats v) { vst1q_f32(p, v); }
  // No non-temporal store is used on NEON: plain ones.
  static void stream_floats(float* p, Floats v) { vst1q_f32(p, v); }
  static void stream_fence() {}
  static Floats broadcast(float v) { return vdupq_n_f32(v); }
  static Floats zero_floats() { return vdupq_n_f32(0.f); }
  static Floats add_floats(Floats a, Floats b) { return vaddq_f32(a, b); }
  static Floats multiply_add(Floats a, Floats b, Floats c) { return vfmaq_f32(c, a, b); }  // a·b + c, one rounding
  static Ints row_offsets(int64_t stride) { return row_offsets_impl(stride); }
  static Ints row_offsets_impl(int64_t stride) {
    const uint32_t lanes[4] = {0, 1, 2, 3};
    return vmulq_n_u32(vld1q_u32(lanes), static_cast<uint32_t>(stride));
  }
  static Floats gather_floats(const float* base, Ints offsets) {
    float32x4_t x = vdupq_n_f32(base[vgetq_lane_u32(offsets, 0)]);
    x = vld1q_lane_f32(base + vgetq_lane_u32(offsets, 1), x, 1);
    x = vld1q_lane_f32(base + vgetq_lane_u32(offsets, 2), x, 2);
    return vld1q_lane_f32(base + vgetq_lane_u32(offsets, 3), x, 3);
  }
  // Eight thresholds as 32 bytes for a two-register byte lookup.
  using Thresholds = uint8x16x2_t;
  static Thresholds load_thresholds(const float* p8) {
    return {{vld1q_u8(reinterpret_cast<const uint8_t*>(p8)), vld1q_u8(reinterpret_cast<const uint8_t*>(p8 + 4))}};
  }
  static Ints zero_ints() { return vdupq_n_u32(0); }
  static Ints descend(Ints node, Floats x, Thresholds table) {
    // Byte indices 4·node + {0, 1, 2, 3} gather the node's threshold (node < 8: no carries).
    const uint32x4_t index = vaddq_u32(vmulq_n_u32(node, 0x04040404u), vdupq_n_u32(0x03020100u));
    const float32x4_t threshold = vreinterpretq_f32_u8(vqtbl2q_u8(table, vreinterpretq_u8_u32(index)));
    const uint32x4_t right = vcgtq_f32(x, threshold);  // all ones where x goes right
    return vsubq_u32(vaddq_u32(node, node), right);
  }
  static Ints load_ints(const int32_t* p) { return vreinterpretq_u32_s32(vld1q_s32(p)); }
  // One codebook's 64 codes (node[v] holds rows 4v .. 4v + 3, each < 256) as its packed
  // 64-byte column: byte 2w is row w, byte 2w + 1 row 32 + w.
  static void store_wide_codes(const Ints* node, uint8_t* out) {
    uint8x16_t rows[4];  // rows 16k .. 16k + 15 as bytes
    for (int k = 0; k < 4; ++k) {
      const uint16x8_t first = vcombine_u16(vmovn_u32(node[4 * k]), vmovn_u32(node[4 * k + 1]));
      const uint16x8_t second = vcombine_u16(vmovn_u32(node[4 * k + 2]), vmovn_u32(node[4 * k + 3]));
      rows[k] = vcombine_u8(vmovn_u16(first), vmovn_u16(second));
    }
    vst1q_u8(out, vzip1q_u8(rows[0], rows[2]));
    vst1q_u8(out + 16, vzip2q_u8(rows[0], rows[2]));
    vst1q_u8(out + 32, vzip1q_u8(rows[1], rows[3]));
    vst1q_u8(out + 48, vzip2q_u8(rows[1], rows[3]));
  }
  // A level of a 64-leaf tree: up to 32 thresholds as 128 bytes, looked up as bytes
  // 4·node + {0, 1, 2, 3} (node < 32: no carries) in two four-register tables; indices
  // past a table give 0, so the two lookups combine with an or.
  struct WideThresholds {
    uint8x16x4_t low, high;
  };
  static WideThresholds load_wide_thresholds(const float* p32) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(p32);
    return {vld1q_u8_x4(bytes), vld1q_u8_x4(bytes + 64)};
  }
  template <int kLevel>  // the same lookups at every level
  static Ints descend_wide(Ints node, Floats x, const WideThresholds& t) {
    const uint8x16_t index = vreinterpretq_u8_u32(vaddq_u32(vmulq_n_u32(node, 0x04040404u), vdupq_n_u32(0x03020100u)));
    const uint8x16_t bytes = vorrq_u8(vqtbl4q_u8(t.low, index), vqtbl4q_u8(t.high, vsubq_u8(index, vdupq_n_u8(64))));
    const uint32x4_t right = vcgtq_f32(x, vreinterpretq_f32_u8(bytes));
    return vsubq_u32(vaddq_u32(node, node), right);
  }
  static uint32_t lane_bits(uint32x4_t all_ones_lanes) {
    const uint32_t weights[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(all_ones_lanes, vld1q_u32(weights)));
  }
  static uint32_t greater_mask(Floats x, Floats t) { return lane_bits(vcgtq_f32(x, t)); }
  static uint32_t nan_mask(Floats x) { return lane_bits(vmvnq_u32(vceqq_f32(x, x))); }
  static uint64_t spread_to_nibbles(uint32_t bits) {
    return (bits & 1u) | ((bits & 2u) << 3) | ((bits & 4u) << 6) | (uint64_t{bits & 8u} << 9);
  }
  static NanFlag no_nan() { return vdupq_n_u32(0); }
  static void track_nan(NanFlag& flag, Floats x) { flag = vorrq_u32(flag, vmvnq_u32(vceqq_f32(x, x))); }
  static bool any_nan(NanFlag flag) { return vmaxvq_u32(flag) != 0; }
  static void store_codes(const Ints* lo, const Ints* hi, uint8_t* out) {
    uint8x16_t rows[4];
    for (int k = 0; k < 4; ++k) {
      uint16x8_t words[2];
      for (int h = 0; h < 2; ++h) {
        const uint32x4_t a = vorrq_u32(lo[4 * k + 2 * h], vshlq_n_u32(hi[4 * k + 2 * h], 4));
        const uint32x4_t b = vorrq_u32(lo[4 * k + 2 * h + 1], vshlq_n_u32(hi[4 * k + 2 * h + 1], 4));
        words[h] = vcombine_u16(vmovn_u32(a), vmovn_u32(b));
      }
      rows[k] = vcombine_u8(vmovn_u16(words[0]), vmovn_u16(words[1]));
    }
    vst1q_u8(out, vzip1q_u8(rows[0], rows[2]));
    vst1q_u8(out + 16, vzip2q_u8(rows[0], rows[2]));
    vst1q_u8(out + 32, vzip1q_u8(rows[1], rows[3]));
    vst1q_u8(out + 48, vzip2q_u8(rows[1], rows[3]));
  }
  struct Unchanged {
    Floats operator()(Floats v) const { return v; }
  };
  // in[i] holds output i for 4 rows; calls visit(j, row j's outputs in lanes) for j < rows.
  template <class Visit>
  static void transpose_rows(const Floats* in, int rows, Visit visit) {
    const float32x4x2_t a = vtrnq_f32(in[0], in[1]);
    const float32x4x2_t b = vtrnq_f32(in[2], in[3]);
    const float32x4_t out[4] = {vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0])),
                                vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1])),
                                vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0])),
                                vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1]))};
    for (int r = 0; r < rows; ++r) visit(r, out[r]);
  }
  // Stores row j's outputs 0..cols-1 at y + j·ldy, j < rows, each row passed through `finish`.
  template <class Finish = Unchanged>
  static void transpose_store(const Floats* in, float* y, int64_t ldy, int rows, int cols, Finish finish = {}) {
    transpose_rows(in, rows, [&](int r, Floats v) {
      const float32x4_t row = finish(v);
      if (cols == 4) {
        vst1q_f32(y + r * ldy, row);
      } else {
        float lanes[4];
        vst1q_f32(lanes, row);
        for (int c = 0; c < cols; ++c) y[r * ldy + c] = lanes[c];
      }
    });
  }
  // The low 16 bits of each 32-bit lane (all below 2^16) to out[0..cols).
  static void store_u16_prefix(uint16_t* out, Ints v, int cols) {
    const uint16x4_t narrow = vmovn_u32(v);
    if (cols >= 4) {
      vst1_u16(out, narrow);
      return;
    }
    uint16_t lanes[4];
    vst1_u16(lanes, narrow);
    for (int c = 0; c < cols; ++c) out[c] = lanes[c];
  }
};

}  // namespace
}  // namespace lutmul::kernels
