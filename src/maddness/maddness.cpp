// The Maddness model: argument checks, training orchestration, threaded encode and scan.
#include "lutmul/operators/maddness.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <exception>

#include "core/blas.h"
#include "core/kernel_registry.h"
#include "lutmul/core/cpu_features.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "maddness/lookup_tables.h"
#include "maddness/train/training.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

using kernels::kBlockRows;

// ---- EncodedRows ----

namespace {
void check_leaves(int leaves, const char* what) {
  LUTMUL_CHECK(leaves == 16 || leaves == 64, what, ": leaves must be 16 or 64, got ", leaves);
}
}  // namespace

EncodedRows::EncodedRows(int64_t rows, int ncodebooks, int leaves)
    : rows_(rows), ncodebooks_(ncodebooks), leaves_(leaves) {
  LUTMUL_CHECK(rows >= 0 && ncodebooks >= 1, "EncodedRows: need rows >= 0 and ncodebooks >= 1, got ", rows, " and ",
               ncodebooks);
  check_leaves(leaves, "EncodedRows");
  packed_.assign(static_cast<size_t>(nblocks() * byte_columns() * kBlockRows), 0);
}

uint8_t EncodedRows::code(int64_t row, int codebook) const {
  LUTMUL_CHECK(row >= 0 && row < rows_ && codebook >= 0 && codebook < ncodebooks_, "EncodedRows::code: (", row, ", ",
               codebook, ") is outside ", rows_, " rows x ", ncodebooks_, " codebooks");
  const int column = leaves_ == 16 ? codebook / 2 : codebook;
  const uint8_t byte = packed_[static_cast<size_t>((row / kBlockRows) * byte_columns() * kBlockRows) +
                               kernels::packed_byte_offset(column, static_cast<int>(row % kBlockRows))];
  if (leaves_ != 16) return byte;
  return codebook % 2 == 0 ? byte & 15 : byte >> 4;
}

void EncodedRows::set_code(int64_t row, int codebook, uint8_t code) {
  LUTMUL_CHECK(row >= 0 && row < rows_ && codebook >= 0 && codebook < ncodebooks_ && code < leaves_,
               "EncodedRows::set_code: (", row, ", ", codebook, ") = ", int{code}, " is outside ", rows_, " rows x ",
               ncodebooks_, " codebooks x ", leaves_, " codes");
  const int column = leaves_ == 16 ? codebook / 2 : codebook;
  uint8_t& byte = packed_[static_cast<size_t>((row / kBlockRows) * byte_columns() * kBlockRows) +
                          kernels::packed_byte_offset(column, static_cast<int>(row % kBlockRows))];
  if (leaves_ != 16) {
    byte = code;
  } else {
    byte = codebook % 2 == 0 ? static_cast<uint8_t>((byte & 0xF0) | code) : static_cast<uint8_t>((byte & 0x0F) | (code << 4));
  }
}

std::vector<uint8_t> EncodedRows::unpacked() const {
  std::vector<uint8_t> out(static_cast<size_t>(rows_ * ncodebooks_));
  for (int64_t r = 0; r < rows_; ++r)
    for (int c = 0; c < ncodebooks_; ++c) out[r * ncodebooks_ + c] = code(r, c);
  return out;
}

// ---- Maddness ----

Maddness::Maddness(MaddnessConfig config) : config_(std::move(config)) {
  LUTMUL_CHECK(config_.ncodebooks >= 1, "MaddnessConfig.ncodebooks must be at least 1, got ", config_.ncodebooks);
  LUTMUL_CHECK(config_.split_candidates >= 1, "MaddnessConfig.split_candidates must be at least 1, got ",
               config_.split_candidates);
  LUTMUL_CHECK(config_.heldout_fraction >= 0 && config_.heldout_fraction < 1,
               "MaddnessConfig.heldout_fraction must be in [0, 1), got ", config_.heldout_fraction);
  check_leaves(config_.leaves, "MaddnessConfig");
  set_accumulation(config_.accumulation);
}

void Maddness::fit(const MatrixView& A_train, const MatrixView& B, const float* bias, const ProgressCallback& progress) {
  check_view(A_train, "A_train");
  check_view(B, "B");
  LUTMUL_CHECK(B.rows == A_train.cols, "B must have as many rows as A_train has columns: A_train is ", A_train.rows,
               " x ", A_train.cols, ", B is ", B.rows, " x ", B.cols);
  LUTMUL_CHECK(B.cols >= 1, "B must have at least one column, got ", B.rows, " x ", B.cols);
  check_finite(B, "B");
  fit_encoder(A_train, progress);
  set_weights(B, bias);
}

