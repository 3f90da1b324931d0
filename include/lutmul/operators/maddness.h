// MADDNESS approximate matrix multiplication (Blalock & Guttag, ICML 2021).
//
//   Y ≈ A·B (+ bias), A: N × D activations known at run time, B: D × M weights known ahead.
//
// fit() learns, from sample rows of A, one hash tree per codebook (C codebooks over disjoint
// column blocks of A; 4 levels and 16 leaves, or 6 levels and 64 leaves) and dense
// prototypes (ridge regression); set_weights() turns B into 8-bit lookup tables. matmul()
// encodes each row of A into C codes and adds up C table entries per output, with SIMD
// table lookups instead of multiplies.
//
//   lutmul::MaddnessConfig config;
//   config.ncodebooks = 16;
//   lutmul::Maddness model(config);
//   model.fit(lutmul::MatrixView::row_major(A_train, n_train, D),
//             lutmul::MatrixView::row_major(B, D, M));
//   model.matmul(lutmul::MatrixView::row_major(A, N, D), Y, /*ldy=*/M);
//
// A fitted model is immutable under matmul/encode/scan: any number of threads may call
// them at once. fit, fit_encoder and set_weights must not race with other calls.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lutmul/core/cache_line_bytes.h"
#include "lutmul/core/matrix.h"
#include "lutmul/operators/epilogue.h"

namespace lutmul {
namespace detail {
class ByteReader;
}

// How the scan adds 8-bit table entries.
enum class Accumulation {
  exact,     // exact integer sums (uint16 lanes, widened before they can overflow)
  averaged,  // pairs of codebooks averaged with rounding (vpavgb) first: fewer adds in
             // the vpshufb scans (AVX2, AVX-512), a little rounding noise; the expected
             // +1/4 per pair is corrected. With AVX-512 VBMI the exact scan is the faster.
};

// How prototypes (the 16 D-dimensional vectors per codebook) are chosen.
enum class PrototypeMethod {
  ridge,         // joint ridge regression over all codebooks, λ picked on held-out rows
  bucket_means,  // each leaf's mean over its codebook's columns (no ridge step)
};

// Lookup-table precision.
enum class TableMode {
  uint8,    // 8-bit tables, SIMD scan (the product)
  float32,  // float tables, plain loop: only to measure what quantisation costs
};

struct MaddnessConfig {
  int ncodebooks = 16;      // C: 1 ≤ C ≤ D. Each codebook reads depth columns of A.
  // K, leaves per tree: 16 (4 levels, 4-bit codes) or 64 (6 levels, 6-bit codes in bytes,
  // 64-byte tables scanned with vpermb; exact accumulation only).
  int leaves = 16;
  int split_candidates = 4; // dimensions tried per tree level (largest within-bucket SSE)
  PrototypeMethod prototypes = PrototypeMethod::ridge;
  // Ridge strengths tried, as multiples of the mean bucket size (N / 16). Empty: a default
  // grid. The bucket-mean solution (λ → ∞) always competes too.
  std::vector<double> ridge_lambdas;
  // λ is chosen by cross-validation over round(1 / heldout_fraction) folds (2 to 10), each
  // holding out about this share of the rows, then the prototypes are refit on all rows.
  // 0: no held-out rows (the middle λ of the grid).
  double heldout_fraction = 0.2;
  uint64_t seed = 0;              // shuffles the folds; fits are deterministic
  Accumulation accumulation = Accumulation::exact;
  TableMode tables = TableMode::uint8;
};

// Progress of a long fit: stage name, steps done, steps in that stage.
using ProgressCallback = std::function<void(const std::string& stage, int64_t done, int64_t total)>;

// Codes of N rows, packed the way the scan reads them.
//
// 16-leaf layout (4-bit codes): rows in blocks of 64 (the last block zero-padded); within a block, for each
// codebook pair p (codebooks 2p, 2p+1; an odd C gets a phantom codebook of code 0) 64
// bytes in which byte 2w holds row w and byte 2w+1 holds row 32+w, the low nibble for
// codebook 2p and the high nibble for 2p+1. Read as 16-bit words, the low bytes are
// rows 0..31 and the high bytes rows 32..63, so exact 16-bit sums come out in row order.
// packed_bytes() = ceil(N/64) · ceil(C/2) · 64.
// 64-leaf layout (a 6-bit code per byte): the same, with one 64-byte column per codebook
// holding its code of row w at byte 2w and of row 32+w at byte 2w+1;
// packed_bytes() = ceil(N/64) · C · 64.
class EncodedRows {
 public:
  static constexpr int kBlockRows = 64;

