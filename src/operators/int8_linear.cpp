#include "lutmul/operators/int8_linear.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/file_format.h"
#include "core/kernel_registry.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/int8_onednn.h"
#include "operators/operator_skeleton.h"

namespace lutmul {
namespace {

using kernels::kInt8KGroup;
using kernels::kInt8TileOutputs;

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// True when the int8 kernels of lutmul's ISA level have exact 32-bit dot products (VNNI):
// oneDNN runs only then, so LUTMUL_ISA=avx2 keeps every product on the AVX2 kernels.
bool vnni_level_active() {
  const std::string variant = detail::active_kernels().int8_variant;
  return variant.find("vnni") != std::string::npos;
}

// s[k] = c[k]^α / w[k]^(1−α) (header), kept within 2^±64. A channel that is zero in every
// calibration row or in W keeps s = 1. (Rounding s to a power of two, which would make the
// scaling exact, cost 0.0002 to 0.0004 of MiniLM's embedding cosine: docs/quality.md.)
std::vector<float> smoothing_factors(const MatrixView& W, const MatrixView& calibration, double alpha) {
  std::vector<float> factors(static_cast<size_t>(W.rows), 1.f);
  for (int64_t k = 0; k < W.rows; ++k) {
    double x_range = 0, w_range = 0;
    for (int64_t i = 0; i < calibration.rows; ++i) x_range = std::max(x_range, std::fabs(double{calibration.at(i, k)}));
    for (int64_t m = 0; m < W.cols; ++m) w_range = std::max(w_range, std::fabs(double{W.at(k, m)}));
    if (x_range == 0 || w_range == 0) continue;
    const double factor = std::pow(x_range, alpha) / std::pow(w_range, 1 - alpha);
    factors[static_cast<size_t>(k)] = static_cast<float>(std::clamp(factor, std::ldexp(1.0, -64), std::ldexp(1.0, 64)));
  }
  return factors;
}

}  // namespace

Int8Linear::Int8Linear(const MatrixView& W, const float* bias, Int8Config config, const MatrixView* calibration)
    : SizedLinearOperator("int8"), config_(config) {
  detail::check_weights(W, "Int8Linear");
  LUTMUL_CHECK(W.rows <= (int64_t{1} << 24), "Int8Linear: K = ", W.rows, " is too large for exact 32-bit sums");
  LUTMUL_CHECK(config_.smoothing >= 0 && config_.smoothing <= 1, "Int8Config.smoothing must be in [0, 1], got ",
               config_.smoothing);
  const bool is_static = config_.activations == ActivationScaling::static_per_tensor;
  if (is_static || config_.smoothing > 0) {
    LUTMUL_CHECK(calibration != nullptr, "Int8Linear: ", is_static ? "static activation scaling" : "smoothing",
                 " needs calibration rows");
    detail::check_calibration(*calibration, W.rows, "Int8Linear");
  }
  k_ = W.rows;
  m_ = W.cols;
  k_padded_ = round_up(k_, kInt8KGroup);
  m_padded_ = round_up(m_, kInt8TileOutputs);
  const int64_t tiles = m_padded_ / kInt8TileOutputs;

  // Smoothing first: it changes the weights that are quantized and the activations that
  // static scaling calibrates on.
  std::vector<float> factors(static_cast<size_t>(k_), 1.f);
  if (config_.smoothing > 0) {
    factors = smoothing_factors(W, *calibration, config_.smoothing);
    column_inverse_.resize(static_cast<size_t>(k_));
    for (int64_t k = 0; k < k_; ++k) column_inverse_[static_cast<size_t>(k)] = 1.f / factors[static_cast<size_t>(k)];
  }

  weight_scales_.assign(static_cast<size_t>(m_padded_), 0.f);
  column_sums_.assign(static_cast<size_t>(m_padded_), 0);
  packed_.assign(static_cast<size_t>(k_padded_ * m_padded_), 0);
  for (int64_t m = 0; m < m_; ++m) {
    float largest = 0.f;
    for (int64_t k = 0; k < k_; ++k) largest = std::max(largest, std::fabs(W.at(k, m) * factors[static_cast<size_t>(k)]));
    const float scale = largest > 0.f ? largest / 127.f : 1.f;
    weight_scales_[m] = scale;
    for (int64_t k = 0; k < k_; ++k) {
      const float q = std::min(127.f, std::max(-127.f, std::nearbyint(W.at(k, m) * factors[static_cast<size_t>(k)] / scale)));
      const int8_t w = static_cast<int8_t>(q);
      packed_[static_cast<size_t>(((k / kInt8KGroup) * tiles + m / kInt8TileOutputs) * 64 +
                                  (m % kInt8TileOutputs) * kInt8KGroup + k % kInt8KGroup)] = w;
      column_sums_[m] += w;
    }
  }
  bias_ = detail::copy_bias(bias, m_, "Int8Linear");
  bias_.resize(static_cast<size_t>(m_padded_), 0.f);  // the kernels read whole tiles

  if (is_static) {
    LUTMUL_CHECK(config_.calibration_percentile > 0 && config_.calibration_percentile <= 100,
                 "Int8Config.calibration_percentile must be in (0, 100], got ", config_.calibration_percentile);
    std::vector<float> magnitudes;
    magnitudes.reserve(static_cast<size_t>(calibration->rows * k_));
    for (int64_t i = 0; i < calibration->rows; ++i)
      for (int64_t k = 0; k < k_; ++k)
        magnitudes.push_back(std::fabs(column_inverse_.empty() ? calibration->at(i, k)
                                                               : calibration->at(i, k) * column_inverse_[static_cast<size_t>(k)]));
    const size_t index = std::min(magnitudes.size() - 1, static_cast<size_t>(std::ceil(
                                                             config_.calibration_percentile / 100.0 * static_cast<double>(magnitudes.size()))) -
                                                             (config_.calibration_percentile >= 100.0 ? 1 : 0));
    std::nth_element(magnitudes.begin(), magnitudes.begin() + static_cast<long>(index), magnitudes.end());
    const float level = magnitudes[index];
    static_scale_ = level > 0.f ? level / 127.f : 1.f;
  }
  prepare_backend();
}

float Int8Linear::smoothing_factor(int64_t k) const {
  LUTMUL_CHECK(k >= 0 && k < k_, "smoothing_factor: k = ", k, " is outside [0, ", k_, ")");
  return column_inverse_.empty() ? 1.f : 1.f / column_inverse_[static_cast<size_t>(k)];
}

kernels::Int8QuantizeArgs Int8Linear::quantize_args() const {
  kernels::Int8QuantizeArgs q;
  q.k = k_;
  q.k_padded = k_padded_;
  q.dynamic = config_.activations == ActivationScaling::dynamic_per_row;
  q.static_scale = static_scale_;
  q.static_inverse = 1.f / static_scale_;
  q.column_inverse = column_inverse_.empty() ? nullptr : column_inverse_.data();
  return q;
}

void Int8Linear::prepare_backend() {
  onednn_.reset();
  if (config_.backend == Int8Backend::own_kernels) {
    own_only_reason_ = "Int8Backend::own_kernels was asked for";
    return;
  }
  if (!vnni_level_active()) {
    own_only_reason_ = std::string("lutmul's int8 kernels at this ISA level are '") + detail::active_kernels().int8_variant +
                       "', without VNNI";
  } else {
    std::vector<int8_t> plain(static_cast<size_t>(k_ * m_));
    for (int64_t k = 0; k < k_; ++k)
      for (int64_t m = 0; m < m_; ++m) plain[static_cast<size_t>(k * m_ + m)] = quantized_weight(k, m);
    onednn_ = detail::Int8OnednnProduct::create(k_, k_padded_, m_, plain, own_only_reason_);
  }
  LUTMUL_CHECK(onednn_ != nullptr || config_.backend != Int8Backend::onednn,
               "Int8Linear: Int8Backend::onednn cannot run here: ", own_only_reason_);
  if (onednn_ && config_.backend == Int8Backend::automatic && !onednn_->uses_amx()) {
    // Without AMX oneDNN's VNNI product saves too little to pay for a second copy of the
    // weights in memory (docs/experiments.md, "int8 through oneDNN").
    own_only_reason_ = "oneDNN runs " + onednn_->implementation() + " here, no faster than the own kernels";
    onednn_.reset();
  }
}

std::string Int8Linear::path() const {
  const std::string own = std::string("the ") + detail::active_kernels().int8_variant + " kernels";
  if (!onednn_) return own + " (" + own_only_reason_ + ")";
  std::string blocks;
  for (const int64_t rows : detail::Int8OnednnProduct::kBlockRows)
    blocks += (blocks.empty() ? "" : " and ") + std::to_string(rows);
  return "oneDNN " + onednn_->implementation() + " for blocks of " + blocks + " rows, " + own + " for the rest";
}

int8_t Int8Linear::quantized_weight(int64_t k, int64_t m) const {
  LUTMUL_CHECK(k >= 0 && k < k_ && m >= 0 && m < m_, "quantized_weight: (", k, ", ", m, ") is outside ", k_, " x ", m_);
  const int64_t tiles = m_padded_ / kInt8TileOutputs;
  return packed_[static_cast<size_t>(((k / kInt8KGroup) * tiles + m / kInt8TileOutputs) * 64 +
                                     (m % kInt8TileOutputs) * kInt8KGroup + k % kInt8KGroup)];
}

int64_t Int8Linear::bytes() const {
  return static_cast<int64_t>(packed_.size() + (weight_scales_.size() + bias_.size() + column_inverse_.size()) * sizeof(float) +
                              column_sums_.size() * sizeof(int32_t));
}

namespace {

// Rows of X quantized a chunk at a time (X read once), then multiplied for all outputs.
void run(const kernels::Int8KernelTable& table, const MatrixView& X, float* Y, int64_t ldy,
         const kernels::Int8QuantizeArgs& quantize_template, const kernels::Int8GemmArgs& gemm_template) {
  const int64_t k_padded = quantize_template.k_padded;
  constexpr int64_t kChunkRows = 64;
  const int64_t chunks = (X.rows + kChunkRows - 1) / kChunkRows;
  const int64_t tiles = gemm_template.tiles;
  // Rows across threads; a few rows (a GEMV) split the output tiles instead.
  const int threads = num_threads();
  const bool split_outputs = chunks < threads;
  bool finite = true;
#pragma omp parallel num_threads(threads) reduction(&& : finite)
  {
    std::vector<uint8_t> quantized(static_cast<size_t>(kChunkRows * k_padded));
    std::vector<float> scales(kChunkRows);
    std::vector<float> row_major_copy;
    const int id = omp_get_thread_num(), count = omp_get_num_threads();
    for (int64_t chunk = split_outputs ? 0 : id; chunk < chunks; chunk += split_outputs ? 1 : count) {
      const int64_t r0 = chunk * kChunkRows, rows = std::min(kChunkRows, X.rows - r0);
      int64_t ldx = 0;
      const float* x = detail::contiguous_rows(X, r0, rows, row_major_copy, ldx);
      kernels::Int8QuantizeArgs q = quantize_template;
      q.x = x;
      q.ldx = ldx;
      q.out = quantized.data();
      q.scales = scales.data();
      finite = table.quantize(q, 0, rows) && finite;
      kernels::Int8GemmArgs g = gemm_template;
      g.x = quantized.data();
      g.row_scales = scales.data();
      g.y = Y + r0 * ldy;
      g.ldy = ldy;
      int64_t t0 = 0, t1 = tiles;
      if (split_outputs) {
        t0 = tiles * id / count;
        t1 = tiles * (id + 1) / count;
      }
      table.gemm(g, 0, rows, t0, t1);
    }
  }
  LUTMUL_CHECK(finite, "int8 forward: X has a non-finite value (", X.rows, " x ", X.cols, " input)");
}

}  // namespace

void Int8Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  const kernels::Int8KernelTable& table = detail::active_kernels().int8;
  const int64_t done = onednn_ && vnni_level_active() ? forward_onednn(table, X, Y, ldy) : 0;
  if (done < X.rows) forward_with(table, X.row_range(done, X.rows - done), Y + done * ldy, ldy);
}

