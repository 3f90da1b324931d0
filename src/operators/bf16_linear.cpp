#include "lutmul/operators/bf16_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/file_format.h"
#include "core/kernel_registry.h"
#include "core/onednn_engine.h"
#include "core/onednn_primitives.h"
#include "core/sgemm.h"
#include "kernels/cpu/runtime/runtime_kernels.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

uint16_t to_bfloat16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return kernels::round_to_bf16_bits(bits);
}

float from_bfloat16(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float x;
  std::memcpy(&x, &wide, sizeof x);
  return x;
}

namespace detail {
namespace {

// Rows [first, first + count) of X rounded to bfloat16 into a dense count × K buffer, by the
// active ISA's kernel where rows are contiguous. Returns whether every value was finite.
bool round_rows(const MatrixView& X, int64_t first, int64_t count, uint16_t* out) {
  const int64_t k = X.cols;
  const kernels::RoundBf16Fn round = active_kernels().runtime.round_bf16;
  bool finite = true;
  for (int64_t i = first; i < first + count; ++i) {
    uint16_t* row = out + (i - first) * k;
    if (X.layout == Layout::row_major) {
      finite = round(X.data + i * X.leading_dim(), k, row) && finite;
    } else {
      for (int64_t j = 0; j < k; ++j) {
        row[j] = to_bfloat16(X.at(i, j));
        finite = finite && std::isfinite(X.at(i, j));
      }
    }
  }
  return finite;
}

}  // namespace

// The product through oneDNN: bfloat16 X and W, float bias and Y. Scratchpad memory is the
// caller's, so concurrent forward calls on one operator share nothing mutable but the
// primitives' cache (core/onednn_primitives.h: primitives per thread count).
//
// oneDNN 2.6 runs a primitive with a run-time row count only on its gemm:jit kernels, which
// never use AMX. So where the CPU has AMX, blocks of a fixed row count run brgemm primitives
// on weights reordered once into their tile layout (with the rounding kernel, the forward at
// MiniLM's feed-forward shapes on Sapphire Rapids went from 6.04 and 4.96 ms to 3.50 and
// 3.11 ms: docs/performance.md), each block on one thread (Bf16Linear::compute); the rows left
// over, and outputs with a leading dimension other than M, run the general primitive. Without
// AMX the general one
// runs alone: brgemm's AVX512-BF16 kernels were not measured faster there.
class Bf16Product {
 public:
  // Row counts of the AMX blocks, largest first. One block per thread at a time: at two
  // threads 64-row blocks ran the bf16 runtime (runtime_embed_bf16/64/2) at 826–840
  // sentences/s against 697–707 with 256-row blocks that oneDNN split among the threads.
  static constexpr int64_t kBlockRows[] = {64, 32};

  // w: the operator's plain K × M bfloat16 weights, as every call passes them.
  Bf16Product(int64_t k, int64_t m, const uint16_t* w) : k_(k), m_(m) {
    const Primitives& one = primitives(1, w, Epilogue{});
    has_blocks_ = !one.blocks.empty();
    implementation_ = one.general.pd.impl_info_str();
    if (!has_blocks_) return;
    std::string rows;
    for (const Block& block : one.blocks) rows += (rows.empty() ? "" : " and ") + std::to_string(block.rows);
    implementation_ = std::string(one.blocks[0].pd.impl_info_str()) + " for blocks of " + rows + " rows, " +
                      implementation_ + " for the rest";
  }

  const std::string& implementation() const { return implementation_; }
  bool has_blocks() const { return has_blocks_; }

  // Y (n × m, leading dimension ldy) = x·W + bias for n dense rows of bfloat16 x through the
  // general primitive, on `threads` OpenMP threads, through `epilogue` (oneDNN's post-ops);
  // w is the operator's plain weights.
  void run(const uint16_t* x, int64_t n, const uint16_t* w, const float* bias, float* y, int64_t ldy, int threads,
           const Epilogue& epilogue) const {
    const Primitives& p = primitives(threads, w, epilogue);
    const OpenMpThreadsForCall scope(threads);
    const dnnl::memory plain({{k_, m_}, dnnl::memory::data_type::bf16, dnnl::memory::format_tag::ab},
                             onednn_cpu_engine(), const_cast<uint16_t*>(w));
    execute(p.general, plain, x, n, bias, y, ldy);
  }

  // The same for one AMX block of `rows` (one of kBlockRows) rows and a dense Y, on the
  // calling thread alone (has_blocks() only).
  void run_block(const uint16_t* x, int64_t rows, const uint16_t* w, const float* bias, float* y,
                 const Epilogue& epilogue) const {
    const Primitives& p = primitives(1, w, epilogue);
    const OpenMpThreadsForCall scope(1);
    for (const Block& block : p.blocks)
      if (block.rows == rows) return execute(block, block.weights, x, rows, bias, y, m_);
    LUTMUL_CHECK(false, "Bf16Linear: no AMX block of ", rows, " rows");
  }