void Maddness::fit_encoder(const MatrixView& A_train, const ProgressCallback& progress) {
  check_view(A_train, "A_train");
  const int C = config_.ncodebooks;
  LUTMUL_CHECK(A_train.cols >= 1, "A_train has no columns (", A_train.rows, " x ", A_train.cols, ")");
  LUTMUL_CHECK(C <= A_train.cols, "ncodebooks (", C, ") is larger than the number of columns D (", A_train.cols, ")");
  const int leaves = config_.leaves;
  LUTMUL_CHECK(A_train.rows >= leaves, "A_train needs at least ", leaves, " rows for ", leaves, "-leaf trees, got ",
               A_train.rows);
  LUTMUL_CHECK(A_train.cols <= INT32_MAX && A_train.rows <= INT32_MAX, "A_train is too large (", A_train.rows, " x ",
               A_train.cols, ")");
  check_finite(A_train, "A_train");

  const int64_t n = A_train.rows, d = A_train.cols;
  std::vector<float> a(static_cast<size_t>(n * d));  // row-major copy: training reads rows
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) a[i * d + j] = A_train.at(i, j);

  const int threads = num_threads();
  detail::use_single_threaded_blas();
  const std::vector<int64_t> bounds = train::subspace_bounds(d, C);
  train::LearnedTrees trees =
      train::learn_trees(a.data(), n, d, bounds, tree_depth(), config_.split_candidates, threads, progress);
  std::vector<float> prototypes;
  double lambda = std::numeric_limits<double>::infinity();
  if (config_.prototypes == PrototypeMethod::ridge) {
    train::RidgeFit ridge = train::fit_ridge_prototypes(a.data(), n, d, trees, C, leaves, config_.ridge_lambdas,
                                                        config_.heldout_fraction, config_.seed, threads, progress);
    prototypes = std::move(ridge.prototypes);
    lambda = ridge.lambda;
  } else {
    prototypes = std::move(trees.bucket_means);
  }

  input_dim_ = d;
  subspace_begin_ = bounds;
  split_dims_ = std::move(trees.split_dims);
  thresholds_ = std::move(trees.thresholds);
  prototypes_ = std::move(prototypes);
  chosen_lambda_ = lambda;
  // New prototypes invalidate any tables.
  output_dim_ = 0;
  float_tables_.clear();
  quantized_tables_.clear();
  wide_row_tables_.clear();
  table_scales_.clear();
  table_offsets_.clear();
  bias_.clear();
  output_scales_.clear();
  output_offsets_.clear();
  averaged_scales_.clear();
  averaged_offsets_.clear();
}

void Maddness::set_weights(const MatrixView& B, const float* bias) {
  LUTMUL_CHECK(encoder_fitted(), "set_weights: the encoder is not fitted (call fit or fit_encoder first)");
  check_view(B, "B");
  LUTMUL_CHECK(B.rows == input_dim_, "B must have D = ", input_dim_, " rows, got ", B.rows, " x ", B.cols);
  LUTMUL_CHECK(B.cols >= 1 && B.cols <= INT32_MAX, "B must have between 1 and 2^31-1 columns, got ", B.cols);
  check_finite(B, "B");
  std::vector<float> new_bias(static_cast<size_t>(B.cols), 0.f);
  if (bias != nullptr) {
    for (int64_t j = 0; j < B.cols; ++j) {
      LUTMUL_CHECK(std::isfinite(bias[j]), "bias has a non-finite value (", bias[j], ") at index ", j);
      new_bias[j] = bias[j];
    }
  }
  detail::use_single_threaded_blas();
  detail::LookupTables t = detail::build_lookup_tables(prototypes_, config_.ncodebooks, config_.leaves, input_dim_, B);
  output_dim_ = B.cols;
  float_tables_ = std::move(t.float_tables);
  quantized_tables_ = std::move(t.quantized_tables);
  table_scales_ = std::move(t.scales);
  table_offsets_ = std::move(t.offsets);
  bias_ = std::move(new_bias);
  build_output_offsets();
  build_wide_row_tables();
}

