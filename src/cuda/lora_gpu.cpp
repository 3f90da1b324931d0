// LoraGpu: many adapters on the device, applied to mixed batches by grouped kernels
// (kernels/cuda/lora.cu), a row-by-row reference, and a one-adapter-at-a-time baseline.
#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "src/cuda/cublas_handle.h"
#include "src/cuda/cuda_check.h"

namespace lutmul::cuda {

using detail::native;
using detail::StreamScratch;

struct LoraGpu::Impl {
  int64_t k = 0, m = 0;
  int nadapters = 0, max_rank = 0;
  std::vector<int32_t> host_ranks;
  std::vector<float> host_scales;
  std::vector<int64_t> host_a_offsets, host_b_offsets;
  DeviceBuffer<float> a, b, scales;
  DeviceBuffer<int64_t> a_offsets, b_offsets;
  DeviceBuffer<int32_t> ranks;
  detail::CublasHandle cublas;

  kernels::LoraParams params(const MatrixView& X, const int32_t* ids, float* Y, int64_t ldy) const {
    kernels::LoraParams p;
    p.x = X.data;
    p.rows = X.rows;
    const bool row_major = X.layout == Layout::row_major;
    p.x_row_stride = row_major ? X.leading_dim() : 1;
    p.x_col_stride = row_major ? 1 : X.leading_dim();
    p.input_dim = k;
    p.output_dim = m;
    p.ids = ids;
    p.nadapters = nadapters;
    p.a = a.data();
    p.a_offsets = a_offsets.data();
    p.b = b.data();
    p.b_offsets = b_offsets.data();
    p.ranks = ranks.data();
    p.scales = scales.data();
    p.max_rank = max_rank;
    p.y = Y;
    p.ldy = ldy;
    return p;
  }

