// Internal interface between lutmul_cuda's host code (src/cuda/, plain C++) and its CUDA
// kernels (kernels/cuda/*.cu). Arguments are checked by the caller; launchers return the
// launch status (cudaGetLastError) and never throw.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace lutmul::cuda::kernels {

constexpr int kBlockRows = 64;       // rows per packed code block (EncodedRows)
constexpr int kTreeDepth = 4;
constexpr int kThresholdStride = 8;  // floats per (codebook, level); level t uses 2^t

// True if this build has code the current device can run (cudaFuncGetAttributes on a kernel).
cudaError_t probe_kernel_image();

// ---- MADDNESS encode ----------------------------------------------------------------------

// Split columns gathered into shared memory per 64-row block: at most this many per chunk.
constexpr int kEncodeTileColumns = 64;

struct EncodeParams {
  const float* a = nullptr;  // element (i, j) at a[i * row_stride + j * col_stride]
  int64_t rows = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 0;
  int ncodebooks = 0;
  int npairs = 0;
  const int32_t* split_dims = nullptr;  // C × 4
  const float* thresholds = nullptr;    // C × 4 × 8
  uint8_t* packed = nullptr;            // nblocks × npairs × 64
  int* nan_flag = nullptr;              // set to 1 when a value read is NaN (may be null)
  // Row-major plan: codebook pairs in chunks whose split columns fit one shared tile.
  int nchunks = 0;
  const int32_t* chunk_pair_begin = nullptr;    // nchunks + 1
  const int32_t* chunk_column_begin = nullptr;  // nchunks + 1, into `columns`
  const int32_t* columns = nullptr;             // per chunk: its distinct split columns, ascending
  const int32_t* column_slot = nullptr;         // C × 4: position of split (c, t) in its chunk's columns
};

// Rows in shared tiles, columns gathered by rows of 32 lanes (row-major A).
cudaError_t launch_encode_row_major(const EncodeParams& params, cudaStream_t stream);
// Rows in lanes: coalesced column reads for column-major A (row_stride == 1).
cudaError_t launch_encode_col_major(const EncodeParams& params, cudaStream_t stream);

// ---- MADDNESS scan ------------------------------------------------------------------------

// Tables in the layout the scan reads: word [c][g][k] (c < 2·npairs codebooks, g < groups,
// k < 16 codes) holds in byte i the 8-bit entry of output 4g + i for code k of codebook c
// (zero beyond M and for a phantom codebook). groups = ceil(M / 32) · 8.
struct ScanParams {
  const uint8_t* packed = nullptr;  // EncodedRows layout
  int64_t rows = 0;
  int npairs = 0;
  const uint32_t* tables = nullptr;
  int64_t groups = 0;
  int64_t outputs = 0;               // M
  const float* scales = nullptr;     // M: y = float(S)·scales[m] + offsets[m], two roundings
  const float* offsets = nullptr;    // M
  bool averaged = false;
  float* y = nullptr;
  int64_t ldy = 0;
};

constexpr int64_t scan_table_groups(int64_t outputs) { return (outputs + 31) / 32 * 8; }
cudaError_t launch_scan(const ScanParams& params, cudaStream_t stream);

// ---- Elementwise helpers (dense and int8 operators) --------------------------------------

// y[i][j] = bias[j] for i < rows, j < cols.
cudaError_t launch_fill_rows(float* y, int64_t rows, int64_t cols, int64_t ldy, const float* bias, cudaStream_t stream);
// out (rows × cols, row-major, packed) = x rounded to bfloat16 (bf16) or IEEE half, bit patterns.
cudaError_t launch_convert_16bit(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                                 bool bf16, uint16_t* out, cudaStream_t stream);
// Dynamic per-row int8 quantisation exactly as Int8Linear's scalar reference: out is
// rows × k_padded (zeros past k), scales[i] = max|x_i| / 127; nonfinite_flag set to 1 when
// a row holds a NaN or infinity.
cudaError_t launch_quantize_rows(const float* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride,
                                 int64_t k_padded, int8_t* out, float* scales, int* nonfinite_flag, cudaStream_t stream);
// acc (rows × m_padded, row-major) = xq (rows × k_padded) · wtᵀ (wt: m_padded × k_padded),
// exact int32 sums with __dp4a: where cuBLASLt offers no int8 algorithm for a shape.
cudaError_t launch_int8_gemm(const int8_t* xq, const int8_t* wt, int64_t rows, int64_t k_padded, int64_t m_padded,
                             int32_t* acc, cudaStream_t stream);
// y[i][j] = float(acc[i][j])·(row_scales[i]·weight_scales[j]) + bias[j], two roundings.
cudaError_t launch_int8_epilogue(const int32_t* acc, int64_t ld_acc, int64_t rows, int64_t cols, const float* row_scales,
                                 const float* weight_scales, const float* bias, float* y, int64_t ldy,
                                 cudaStream_t stream);

// ---- LoRA ---------------------------------------------------------------------------------

constexpr int kLoraTileRows = 16;     // rows of one adapter per shrink/expand tile
constexpr int kLoraMaxRank = 256;
constexpr int kLoraMaxAdapters = 4000;  // the grouping kernel's shared counters

struct LoraParams {
  const float* x = nullptr;  // element (i, k) at x[i * x_row_stride + k * x_col_stride]
  int64_t rows = 0;
  int64_t x_row_stride = 0;
  int64_t x_col_stride = 0;
  int64_t input_dim = 0;   // K
  int64_t output_dim = 0;  // M
  const int32_t* ids = nullptr;  // rows; −1 = no adapter
  int nadapters = 0;
  const float* a = nullptr;          // adapter j's A (K × r_j, row-major) at a + a_offsets[j]
  const int64_t* a_offsets = nullptr;
  const float* b = nullptr;          // adapter j's B (r_j × M, row-major) at b + b_offsets[j]
  const int64_t* b_offsets = nullptr;
  const int32_t* ranks = nullptr;
  const float* scales = nullptr;     // alpha_j / r_j
  int max_rank = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  int* error_flag = nullptr;         // set to 1 for an id outside [−1, nadapters)
};

// Scratch of the grouped path, carved by the caller (all 256-byte aligned).
struct LoraWorkspace {
  int32_t* order = nullptr;   // rows: row indices grouped by adapter
  int32_t* tiles = nullptr;   // max_tiles × 3: adapter, first position in `order`, row count
  int32_t* tile_count = nullptr;
  float* shrunk = nullptr;    // rows × max_rank: X·A per grouped position (zeroed by the launcher)
  int64_t max_tiles = 0;      // ceil(rows / kLoraTileRows) + nadapters
};

// Groups rows (one block), then shrink with split K, then expand, all on `stream`.
cudaError_t launch_lora_grouped(const LoraParams& params, const LoraWorkspace& workspace, int multiprocessors,
                                cudaStream_t stream);
// One block per row, plain loops.
cudaError_t launch_lora_reference(const LoraParams& params, cudaStream_t stream);
// out[i][k] = x[rows[i]][k] (out: count × K row-major).
cudaError_t launch_gather_rows(const float* x, int64_t row_stride, int64_t col_stride, int64_t cols,
                               const int32_t* rows, int64_t count, float* out, cudaStream_t stream);
// y[rows[i]][j] += update[i][j] (update: count × cols row-major).
cudaError_t launch_scatter_add_rows(const float* update, int64_t cols, const int32_t* rows, int64_t count, float* y,
                                    int64_t ldy, cudaStream_t stream);

}  // namespace lutmul::cuda::kernels