void Maddness::build_wide_row_tables() {
  wide_row_tables_.clear();
  if (config_.leaves != kernels::kWideLeaves || config_.tables != TableMode::uint8 || output_dim_ == 0) return;
  wide_row_tables_.resize(kernels::wide_row_table_bytes(config_.ncodebooks, output_dim_));
  kernels::pack_wide_row_tables(quantized_tables_.data(), config_.ncodebooks, output_dim_, wide_row_tables_.data());
}

float Maddness::table_scale(int64_t m) const {
  LUTMUL_CHECK(m >= 0 && m < output_dim_, "table_scale: output ", m, " is out of range (M = ", output_dim_, ")");
  return table_scales_[m];
}

double Maddness::table_offset(int64_t m) const {
  LUTMUL_CHECK(m >= 0 && m < output_dim_, "table_offset: output ", m, " is out of range (M = ", output_dim_, ")");
  return table_offsets_[m];
}

void Maddness::build_output_offsets() {
  const int npairs = (config_.ncodebooks + 1) / 2;
  const auto m_count = static_cast<size_t>(output_dim_);
  output_scales_.resize(m_count);
  output_offsets_.resize(m_count);
  averaged_scales_.resize(m_count);
  averaged_offsets_.resize(m_count);
  for (int64_t m = 0; m < output_dim_; ++m) {
    // Averaging rounds each pair's mean up half the time: E[2·avg] = a + b + 1/2.
    const double averaging_bias = 0.5 * npairs / table_scales_[m];
    output_scales_[m] = 1.f / table_scales_[m];
    averaged_scales_[m] = 2.f / table_scales_[m];
    output_offsets_[m] = static_cast<float>(table_offsets_[m] + bias_[m]);
    averaged_offsets_[m] = static_cast<float>(table_offsets_[m] + bias_[m] - averaging_bias);
  }
}

void Maddness::set_accumulation(Accumulation accumulation) {
  LUTMUL_CHECK(accumulation == Accumulation::exact || config_.leaves == 16,
               "averaged accumulation needs 16-leaf trees; this model has ", config_.leaves, " leaves");
  config_.accumulation = accumulation;
}
void Maddness::set_table_mode(TableMode mode) { config_.tables = mode; }

void Maddness::check_input(const MatrixView& A, const char* what) const {
  LUTMUL_CHECK(encoder_fitted(), what, ": the model is not fitted");
  check_view(A, "A");
  LUTMUL_CHECK(A.cols == input_dim_, what, ": A must have D = ", input_dim_, " columns, got ", A.rows, " x ", A.cols);
}

EncodedRows Maddness::encode(const MatrixView& A) const {
  EncodedRows codes;
  encode(A, codes);
  return codes;
}


namespace {
// The encoder's scratch, one per thread, grown once: encode_rows may run once per 64-row
// block of a producer, too often for an allocation each.
float* encoder_scratch(int ncodebooks) {
  thread_local std::vector<float> scratch;
  const size_t need = kernels::encode_scratch_floats(ncodebooks);
  if (scratch.size() < need) scratch.resize(need);
  return scratch.data();
}
// Whether matmul asks the scan to write Y past the caches (kernels::ScanArgs::stream_y). After
// the encoder has streamed a row-major A of at least half the last-level cache, Y's earlier
// lines are gone from the caches and a plain store would first read each one; a Y larger than
// L2 leaves it for its reader in L3 or memory either way. A smaller A, a column-major one (only
// the split columns are read), a Y that fits L2 or an epilogue that reads Y keep plain stores
// (docs/experiments.md, "Zen 3, sixth session").
bool y_has_left_the_caches(const MatrixView& A, int64_t m, const Epilogue& epilogue) {
  if (A.layout != Layout::row_major || epilogue.accumulate) return false;
  const CpuFeatures& cpu = cpu_features();
  const double l2 = cpu.l2_bytes > 0 ? static_cast<double>(cpu.l2_bytes) : 1024.0 * 1024;
  const double last_level = cpu.last_level_bytes > 0 ? static_cast<double>(cpu.last_level_bytes) : 32.0 * 1024 * 1024;
  const double rows = static_cast<double>(A.rows);
  return 4.0 * rows * static_cast<double>(A.leading_dim()) >= last_level / 2 && 4.0 * rows * static_cast<double>(m) >= l2;
}
}  // namespace