  void check_call(const MatrixView& X, const void* ids, const float* Y, int64_t ldy, const char* who) const {
    check_view(X, "X");
    LUTMUL_CHECK(X.cols == k, who, ": X must have K = ", k, " columns, got ", X.rows, " x ", X.cols);
    LUTMUL_CHECK(ldy >= m, who, ": ldy (", ldy, ") is smaller than M (", m, ")");
    LUTMUL_CHECK(X.rows <= INT_MAX, who, ": at most 2^31 - 1 rows per call, got ", X.rows);
    LUTMUL_CHECK(X.rows == 0 || (ids != nullptr && Y != nullptr), who, ": adapter ids or Y is null");
  }
};

LoraGpu::LoraGpu(int64_t input_dim, int64_t output_dim, const std::vector<LoraAdapterView>& adapters)
    : impl_((detail::require_device("LoraGpu"), std::make_unique<Impl>())) {
  // (The device check runs before Impl exists: without a device no library handle is made.)
  // M: the expand kernel's grid has ceil(M / 128) ≤ 65535 rows of blocks.
  LUTMUL_CHECK(input_dim >= 1 && output_dim >= 1 && input_dim <= INT_MAX && output_dim <= int64_t{65535} * 128,
               "LoraGpu: need 1 <= K < 2^31 and 1 <= M <= 8388480, got K = ", input_dim, ", M = ", output_dim);
  LUTMUL_CHECK(!adapters.empty() && adapters.size() <= static_cast<size_t>(kernels::kLoraMaxAdapters),
               "LoraGpu: between 1 and ", kernels::kLoraMaxAdapters, " adapters, got ", adapters.size());
  static_assert(kMaxRank == kernels::kLoraMaxRank, "public and kernel rank limits agree");
  Impl& s = *impl_;
  s.k = input_dim;
  s.m = output_dim;
  s.nadapters = static_cast<int>(adapters.size());
  std::vector<float> a, b;
  for (size_t j = 0; j < adapters.size(); ++j) {
    const LoraAdapterView& adapter = adapters[j];
    check_view(adapter.A, "adapter A");
    check_view(adapter.B, "adapter B");
    const int64_t r = adapter.A.cols;
    LUTMUL_CHECK(adapter.A.rows == input_dim && r >= 1 && r <= kMaxRank, "LoraGpu: adapter ", j, ": A must be K x r with K = ",
                 input_dim, " and 1 <= r <= ", kMaxRank, ", got ", adapter.A.rows, " x ", adapter.A.cols);
    LUTMUL_CHECK(adapter.B.rows == r && adapter.B.cols == output_dim, "LoraGpu: adapter ", j, ": B must be r x M = ", r,
                 " x ", output_dim, ", got ", adapter.B.rows, " x ", adapter.B.cols);
    LUTMUL_CHECK(std::isfinite(adapter.alpha), "LoraGpu: adapter ", j, ": alpha is not finite");
    check_finite(adapter.A, "adapter A");
    check_finite(adapter.B, "adapter B");
    s.host_a_offsets.push_back(static_cast<int64_t>(a.size()));
    s.host_b_offsets.push_back(static_cast<int64_t>(b.size()));
    for (int64_t i = 0; i < input_dim; ++i)
      for (int64_t c = 0; c < r; ++c) a.push_back(adapter.A.at(i, c));
    for (int64_t i = 0; i < r; ++i)
      for (int64_t c = 0; c < output_dim; ++c) b.push_back(adapter.B.at(i, c));
    s.host_ranks.push_back(static_cast<int32_t>(r));
    s.host_scales.push_back(adapter.alpha / static_cast<float>(r));
    s.max_rank = std::max(s.max_rank, static_cast<int>(r));
  }
  s.a = DeviceBuffer<float>(a);
  s.b = DeviceBuffer<float>(b);
  s.scales = DeviceBuffer<float>(s.host_scales);
  s.a_offsets = DeviceBuffer<int64_t>(s.host_a_offsets);
  s.b_offsets = DeviceBuffer<int64_t>(s.host_b_offsets);
  s.ranks = DeviceBuffer<int32_t>(s.host_ranks);
}

LoraGpu::~LoraGpu() = default;
LoraGpu::LoraGpu(LoraGpu&&) noexcept = default;
LoraGpu& LoraGpu::operator=(LoraGpu&&) noexcept = default;

int64_t LoraGpu::input_dim() const { return impl_->k; }
int64_t LoraGpu::output_dim() const { return impl_->m; }
int LoraGpu::num_adapters() const { return impl_->nadapters; }
int LoraGpu::rank(int adapter) const {
  LUTMUL_CHECK(adapter >= 0 && adapter < impl_->nadapters, "LoraGpu::rank: adapter ", adapter, " is not in [0, ",
               impl_->nadapters, ")");
  return impl_->host_ranks[static_cast<size_t>(adapter)];
}
int64_t LoraGpu::bytes() const {
  const Impl& s = *impl_;
  return static_cast<int64_t>(s.a.bytes() + s.b.bytes() + s.scales.bytes() + s.ranks.bytes() + s.a_offsets.bytes() +
                              s.b_offsets.bytes());
}

void LoraGpu::apply(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy, StreamView stream,
                    bool check_ids) const {
  const Impl& s = *impl_;
  s.check_call(X, adapter_ids, Y, ldy, "LoraGpu::apply");
  if (X.rows == 0) return;
  const cudaStream_t st = native(stream);
  kernels::LoraWorkspace w;
  w.max_tiles = (X.rows + kernels::kLoraTileRows - 1) / kernels::kLoraTileRows + s.nadapters;
  const size_t rows = static_cast<size_t>(X.rows);
  StreamScratch scratch(StreamScratch::aligned(rows * sizeof(int32_t)) +
                            StreamScratch::aligned(static_cast<size_t>(w.max_tiles) * 3 * sizeof(int32_t)) +
                            2 * StreamScratch::aligned(sizeof(int)) +
                            StreamScratch::aligned(rows * static_cast<size_t>(s.max_rank) * sizeof(float)),
                        st);
  w.order = scratch.carve<int32_t>(rows);
  w.tiles = scratch.carve<int32_t>(static_cast<size_t>(w.max_tiles) * 3);
  w.tile_count = scratch.carve<int32_t>(1);
  int* flag = scratch.carve<int>(1);
  w.shrunk = scratch.carve<float>(rows * static_cast<size_t>(s.max_rank));
  kernels::LoraParams p = s.params(X, adapter_ids, Y, ldy);
  if (check_ids) {
    p.error_flag = flag;
    LUTMUL_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), st));
  }
  LUTMUL_CUDA_CHECK(kernels::launch_lora_grouped(p, w, detail::current_device_limits().multiprocessors, st));
  if (check_ids)
    LUTMUL_CHECK(detail::read_flag(flag, st) == 0, "LoraGpu::apply: an adapter id is outside [-1, ", s.nadapters,
                 ") (those rows were left unchanged)");
}