// Whole blocks of rows, each taken start to end by one thread (quantise, oneDNN's sums on that
// thread, epilogue), so that a block's sums stay in its core's L2. 2048 × 384 × 1536 on
// Sapphire Rapids: 2.6–2.7 ms against 3.4–3.5 ms with 256-row blocks that oneDNN split among
// the threads, 1.4 against 2.2–2.3 ms at two threads.
int64_t Int8Linear::forward_onednn(const kernels::Int8KernelTable& table, const MatrixView& X, float* Y,
                                   int64_t ldy) const {
  const int threads = num_threads();
  int64_t covered = 0;
  const auto blocks = detail::fixed_row_blocks(X.rows, threads, detail::Int8OnednnProduct::kBlockRows, covered);
  if (blocks.empty()) return 0;
  const int parts = static_cast<int>(std::min<int64_t>(threads, static_cast<int64_t>(blocks.size())));
  const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
    // Kept between calls: a block's buffers are larger than malloc's mmap threshold.
    thread_local std::vector<uint8_t> quantized;
    thread_local std::vector<float> scales, copy;
    thread_local std::vector<int32_t> sums;
    const int64_t most = detail::Int8OnednnProduct::kBlockRows[0];
    quantized.resize(static_cast<size_t>(most * k_padded_));
    scales.resize(static_cast<size_t>(most));
    sums.resize(static_cast<size_t>(most * m_));
    bool ok = true;
    for (size_t b = static_cast<size_t>(thread); b < blocks.size(); b += static_cast<size_t>(count)) {
      const auto [first, block] = blocks[b];
      kernels::Int8QuantizeArgs q = quantize_args();
      q.x = detail::contiguous_rows(X, first, block, copy, q.ldx);
      q.out = quantized.data();
      q.scales = scales.data();
      ok = table.quantize(q, 0, block) && ok;
      onednn_->run(quantized.data(), block, sums.data(), 1);
      // The epilogue of every int8 kernel: the sums less the u8 offset, two roundings.
      kernels::Int8EpilogueArgs e;
      e.sums = sums.data();
      e.m = m_;
      e.column_sums = column_sums_.data();
      e.row_scales = scales.data();
      e.weight_scales = weight_scales_.data();
      e.bias = bias_.data();
      e.y = Y + first * ldy;
      e.ldy = ldy;
      table.epilogue(e, 0, block);
    }
    return ok;
  });
  LUTMUL_CHECK(finite, "int8 forward: X has a non-finite value (", X.rows, " x ", X.cols, " input)");
  return covered;
}