bool Maddness::encode_blocks(const MatrixView& A, uint8_t* packed, int64_t block_begin, int64_t block_end,
                             bool rows_in_cache) const {
  kernels::EncodeArgs args;
  args.a = A.data;
  args.rows = A.rows;
  const int64_t ld = A.leading_dim();
  args.row_stride = A.layout == Layout::row_major ? ld : 1;
  args.col_stride = A.layout == Layout::row_major ? 1 : ld;
  args.ncodebooks = config_.ncodebooks;
  args.split_dims = split_dims_.data();
  args.thresholds = thresholds_.data();
  args.packed = packed;
  args.tail_scratch = encoder_scratch(config_.ncodebooks);
  args.rows_in_cache = rows_in_cache;
  // Gathers use 32-bit offsets within a block of 64 rows.
  const bool gather_ok = args.row_stride <= INT32_MAX / kBlockRows;
  const kernels::KernelTable& table = (gather_ok ? detail::active_kernels() : detail::reference_kernels()).maddness;
  const kernels::EncodeFn encode_kernel = config_.leaves == 16 ? table.encode : table.encode_wide;
  return encode_kernel(args, block_begin, block_end);
}

void Maddness::encode(const MatrixView& A, EncodedRows& codes) const {
  check_input(A, "encode");
  if (codes.rows() != A.rows || codes.ncodebooks() != config_.ncodebooks || codes.leaves() != config_.leaves)
    codes = EncodedRows(A.rows, config_.ncodebooks, config_.leaves);
  if (A.rows == 0) return;

  detail::active_kernels();  // here, where an unusable LUTMUL_ISA can throw: not on the threads
  const int64_t nblocks = codes.nblocks();
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), nblocks));
  bool saw_nan = false;
#pragma omp parallel num_threads(threads) reduction(|| : saw_nan)
  {
    const auto range = detail::partition(nblocks, omp_get_num_threads(), omp_get_thread_num());
    saw_nan = encode_blocks(A, codes.packed_data(), range.first, range.second, false);
  }
  LUTMUL_CHECK(!saw_nan, "A contains NaN in a column the encoder reads (", A.rows, " x ", A.cols, " input)");
}

void Maddness::encode_rows(const MatrixView& rows, int64_t first_row, EncodedRows& codes) const {
  check_input(rows, "encode_rows");
  LUTMUL_CHECK(codes.ncodebooks() == config_.ncodebooks && codes.leaves() == config_.leaves, "encode_rows: codes have ",
               codes.ncodebooks(), " codebooks of ", codes.leaves(), " leaves, the model has ", config_.ncodebooks,
               " of ", config_.leaves);
  LUTMUL_CHECK(first_row >= 0 && first_row % kBlockRows == 0, "encode_rows: first_row (", first_row,
               ") must be a multiple of ", kBlockRows, " and not negative");
  const int64_t end = first_row + rows.rows;
  LUTMUL_CHECK(end <= codes.rows(), "encode_rows: rows ", first_row, "..", end, " do not fit codes of ", codes.rows(),
               " rows");
  LUTMUL_CHECK(end % kBlockRows == 0 || end == codes.rows(), "encode_rows: rows ", first_row, "..", end,
               " must end on a multiple of ", kBlockRows, " or at the codes' last row (", codes.rows(), ")");
  if (rows.rows == 0) return;
  const size_t block_bytes = static_cast<size_t>(codes.byte_columns()) * kBlockRows;
  uint8_t* packed = codes.packed_data() + static_cast<size_t>(first_row / kBlockRows) * block_bytes;
  const int64_t nblocks = (rows.rows + kBlockRows - 1) / kBlockRows;
  LUTMUL_CHECK(!encode_blocks(rows, packed, 0, nblocks, true),
               "encode_rows: the rows contain NaN in a column the encoder reads (rows ", first_row, "..", end, ")");
}

void Maddness::matmul_produced(const MatrixView& A, const RowProducer& produce, float* Y, int64_t ldy,
                               const Epilogue& epilogue) const {
  check_input(A, "matmul_produced");
  LUTMUL_CHECK(has_weights(), "matmul_produced: no weights (call fit or set_weights first)");
  LUTMUL_CHECK(ldy >= output_dim_, "matmul_produced: ldy (", ldy, ") is smaller than M (", output_dim_, ")");
  LUTMUL_CHECK(static_cast<bool>(produce), "matmul_produced: the producer is empty");
  if (A.rows == 0) return;
  detail::active_kernels();  // here, where an unusable LUTMUL_ISA can throw: not on the threads
  EncodedRows codes(A.rows, config_.ncodebooks, config_.leaves);
  const int64_t nblocks = codes.nblocks();
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), nblocks));
  const size_t block_bytes = static_cast<size_t>(codes.byte_columns()) * kBlockRows;
  std::exception_ptr failure;
  std::atomic<bool> stop{false};
  bool saw_nan = false;