void LoraGpu::apply_reference(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy,
                              StreamView stream) const {
  const Impl& s = *impl_;
  s.check_call(X, adapter_ids, Y, ldy, "LoraGpu::apply_reference");
  if (X.rows == 0) return;
  LUTMUL_CUDA_CHECK(kernels::launch_lora_reference(s.params(X, adapter_ids, Y, ldy), native(stream)));
}

void LoraGpu::apply_per_adapter(const MatrixView& X, const int32_t* adapter_ids_host, float* Y, int64_t ldy,
                                StreamView stream) const {
  const Impl& s = *impl_;
  s.check_call(X, adapter_ids_host, Y, ldy, "LoraGpu::apply_per_adapter");
  if (X.rows == 0) return;
  // Row lists per adapter, uploaded in one copy.
  std::vector<std::vector<int32_t>> rows_of(static_cast<size_t>(s.nadapters));
  for (int64_t i = 0; i < X.rows; ++i) {
    const int32_t a = adapter_ids_host[i];
    LUTMUL_CHECK(a >= -1 && a < s.nadapters, "LoraGpu::apply_per_adapter: adapter id ", a, " of row ", i,
                 " is outside [-1, ", s.nadapters, ")");
    if (a >= 0) rows_of[static_cast<size_t>(a)].push_back(static_cast<int32_t>(i));
  }
  std::vector<int32_t> all_rows;
  size_t largest = 0;
  for (const auto& r : rows_of) {
    all_rows.insert(all_rows.end(), r.begin(), r.end());
    largest = std::max(largest, r.size());
  }
  if (all_rows.empty()) return;
  const cudaStream_t st = native(stream);
  const size_t k = static_cast<size_t>(s.k), m = static_cast<size_t>(s.m), rank = static_cast<size_t>(s.max_rank);
  StreamScratch scratch(StreamScratch::aligned(all_rows.size() * sizeof(int32_t)) +
                            StreamScratch::aligned(largest * k * sizeof(float)) +
                            StreamScratch::aligned(largest * rank * sizeof(float)) +
                            StreamScratch::aligned(largest * m * sizeof(float)),
                        st);
  int32_t* rows = scratch.carve<int32_t>(all_rows.size());
  float* x_rows = scratch.carve<float>(largest * k);
  float* shrunk = scratch.carve<float>(largest * rank);
  float* update = scratch.carve<float>(largest * m);
  // From pageable memory: returns once the data is staged, so all_rows may go out of scope.
  LUTMUL_CUDA_CHECK(cudaMemcpyAsync(rows, all_rows.data(), all_rows.size() * sizeof(int32_t), cudaMemcpyHostToDevice, st));
  const bool row_major = X.layout == Layout::row_major;
  const auto binding = s.cublas.bind(st);
  size_t first = 0;
  for (int a = 0; a < s.nadapters; ++a) {
    const size_t count = rows_of[static_cast<size_t>(a)].size();
    if (count == 0) continue;
    const int n = static_cast<int>(count), r = s.host_ranks[static_cast<size_t>(a)];
    LUTMUL_CUDA_CHECK(kernels::launch_gather_rows(X.data, row_major ? X.leading_dim() : 1, row_major ? 1 : X.leading_dim(),
                                                  s.k, rows + first, static_cast<int64_t>(count), x_rows, st));
    // Row-major (n × K)·(K × r) and (n × r)·(r × M) as column-major transposed products.
    const float one = 1.f, zero = 0.f, scale = s.host_scales[static_cast<size_t>(a)];
    LUTMUL_CUBLAS_CHECK(cublasSgemm(s.cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, r, n, static_cast<int>(s.k), &one,
                                    s.a.data() + s.host_a_offsets[static_cast<size_t>(a)], r, x_rows,
                                    static_cast<int>(s.k), &zero, shrunk, r));
    LUTMUL_CUBLAS_CHECK(cublasSgemm(s.cublas.get(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(s.m), n, r, &scale,
                                    s.b.data() + s.host_b_offsets[static_cast<size_t>(a)], static_cast<int>(s.m), shrunk,
                                    r, &zero, update, static_cast<int>(s.m)));
    LUTMUL_CUDA_CHECK(kernels::launch_scatter_add_rows(update, s.m, rows + first, static_cast<int64_t>(count), Y, ldy, st));
    first += count;
  }
}

}  // namespace lutmul::cuda