void Int8Linear::forward_reference(const MatrixView& X, float* Y, int64_t ldy) const {
  forward_with(detail::reference_kernels().int8, X, Y, ldy);
}

void Int8Linear::forward_with(const kernels::Int8KernelTable& table, const MatrixView& X, float* Y,
                              int64_t ldy) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  kernels::Int8GemmArgs g;
  g.k_padded = k_padded_;
  g.m = m_;
  g.tiles = m_padded_ / kInt8TileOutputs;
  g.packed = packed_.data();
  g.column_sums = column_sums_.data();
  g.weight_scales = weight_scales_.data();
  g.bias = bias_.data();
  run(table, X, Y, ldy, quantize_args(), g);
}

// A smoothed operator appends its smoothing as α and the K factors 1/s[k]; such files are
// operator file version 3 (file_version()), so that older readers refuse them by version.
std::vector<uint8_t> Int8Linear::payload() const {
  std::vector<uint8_t> bytes = detail::pack(static_cast<int32_t>(config_.activations), config_.calibration_percentile,
                                            k_, m_, static_scale_, packed_, weight_scales_, bias_);
  if (!column_inverse_.empty()) {
    const std::vector<uint8_t> smoothing = detail::pack(config_.smoothing, column_inverse_);
    bytes.insert(bytes.end(), smoothing.begin(), smoothing.end());
  }
  return bytes;
}