  EncodedRows() = default;
  EncodedRows(int64_t rows, int ncodebooks, int leaves = 16);

  int64_t rows() const { return rows_; }
  int ncodebooks() const { return ncodebooks_; }
  int leaves() const { return leaves_; }
  int npairs() const { return (ncodebooks_ + 1) / 2; }
  // 64-byte columns per block of rows: codebook pairs (16 leaves) or codebooks (64).
  int byte_columns() const { return leaves_ == 16 ? npairs() : ncodebooks_; }
  int64_t nblocks() const { return (rows_ + kBlockRows - 1) / kBlockRows; }

  // The code (0..leaves-1) of `row` in `codebook`.
  uint8_t code(int64_t row, int codebook) const;
  void set_code(int64_t row, int codebook, uint8_t code);
  // All codes as a row-major rows × ncodebooks array.
  std::vector<uint8_t> unpacked() const;

  const uint8_t* packed_data() const { return packed_.data(); }
  uint8_t* packed_data() { return packed_.data(); }
  size_t packed_bytes() const { return packed_.size(); }

 private:
  int64_t rows_ = 0;
  int ncodebooks_ = 0;
  int leaves_ = 16;
  std::vector<uint8_t> packed_;
};

class Maddness {
 public:
  // The default trees (MaddnessConfig::leaves = 16); leaves() and tree_depth() give a model's.
  static constexpr int kTreeDepth = 4;
  static constexpr int kLeaves = 16;

  explicit Maddness(MaddnessConfig config = {});

  // Learns the encoder from A_train (N × D, N ≥ K finite rows) and builds tables for B
  // (D × M) and optional bias (M floats).
  void fit(const MatrixView& A_train, const MatrixView& B, const float* bias = nullptr,
           const ProgressCallback& progress = {});
  // Learns the encoder alone; attach weights later (several times) with set_weights.
  void fit_encoder(const MatrixView& A_train, const ProgressCallback& progress = {});
  // Builds the lookup tables for B (D × M) and bias (M floats or null).
  void set_weights(const MatrixView& B, const float* bias = nullptr);

  // Y (N × M, row-major, leading dimension ldy ≥ M) ≈ A·B + bias, through the epilogue
  // (Y = act(A·B + bias), or Y += act(A·B + bias)) applied as the scan stores Y.
  void matmul(const MatrixView& A, float* Y, int64_t ldy, const Epilogue& epilogue = {}) const;
  Matrix matmul(const MatrixView& A) const;

  EncodedRows encode(const MatrixView& A) const;
  // Encodes into `codes`, reusing its memory when the size matches.
  void encode(const MatrixView& A, EncodedRows& codes) const;
  // Y from already encoded rows.
  void scan(const EncodedRows& codes, float* Y, int64_t ldy, const Epilogue& epilogue = {}) const;

