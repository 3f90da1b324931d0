// MaddnessGpu: a fitted lutmul::Maddness uploaded once, encode and scan on the GPU.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "src/cuda/cuda_check.h"

namespace lutmul::cuda {

using detail::native;
using detail::StreamScratch;

struct MaddnessGpu::Impl {
  int64_t input_dim = 0, output_dim = 0;
  int ncodebooks = 0, npairs = 0;
  Accumulation accumulation = Accumulation::exact;
  int64_t groups = 0;
  int64_t device_bytes = 0;
  DeviceBuffer<int32_t> split_dims;
  DeviceBuffer<float> thresholds;
  DeviceBuffer<uint32_t> tables;
  DeviceBuffer<float> scales, offsets;
  int nchunks = 0;
  DeviceBuffer<int32_t> chunk_pair_begin, chunk_column_begin, columns, column_slot;
};

namespace {

// Codebook pairs grouped greedily into chunks whose distinct split columns fit the encoder's
// shared tile (a pair reads at most 8 columns, so every chunk holds at least one pair).
struct EncodePlan {
  std::vector<int32_t> pair_begin{0}, column_begin{0}, columns, slot;
};

EncodePlan plan_row_major_encode(const Maddness& model) {
  const int C = model.ncodebooks(), npairs = (C + 1) / 2;
  EncodePlan plan;
  plan.slot.assign(static_cast<size_t>(C) * kernels::kTreeDepth, 0);
  auto pair_columns = [&](int pair, std::set<int32_t>& into) {
    for (int c = 2 * pair; c < std::min(C, 2 * pair + 2); ++c)
      for (int t = 0; t < kernels::kTreeDepth; ++t) into.insert(model.split_dim(c, t));
  };
  auto close_chunk = [&](int pair_end, const std::set<int32_t>& chunk_columns) {
    const int32_t first = plan.column_begin.back();
    const std::vector<int32_t> sorted(chunk_columns.begin(), chunk_columns.end());
    for (int c = 2 * plan.pair_begin.back(); c < std::min(C, 2 * pair_end); ++c)
      for (int t = 0; t < kernels::kTreeDepth; ++t)
        plan.slot[static_cast<size_t>(c) * kernels::kTreeDepth + t] = static_cast<int32_t>(
            std::lower_bound(sorted.begin(), sorted.end(), model.split_dim(c, t)) - sorted.begin());
    plan.columns.insert(plan.columns.end(), sorted.begin(), sorted.end());
    plan.pair_begin.push_back(pair_end);
    plan.column_begin.push_back(first + static_cast<int32_t>(sorted.size()));
  };
  std::set<int32_t> current;
  for (int pair = 0; pair < npairs; ++pair) {
    std::set<int32_t> with = current;
    pair_columns(pair, with);
    if (static_cast<int>(with.size()) > kernels::kEncodeTileColumns) {
      close_chunk(pair, current);
      current.clear();
      pair_columns(pair, current);
    } else {
      current.swap(with);
    }
  }
  close_chunk(npairs, current);
  return plan;
}

}  // namespace

MaddnessGpu::MaddnessGpu(const Maddness& model)
    : impl_((detail::require_device("MaddnessGpu"), std::make_unique<Impl>())) {
  LUTMUL_CHECK(model.encoder_fitted() && model.has_weights(), "MaddnessGpu: the model must be fitted and have weights");
  LUTMUL_CHECK(model.config().tables == TableMode::uint8,
               "MaddnessGpu: the model uses float tables (TableMode::float32), a CPU measurement mode; the GPU scan "
               "needs the 8-bit tables");
  LUTMUL_CHECK(model.leaves() == 16, "MaddnessGpu: the GPU kernels run 16-leaf trees; this model has ", model.leaves(),
               " leaves (64-leaf trees run on the CPU)");
  Impl& s = *impl_;
  s.input_dim = model.input_dim();
  s.output_dim = model.output_dim();
  s.ncodebooks = model.ncodebooks();
  s.npairs = (s.ncodebooks + 1) / 2;
  s.accumulation = model.config().accumulation;
  s.groups = kernels::scan_table_groups(s.output_dim);
  const int C = s.ncodebooks;
  const int64_t M = s.output_dim;

  std::vector<int32_t> split_dims(static_cast<size_t>(C) * kernels::kTreeDepth);
  std::vector<float> thresholds(static_cast<size_t>(C) * kernels::kTreeDepth * kernels::kThresholdStride, 0.f);
  for (int c = 0; c < C; ++c)
    for (int t = 0; t < kernels::kTreeDepth; ++t) {
      split_dims[static_cast<size_t>(c) * kernels::kTreeDepth + t] = model.split_dim(c, t);
      for (int node = 0; node < (1 << t); ++node)
        thresholds[(static_cast<size_t>(c) * kernels::kTreeDepth + t) * kernels::kThresholdStride + node] =
            model.threshold(c, t, node);
    }

  // Tables interleaved 4 outputs per word (kernels/cuda/kernels.h, ScanParams).
  const CacheLineBytes& q = model.quantized_tables();
  const int codebooks = 2 * s.npairs;
  std::vector<uint32_t> tables(static_cast<size_t>(codebooks) * static_cast<size_t>(s.groups) * 16, 0u);
  for (int64_t m = 0; m < M; ++m)
    for (int c = 0; c < codebooks; ++c)
      for (int k = 0; k < 16; ++k) {
        const uint32_t entry = q[static_cast<size_t>((m * s.npairs + c / 2) * 32 + (c % 2) * 16 + k)];
        tables[(static_cast<size_t>(c) * static_cast<size_t>(s.groups) + static_cast<size_t>(m / 4)) * 16 + k] |=
            entry << (8 * (m % 4));
      }

  // Scales and offsets computed exactly as Maddness::build_output_offsets.
  const bool averaged = s.accumulation == Accumulation::averaged;
  std::vector<float> scales(static_cast<size_t>(M)), offsets(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const double averaging_bias = 0.5 * s.npairs / model.table_scale(m);
    scales[m] = (averaged ? 2.f : 1.f) / model.table_scale(m);
    offsets[m] = averaged ? static_cast<float>(model.table_offset(m) + model.bias()[m] - averaging_bias)
                          : static_cast<float>(model.table_offset(m) + model.bias()[m]);
  }

  const EncodePlan plan = plan_row_major_encode(model);
  s.nchunks = static_cast<int>(plan.pair_begin.size()) - 1;

  s.split_dims = DeviceBuffer<int32_t>(split_dims);
  s.thresholds = DeviceBuffer<float>(thresholds);
  s.tables = DeviceBuffer<uint32_t>(tables);
  s.scales = DeviceBuffer<float>(scales);
  s.offsets = DeviceBuffer<float>(offsets);
  s.chunk_pair_begin = DeviceBuffer<int32_t>(plan.pair_begin);
  s.chunk_column_begin = DeviceBuffer<int32_t>(plan.column_begin);
  s.columns = DeviceBuffer<int32_t>(plan.columns);
  s.column_slot = DeviceBuffer<int32_t>(plan.slot);
  s.device_bytes = static_cast<int64_t>(s.tables.bytes() + s.split_dims.bytes() + s.thresholds.bytes() + s.scales.bytes() +
                                      s.offsets.bytes());
}

MaddnessGpu::~MaddnessGpu() = default;
MaddnessGpu::MaddnessGpu(MaddnessGpu&&) noexcept = default;
MaddnessGpu& MaddnessGpu::operator=(MaddnessGpu&&) noexcept = default;

int64_t MaddnessGpu::input_dim() const { return impl_->input_dim; }
int64_t MaddnessGpu::output_dim() const { return impl_->output_dim; }
int MaddnessGpu::ncodebooks() const { return impl_->ncodebooks; }
Accumulation MaddnessGpu::accumulation() const { return impl_->accumulation; }
int64_t MaddnessGpu::bytes() const { return impl_->device_bytes; }
double MaddnessGpu::multiply_adds_per_row() const {
  return static_cast<double>(impl_->ncodebooks) * static_cast<double>(impl_->output_dim);
}

size_t MaddnessGpu::code_bytes(int64_t rows) const {
  LUTMUL_CHECK(rows >= 0, "MaddnessGpu::code_bytes: rows must be ≥ 0, got ", rows);
  return static_cast<size_t>((rows + kernels::kBlockRows - 1) / kernels::kBlockRows) *
         static_cast<size_t>(impl_->npairs) * kernels::kBlockRows;
}

void MaddnessGpu::encode(const MatrixView& A, uint8_t* codes, StreamView stream, bool check_nan) const {
  const Impl& s = *impl_;
  check_view(A, "A");
  LUTMUL_CHECK(A.cols == s.input_dim, "MaddnessGpu::encode: A must have D = ", s.input_dim, " columns, got ", A.rows,
               " x ", A.cols);
  if (A.rows == 0) return;
  LUTMUL_CHECK(codes != nullptr, "MaddnessGpu::encode: codes is null");
  LUTMUL_CHECK(reinterpret_cast<uintptr_t>(codes) % 2 == 0, "MaddnessGpu::encode: codes must be 2-byte aligned");
  const cudaStream_t native_stream = native(stream);
  StreamScratch flag(check_nan ? sizeof(int) : 0, native_stream);

  kernels::EncodeParams p;
  p.a = A.data;
  p.rows = A.rows;
  const bool row_major = A.layout == Layout::row_major;
  p.row_stride = row_major ? A.leading_dim() : 1;
  p.col_stride = row_major ? 1 : A.leading_dim();
  p.ncodebooks = s.ncodebooks;
  p.npairs = s.npairs;
  p.split_dims = s.split_dims.data();
  p.thresholds = s.thresholds.data();
  p.packed = codes;
  p.nchunks = s.nchunks;
  p.chunk_pair_begin = s.chunk_pair_begin.data();
  p.chunk_column_begin = s.chunk_column_begin.data();
  p.columns = s.columns.data();
  p.column_slot = s.column_slot.data();
  if (check_nan) {
    p.nan_flag = static_cast<int*>(flag.get());
    LUTMUL_CUDA_CHECK(cudaMemsetAsync(p.nan_flag, 0, sizeof(int), native_stream));
  }
  LUTMUL_CUDA_CHECK(row_major ? kernels::launch_encode_row_major(p, native_stream)
                              : kernels::launch_encode_col_major(p, native_stream));
  if (check_nan)
    LUTMUL_CHECK(detail::read_flag(p.nan_flag, native_stream) == 0,
                 "MaddnessGpu: A contains NaN in a column the encoder reads (", A.rows, " x ", A.cols, " input)");
}

void MaddnessGpu::scan(const uint8_t* codes, int64_t rows, float* Y, int64_t ldy, StreamView stream) const {
  const Impl& s = *impl_;
  LUTMUL_CHECK(rows >= 0, "MaddnessGpu::scan: rows must be ≥ 0, got ", rows);
  LUTMUL_CHECK(ldy >= s.output_dim, "MaddnessGpu::scan: ldy (", ldy, ") is smaller than M (", s.output_dim, ")");
  if (rows == 0) return;
  LUTMUL_CHECK(codes != nullptr && Y != nullptr, "MaddnessGpu::scan: codes or Y is null");
  LUTMUL_CHECK(reinterpret_cast<uintptr_t>(codes) % 2 == 0, "MaddnessGpu::scan: codes must be 2-byte aligned");
  kernels::ScanParams p;
  p.packed = codes;
  p.rows = rows;
  p.npairs = s.npairs;
  p.tables = s.tables.data();
  p.groups = s.groups;
  p.outputs = s.output_dim;
  p.scales = s.scales.data();
  p.offsets = s.offsets.data();
  p.averaged = s.accumulation == Accumulation::averaged;
  p.y = Y;
  p.ldy = ldy;
  LUTMUL_CUDA_CHECK(kernels::launch_scan(p, native(stream)));
}

void MaddnessGpu::matmul(const MatrixView& A, float* Y, int64_t ldy, StreamView stream, bool check_nan) const {
  check_view(A, "A");
  LUTMUL_CHECK(A.cols == impl_->input_dim, "MaddnessGpu::matmul: A must have D = ", impl_->input_dim, " columns, got ",
               A.rows, " x ", A.cols);
  LUTMUL_CHECK(ldy >= impl_->output_dim, "MaddnessGpu::matmul: ldy (", ldy, ") is smaller than M (", impl_->output_dim,
               ")");
  if (A.rows == 0) return;
  LUTMUL_CHECK(Y != nullptr, "MaddnessGpu::matmul: Y is null");
  StreamScratch codes(code_bytes(A.rows), native(stream));
  encode(A, static_cast<uint8_t*>(codes.get()), stream, check_nan);
  scan(static_cast<const uint8_t*>(codes.get()), A.rows, Y, ldy, stream);
}

void MaddnessGpu::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  detail::forward_through_device(X, impl_->output_dim, Y, ldy, [this](auto&&... args) { matmul(args...); });
}

}  // namespace lutmul::cuda