uint32_t Int8Linear::file_version() const { return column_inverse_.empty() ? LinearOperator::file_version() : 3; }

std::unique_ptr<Int8Linear> Int8Linear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  std::unique_ptr<Int8Linear> op(new Int8Linear());
  const int32_t activations = r.get<int32_t>("activation scaling");
  LUTMUL_CHECK(activations == 0 || activations == 1, "operator file is corrupt: int8 activation scaling ", activations);
  op->config_.activations = static_cast<ActivationScaling>(activations);
  op->config_.calibration_percentile = r.get<double>("calibration percentile");
  op->k_ = r.get<int64_t>("K");
  op->m_ = r.get<int64_t>("M");
  LUTMUL_CHECK(op->k_ >= 1 && op->m_ >= 1 && op->k_ <= (int64_t{1} << 24) && op->m_ <= INT32_MAX,
               "operator file is corrupt: int8 K = ", op->k_, ", M = ", op->m_);
  op->k_padded_ = round_up(op->k_, kInt8KGroup);
  op->m_padded_ = round_up(op->m_, kInt8TileOutputs);
  op->static_scale_ = r.get<float>("static activation scale");
  const auto kp = static_cast<uint64_t>(op->k_padded_), mp = static_cast<uint64_t>(op->m_padded_);
  op->packed_ = r.get_array<int8_t>("packed weights", kp * mp);
  op->weight_scales_ = r.get_array<float>("weight scales", mp);
  op->bias_ = r.get_array<float>("bias", mp);
  if (!r.done()) {
    op->config_.smoothing = r.get<double>("smoothing");
    op->column_inverse_ = r.get_array<float>("smoothing factors", static_cast<uint64_t>(op->k_));
    LUTMUL_CHECK(op->config_.smoothing > 0 && op->config_.smoothing <= 1, "operator file is corrupt: int8 smoothing ",
                 op->config_.smoothing);
    for (const float inverse : op->column_inverse_)
      LUTMUL_CHECK(std::isfinite(inverse) && inverse > 0, "operator file is corrupt: int8 smoothing factor ", inverse);
  }
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the int8 weights");
  detail::check_all_finite(op->weight_scales_, "weight scales", "operator file");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  LUTMUL_CHECK(std::isfinite(op->static_scale_) && op->static_scale_ >= 0,
               "operator file is corrupt: static activation scale ", op->static_scale_);
  if (op->config_.activations == ActivationScaling::static_per_tensor)
    LUTMUL_CHECK(op->static_scale_ > 0, "operator file is corrupt: static scaling without a scale");
  // Weights in [-127, 127] and padding zero, as the constructor packs them; the column sums
  // the kernels need are rebuilt rather than trusted.
  const int64_t tiles = op->m_padded_ / kInt8TileOutputs;
  op->column_sums_.assign(mp, 0);
  for (int64_t k = 0; k < op->k_padded_; ++k)
    for (int64_t m = 0; m < op->m_padded_; ++m) {
      const int8_t w = op->packed_[static_cast<size_t>(((k / kInt8KGroup) * tiles + m / kInt8TileOutputs) * 64 +
                                                       (m % kInt8TileOutputs) * kInt8KGroup + k % kInt8KGroup)];
      LUTMUL_CHECK(w >= -127 && (w == 0 || (k < op->k_ && m < op->m_)),
                   "operator file is corrupt: int8 weight ", int{w}, " at (", k, ", ", m, ")");
      op->column_sums_[m] += w;
    }
  op->prepare_backend();
  return op;
}

}  // namespace lutmul