  // Narrow outputs, for callers that take them: Y in half the bytes.
  //
  // Y as bfloat16 bit patterns (N × M, row-major, ldy ≥ M): matmul's float result, epilogue
  // included, rounded to nearest even, bit for bit. Accumulating adds the result to the old
  // values widened to float, then rounds.
  void matmul_bf16(const MatrixView& A, uint16_t* Y, int64_t ldy, const Epilogue& epilogue = {}) const;
  void scan_bf16(const EncodedRows& codes, uint16_t* Y, int64_t ldy, const Epilogue& epilogue = {}) const;
  // The scan's integer sums S (N × M, row-major, lds ≥ M), from which matmul's float result
  // before its epilogue is float(S)·sum_scale(m) + sum_offset(m), two roundings, in that
  // order. Needs 8-bit tables and at most 256 codebooks (512 with averaged accumulation) so
  // every sum fits 16 bits.
  void scan_sums(const EncodedRows& codes, uint16_t* S, int64_t lds) const;
  // Both throw lutmul::Error unless 0 ≤ m < output_dim(); they follow the accumulation mode.
  float sum_scale(int64_t m) const;
  float sum_offset(int64_t m) const;

  // Encoding fused with the producer of A: rows are encoded while they are still in cache,
  // not in a pass of their own over all of A once it is written (docs/design.md).
  //
  // Encodes `rows` (D columns, either layout) as rows first_row, first_row + 1, ... of
  // `codes`, which holds this model's codebooks and leaves and has room for them (made as
  // EncodedRows(N, ncodebooks(), leaves())). first_row is a multiple of 64 and the rows end
  // on a multiple of 64 or at codes.rows(), so calls on disjoint ranges write disjoint bytes
  // and may run on different threads at once. Runs on the calling thread only, and takes
  // the rows to be in cache (no prefetch of rows ahead).
  void encode_rows(const MatrixView& rows, int64_t first_row, EncodedRows& codes) const;

  // Writes rows [begin, end) of A.
  using RowProducer = std::function<void(int64_t begin, int64_t end)>;
  // matmul(A, Y, ldy, epilogue) for an A that `produce` writes during the call: each of the
  // library's threads calls it on its own 64-row blocks (disjoint, in ascending order) and
  // encodes every block right after it is written; the scan follows. Y equals matmul's on
  // the same A bit for bit. An exception thrown by `produce` stops the call and is rethrown
  // once every thread has stopped.
  void matmul_produced(const MatrixView& A, const RowProducer& produce, float* Y, int64_t ldy,
                       const Epilogue& epilogue = {}) const;

  // Inference-time settings (they do not change what was learned).
  void set_accumulation(Accumulation accumulation);
  void set_table_mode(TableMode mode);

  bool encoder_fitted() const { return !split_dims_.empty(); }
  bool has_weights() const { return output_dim_ > 0; }
  const MaddnessConfig& config() const { return config_; }
  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return output_dim_; }
  int ncodebooks() const { return config_.ncodebooks; }
  int leaves() const { return config_.leaves; }
  int tree_depth() const { return config_.leaves == 64 ? 6 : 4; }
  // Column block [begin, end) of codebook c.
  int64_t subspace_begin(int c) const { return subspace_begin_[c]; }
  int64_t subspace_end(int c) const { return subspace_begin_[c + 1]; }
  // Split dimension of tree level t (0 ≤ t < tree_depth()) of codebook c.
  int32_t split_dim(int c, int level) const { return split_dims_[c * tree_depth() + level]; }
  // Threshold of node `node` (0 ≤ node < 2^level) of that level: x > threshold goes right.
  float threshold(int c, int level, int node) const {
    return thresholds_[(c * tree_depth() + level) * (leaves() / 2) + node];
  }
  // Prototypes: (K·C) × D row-major; row Kc + k is leaf k of codebook c.
  const std::vector<float>& prototypes() const { return prototypes_; }
  // Float tables: M × C × K (entry [m][c][k] = ⟨prototype(c, k), B[:, m]⟩).
  const std::vector<float>& float_tables() const { return float_tables_; }
  // 8-bit tables: K = 16: M × ceil(C/2) × 32 bytes (codebook 2p's 16 entries, then 2p+1's);
  // K = 64: M × C × 64 bytes.
  const CacheLineBytes& quantized_tables() const { return quantized_tables_; }
  // Dequantisation of output m: y_m ≈ Σ_c q[m][c][code_c] / table_scale(m) + table_offset(m)
  // + bias_m, where table_offset(m) sums the minima of output m's codebook tables.
  // Both throw lutmul::Error unless 0 ≤ m < output_dim().
  float table_scale(int64_t m) const;
  double table_offset(int64_t m) const;
  const std::vector<float>& bias() const { return bias_; }
  // Ridge strength chosen by fit (in multiples of the mean bucket size); +inf means the
  // bucket means won.
  double chosen_ridge_lambda() const { return chosen_lambda_; }