#pragma omp parallel num_threads(threads) reduction(|| : saw_nan)
  {
    const auto range = detail::partition(nblocks, omp_get_num_threads(), omp_get_thread_num());
    for (int64_t block = range.first; block < range.second && !stop.load(std::memory_order_relaxed); ++block) {
      const int64_t begin = block * kBlockRows, end = std::min(A.rows, begin + kBlockRows);
      try {
        produce(begin, end);
      } catch (...) {
#pragma omp critical(lutmul_matmul_produced)
        if (!failure) failure = std::current_exception();
        stop = true;
        break;
      }
      // The block, just written: encoded while its lines are still in cache.
      const MatrixView written = A.row_range(begin, end - begin);
      saw_nan = encode_blocks(written, codes.packed_data() + block * block_bytes, 0, 1, true) || saw_nan;
    }
  }
  if (failure) std::rethrow_exception(failure);
  LUTMUL_CHECK(!saw_nan, "matmul_produced: A contains NaN in a column the encoder reads (", A.rows, " x ", A.cols,
               " input)");
  scan_to(codes, Output::f32, Y, ldy, epilogue, "matmul_produced", y_has_left_the_caches(A, output_dim_, epilogue));
}

float Maddness::sum_scale(int64_t m) const {
  LUTMUL_CHECK(m >= 0 && m < output_dim_, "sum_scale: output ", m, " is out of range (M = ", output_dim_, ")");
  return config_.accumulation == Accumulation::averaged ? averaged_scales_[m] : output_scales_[m];
}

float Maddness::sum_offset(int64_t m) const {
  LUTMUL_CHECK(m >= 0 && m < output_dim_, "sum_offset: output ", m, " is out of range (M = ", output_dim_, ")");
  return config_.accumulation == Accumulation::averaged ? averaged_offsets_[m] : output_offsets_[m];
}

void Maddness::scan(const EncodedRows& codes, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  scan_to(codes, Output::f32, Y, ldy, epilogue, "scan");
}

void Maddness::scan_bf16(const EncodedRows& codes, uint16_t* Y, int64_t ldy, const Epilogue& epilogue) const {
  scan_to(codes, Output::bf16, Y, ldy, epilogue, "scan_bf16");
}

void Maddness::scan_sums(const EncodedRows& codes, uint16_t* S, int64_t lds) const {
  LUTMUL_CHECK(config_.tables == TableMode::uint8, "scan_sums: the model scans float tables (TableMode::float32), "
               "which have no integer sums");
  const bool averaged = config_.accumulation == Accumulation::averaged;
  const int most = averaged ? 512 : 256;
  LUTMUL_CHECK(config_.ncodebooks <= most, "scan_sums: ", config_.ncodebooks, " codebooks can sum past 16 bits (at most ",
               most, averaged ? " with averaged accumulation)" : ")");
  scan_to(codes, Output::sums, S, lds, {}, "scan_sums");
}