 private:
  struct Block {
    int64_t rows = 0;  // 0: any (the general primitive)
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
    dnnl::memory weights;  // in pd's layout (blocks only)
  };
  struct Primitives {  // for one thread count and epilogue
    Block general;
    std::vector<Block> blocks;  // empty without AMX
  };

  // Made at the first call with this thread count and epilogue: the runtime asks each layer
  // for one epilogue only.
  const Primitives& primitives(int threads, const uint16_t* w, const Epilogue& epilogue) const {
    const bool gelu = epilogue.activation == Epilogue::Activation::gelu;
    return primitives_.get(threads, [&](int) {
      using dnnl::memory;
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      // Applied in order to x·W + bias: GELU (erf form), then the old Y added.
      dnnl::post_ops post_ops;
      if (gelu) post_ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      if (epilogue.accumulate) post_ops.append_sum(1.f);
      attr.set_post_ops(post_ops);
      const memory::dim rt = DNNL_RUNTIME_DIM_VAL;
      Primitives p;
      p.general.pd = make_pd({rt, k_}, memory::desc({k_, m_}, memory::data_type::bf16, memory::format_tag::ab), {rt, m_},
                             attr);
      p.general.primitive = dnnl::matmul(p.general.pd);
      for (const int64_t rows : kBlockRows) {
        Block block;
        block.rows = rows;
        block.pd = make_pd({rows, k_}, memory::desc({k_, m_}, memory::data_type::bf16, memory::format_tag::any),
                           {rows, m_}, attr);
        if (std::string(block.pd.impl_info_str()).find("amx") == std::string::npos) {
          p.blocks.clear();  // no AMX: the general primitive alone
          return p;
        }
        block.primitive = dnnl::matmul(block.pd);
        p.blocks.push_back(block);
      }
      if (packed_ == nullptr) {
        const memory plain({{k_, m_}, memory::data_type::bf16, memory::format_tag::ab}, onednn_cpu_engine(),
                           const_cast<uint16_t*>(w));
        packed_ = std::make_unique<PackedWeights>(plain, p.blocks[0].pd.weights_desc());
      }
      for (Block& block : p.blocks) block.weights = packed_->in(block.pd.weights_desc());
      return p;
    }, (gelu ? 2 : 0) + (epilogue.accumulate ? 1 : 0));
  }

  dnnl::matmul::primitive_desc make_pd(const dnnl::memory::dims& src_dims, const dnnl::memory::desc& weights,
                                       const dnnl::memory::dims& dst_dims, const dnnl::primitive_attr& attr) const {
    using dnnl::memory;
    const memory::desc src(src_dims, memory::data_type::bf16, memory::dims{k_, 1});
    const memory::desc bias({1, m_}, memory::data_type::f32, memory::format_tag::ab);
    // A run-time row count comes with a run-time leading dimension of Y; a block's Y is dense.
    const memory::dim ldy = src_dims[0] == DNNL_RUNTIME_DIM_VAL ? DNNL_RUNTIME_DIM_VAL : m_;
    const memory::desc dst(dst_dims, memory::data_type::f32, memory::dims{ldy, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), attr, onednn_cpu_engine());
  }

  void execute(const Block& block, const dnnl::memory& weights, const uint16_t* x, int64_t n, const float* bias,
               float* y, int64_t ldy) const {
    using dnnl::memory;
    const dnnl::engine& engine = onednn_cpu_engine();
    const memory src({{n, k_}, memory::data_type::bf16, memory::dims{k_, 1}}, engine, const_cast<uint16_t*>(x));
    const memory b({{1, m_}, memory::data_type::f32, memory::format_tag::ab}, engine, const_cast<float*>(bias));
    const memory dst({{n, m_}, memory::data_type::f32, memory::dims{ldy, 1}}, engine, y);
    thread_local std::vector<uint8_t> scratch;  // kept: allocated once per thread
    scratch.resize(block.pd.scratchpad_desc().get_size());
    const memory scratchpad(block.pd.scratchpad_desc(), engine, scratch.data());
    dnnl::stream stream(engine);
    block.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_WEIGHTS, weights},
                                     {DNNL_ARG_BIAS, b},
                                     {DNNL_ARG_DST, dst},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream.wait();
  }

  int64_t k_, m_;
  bool has_blocks_ = false;
  std::string implementation_;
  PerThreadCount<Primitives> primitives_;
  mutable std::unique_ptr<PackedWeights> packed_;  // made under primitives_'s lock
};

}  // namespace detail