  // Versioned binary file with a checksum; written atomically (temp file, then rename).
  void save(const std::string& path) const;
  // Throws lutmul::Error for a missing, truncated, corrupt or foreign file.
  static Maddness load(const std::string& path);
  // The same format in memory.
  std::vector<uint8_t> serialize() const;
  static Maddness deserialize(const uint8_t* data, size_t size);
  // The model's state without the file around it (the payload of a "maddness" operator file).
  // It records whether a Maddness or a MaddnessLinear saved it, so that a loader that returns
  // either (Python's lutmul.load) gives back what was saved; both read the same.
  enum class SavedAs : uint8_t { model = 0, operator_ = 1 };
  std::vector<uint8_t> payload(SavedAs saved_as = SavedAs::model) const;
  static Maddness from_payload(const uint8_t* data, size_t size);
  // True when the file holds a model saved by Maddness::save (any release), false for a
  // MaddnessLinear's or another kind's file; throws lutmul::Error for a damaged one.
  static bool is_saved_model(const std::string& path);
  static bool is_saved_model(const uint8_t* data, size_t size);

 private:
  static Maddness read_state(detail::ByteReader& reader, uint32_t version);
  void check_input(const MatrixView& A, const char* what) const;
  // Encodes 64-row blocks [block_begin, block_end) of A into `packed` (A's block 0 at
  // packed's start) on the calling thread; rows_in_cache: just produced, nothing to
  // prefetch. Returns true if a value read was NaN.
  bool encode_blocks(const MatrixView& A, uint8_t* packed, int64_t block_begin, int64_t block_end,
                     bool rows_in_cache) const;
  void build_output_offsets();
  void build_wide_row_tables();
  // scan and its narrow forms: Y is float* (f32) or uint16_t* (bf16, sums); stream_y: float Y
  // written with non-temporal stores (kernels::ScanArgs::stream_y).
  enum class Output : uint8_t { f32, bf16, sums };
  void scan_to(const EncodedRows& codes, Output output, void* Y, int64_t ldy, const Epilogue& epilogue,
               const char* what, bool stream_y = false) const;

  MaddnessConfig config_;
  int64_t input_dim_ = 0;
  int64_t output_dim_ = 0;
  double chosen_lambda_ = 0;
  std::vector<int64_t> subspace_begin_;  // C + 1 entries
  std::vector<int32_t> split_dims_;      // C × depth
  std::vector<float> thresholds_;        // C × depth × K/2 (level t uses the first 2^t)
  std::vector<float> prototypes_;        // KC × D
  std::vector<float> float_tables_;      // M × C × K
  CacheLineBytes quantized_tables_;      // M × ceil(C/2) × 32, or M × C × 64; lines for the scans
  // 64 leaves: quantized_tables_ again with outputs last (kernels::pack_wide_row_tables), for
  // the AVX2 scan; derived, never saved. Empty for 16 leaves.
  std::vector<uint8_t> wide_row_tables_;
  std::vector<float> table_scales_;      // M
  std::vector<double> table_offsets_;    // M
  std::vector<float> bias_;              // M (zeros when none)
  // What the scan kernels apply, y_m = float(S)·scale_m + offset_m, per accumulation mode.
  std::vector<float> output_scales_;     // M: 1 / table_scale(m)
  std::vector<float> output_offsets_;    // M: table_offset(m) + bias_m
  std::vector<float> averaged_scales_;   // M: 2 / table_scale(m) (S sums pair averages)
  std::vector<float> averaged_offsets_;  // M: the same offsets with the averaging bias removed
};

}  // namespace lutmul