void Maddness::scan_to(const EncodedRows& codes, Output output, void* Y, int64_t ldy, const Epilogue& epilogue,
                       const char* what, bool stream_y) const {
  LUTMUL_CHECK(has_weights(), what, ": no weights (call fit or set_weights first)");
  LUTMUL_CHECK(codes.ncodebooks() == config_.ncodebooks && codes.leaves() == config_.leaves, what, ": codes have ",
               codes.ncodebooks(), " codebooks of ", codes.leaves(), " leaves, the model has ", config_.ncodebooks,
               " of ", config_.leaves);
  LUTMUL_CHECK(ldy >= output_dim_, what, ": ldy (", ldy, ") is smaller than M (", output_dim_, ")");
  LUTMUL_CHECK(Y != nullptr || codes.rows() == 0, what, ": Y is null");
  if (codes.rows() == 0) return;
  const int64_t nblocks = codes.nblocks(), m = output_dim_;
  const int threads = num_threads();
  float* y32 = output == Output::f32 ? static_cast<float*>(Y) : nullptr;
  uint16_t* y16 = output == Output::f32 ? nullptr : static_cast<uint16_t*>(Y);

  if (config_.tables == TableMode::float32) {  // scan_sums refused these
    const int C = config_.ncodebooks, K = config_.leaves;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < codes.rows(); ++r) {
      for (int64_t j = 0; j < m; ++j) {
        const float* table = &float_tables_[j * C * K];
        float sum = 0.f;
        for (int c = 0; c < C; ++c) sum += table[c * K + codes.code(r, c)];
        const float v = sum + bias_[j];
        const float out = epilogue.activation == Epilogue::Activation::gelu ? kernels::exact_gelu(v) : v;
        const int64_t at = r * ldy + j;
        if (y16 != nullptr) {
          y16[at] = kernels::float_to_bf16_bits(epilogue.accumulate ? kernels::bf16_bits_to_float(y16[at]) + out : out);
        } else {
          y32[at] = epilogue.accumulate ? y32[at] + out : out;
        }
      }
    }
    return;
  }

  kernels::ScanArgs args;
  args.packed = codes.packed_data();
  args.rows = codes.rows();
  args.npairs = codes.npairs();
  args.ncodebooks = codes.ncodebooks();
  args.tables = quantized_tables_.data();
  args.outputs = m;
  args.averaged = config_.accumulation == Accumulation::averaged;
  args.scales = args.averaged ? averaged_scales_.data() : output_scales_.data();
  args.offsets = args.averaged ? averaged_offsets_.data() : output_offsets_.data();
  args.output = output == Output::f32 ? kernels::ScanOutput::f32
                : output == Output::bf16 ? kernels::ScanOutput::bf16 : kernels::ScanOutput::sums;
  args.y = y32;
  args.y16 = y16;
  args.ldy = ldy;
  args.gelu = epilogue.activation == Epilogue::Activation::gelu;
  args.accumulate = epilogue.accumulate;
  args.stream_y = stream_y;
  args.wide_row_tables = wide_row_tables_.empty() ? nullptr : wide_row_tables_.data();
  const kernels::KernelTable& table = detail::active_kernels().maddness;
  const kernels::ScanFn scan_blocks = config_.leaves == 16 ? table.scan : table.scan_wide;

  // Rows first; with fewer blocks than threads, outputs are split too.
  const int row_parts = static_cast<int>(std::min<int64_t>(threads, nblocks));
  const int output_parts = std::max(1, std::min(threads / row_parts, static_cast<int>((m + 15) / 16)));
#pragma omp parallel num_threads(row_parts * output_parts)
  {
    const int id = omp_get_thread_num();
    const auto rows = detail::partition(nblocks, row_parts, id / output_parts);
    const auto outputs = detail::partition(m, output_parts, id % output_parts);
    scan_blocks(args, rows.first, rows.second, outputs.first, outputs.second);
  }
}

void Maddness::matmul(const MatrixView& A, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_input(A, "matmul");
  LUTMUL_CHECK(has_weights(), "matmul: no weights (call fit or set_weights first)");
  LUTMUL_CHECK(ldy >= output_dim_, "matmul: ldy (", ldy, ") is smaller than M (", output_dim_, ")");
  // Two passes, each threaded. Alternatives measured slower (docs/design.md): encode and
  // scan interleaved in chunks, and one parallel region in which each thread scans the
  // blocks it encoded (two threads: 213-228 µs against 160-171 µs for two passes).
  EncodedRows codes;
  encode(A, codes);
  scan_to(codes, Output::f32, Y, ldy, epilogue, "matmul", y_has_left_the_caches(A, output_dim_, epilogue));
}

void Maddness::matmul_bf16(const MatrixView& A, uint16_t* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_input(A, "matmul_bf16");
  LUTMUL_CHECK(has_weights(), "matmul_bf16: no weights (call fit or set_weights first)");
  LUTMUL_CHECK(ldy >= output_dim_, "matmul_bf16: ldy (", ldy, ") is smaller than M (", output_dim_, ")");
  LUTMUL_CHECK(Y != nullptr || A.rows == 0, "matmul_bf16: Y is null");
  EncodedRows codes;
  encode(A, codes);
  scan_bf16(codes, Y, ldy, epilogue);
}

Matrix Maddness::matmul(const MatrixView& A) const {
  check_input(A, "matmul");
  LUTMUL_CHECK(has_weights(), "matmul: no weights (call fit or set_weights first)");
  Matrix Y(A.rows, output_dim_);
  matmul(A, Y.data(), output_dim_);
  return Y;
}

}  // namespace lutmul