Bf16Linear::Bf16Linear(const MatrixView& W, const float* bias) : SizedLinearOperator("bf16") {
  detail::check_weights(W, "Bf16Linear");
  k_ = W.rows;
  m_ = W.cols;
  weights_.resize(static_cast<size_t>(k_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < m_; ++j) weights_[i * m_ + j] = to_bfloat16(W.at(i, j));
  bias_ = detail::copy_bias(bias, m_, "Bf16Linear");
  prepare();
}

void Bf16Linear::prepare() {
  try {
    product_ = std::make_shared<const detail::Bf16Product>(k_, m_, weights_.data());
  } catch (const dnnl::error&) {
    // oneDNN has no bfloat16 product for this CPU (one without AVX-512): the same values
    // through the f32 product.
    product_.reset();
    fallback_weights_.resize(weights_.size());
    for (size_t i = 0; i < weights_.size(); ++i) fallback_weights_[i] = from_bfloat16(weights_[i]);
  }
}

// Only where AMX blocks run, the path measured (Sapphire Rapids); oneDNN's gemm:jit alone
// (Zen 4) keeps the separate pass.
bool Bf16Linear::fuses_epilogue() const { return product_ != nullptr && product_->has_blocks(); }

std::string Bf16Linear::path() const {
  return product_ ? "oneDNN " + product_->implementation() : std::string("f32 product of bfloat16 values");
}

void Bf16Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const { compute_with(X, Y, ldy, Epilogue{}); }

void Bf16Linear::forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_forward(X, Y, ldy);
  if (X.rows > 0) compute_with(X, Y, ldy, epilogue);
}

void Bf16Linear::compute_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  const int threads = num_threads();
  int64_t done = 0;
  if (product_ && product_->has_blocks() && ldy == m_) {
    // AMX: whole blocks, each rounded into a buffer its thread keeps and multiplied on that
    // thread while its rows are still in L2.
    const auto blocks = detail::fixed_row_blocks(X.rows, threads, detail::Bf16Product::kBlockRows, done);
    const int parts = static_cast<int>(std::min<int64_t>(threads, static_cast<int64_t>(blocks.size())));
    const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
      thread_local std::vector<uint16_t> buffer;
      buffer.resize(static_cast<size_t>(detail::Bf16Product::kBlockRows[0] * k_));
      bool ok = true;
      for (size_t b = static_cast<size_t>(thread); b < blocks.size() && ok; b += static_cast<size_t>(count)) {
        const auto [first, rows] = blocks[b];
        ok = detail::round_rows(X, first, rows, buffer.data());
        if (ok) product_->run_block(buffer.data(), rows, weights_.data(), bias_.data(), Y + first * ldy, epilogue);
      }
      return ok;
    });
    if (!finite) detail::check_rows_finite(X, nullptr, "bf16");  // throws, naming the row
  }
  if (done == X.rows) return;
  // The rest (all rows without AMX blocks): rounded first, then one product, the path
  // measured on Zen 4 (docs/performance.md).
  const int64_t rows = X.rows - done;
  std::vector<uint16_t> x(static_cast<size_t>(rows * k_));
  const int parts = static_cast<int>(std::min<int64_t>(threads, rows));
  const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
    bool ok = true;
    for (int p = thread; p < parts; p += count) {
      const auto [begin, end] = detail::partition(rows, parts, p);
      ok = detail::round_rows(X, done + begin, end - begin, x.data() + begin * k_) && ok;
    }
    return ok;
  });
  if (!finite) detail::check_rows_finite(X, nullptr, "bf16");
  float* y = Y + done * ldy;
  if (product_) {
    product_->run(x.data(), rows, weights_.data(), bias_.data(), y, ldy, threads, epilogue);
  } else {
    std::vector<float> rounded(static_cast<size_t>(rows * k_));
    for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = from_bfloat16(x[i]);
    detail::fill_rows_on_threads(y, ldy, rows, bias_.data(), m_, threads);
    detail::sgemm(false, false, rows, m_, k_, rounded.data(), k_, fallback_weights_.data(), m_, 1.f, y, ldy, threads);
  }
}

int64_t Bf16Linear::bytes() const {
  return static_cast<int64_t>(weights_.size() * sizeof(uint16_t) + bias_.size() * sizeof(float));
}

std::vector<uint8_t> Bf16Linear::payload() const {
  return detail::pack(k_, m_, weights_, bias_);
}

std::unique_ptr<Bf16Linear> Bf16Linear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const auto [k, m] = detail::read_dims(r, "bf16");
  std::unique_ptr<Bf16Linear> op(new Bf16Linear());
  op->k_ = k;
  op->m_ = m;
  op->weights_ = r.get_array<uint16_t>("weights", static_cast<uint64_t>(k) * static_cast<uint64_t>(m));
  op->bias_ = r.get_array<float>("bias", static_cast<uint64_t>(m));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the bf16 weights");
  for (const uint16_t w : op->weights_)
    LUTMUL_CHECK(std::isfinite(from_bfloat16(w)), "operator file is corrupt: a bf16 weight is not finite");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  op->prepare();
  return op;
}

}  // namespace lutmul
