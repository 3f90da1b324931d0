#include "operators/dense_small_batches.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/kernel_registry.h"
#include "core/onednn_engine.h"
#include "core/sgemm.h"
#include "operators/operator_skeleton.h"

namespace lutmul::detail {
namespace {

dnnl::matmul::primitive_desc describe(int64_t rows, int64_t k, int64_t m) {
  using dnnl::memory;
  const memory::desc src({rows, k}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc weights({k, m}, memory::data_type::f32, memory::format_tag::any);
  const memory::desc bias({1, m}, memory::data_type::f32, memory::format_tag::ab);
  const memory::desc dst({rows, m}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), attr, onednn_cpu_engine());
}

}  // namespace

struct SmallBatchProduct::State {
  std::once_flag reordered;
  bool usable = false;  // oneDNN gave a blocked layout and the weights are in it
  dnnl::memory::desc layout;
  dnnl::memory weights;
  std::mutex mutex;  // guards the primitives
  struct Entry {
    bool tried = false;
    bool usable = false;
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
  };
  // By thread count and rows (core/onednn_primitives.h: a primitive runs on the thread count
  // it was made for).
  std::map<std::pair<int, int64_t>, Entry> entries;
  // Where oneDNN has no blocked kernel: W packed for lutmul's panel product.
  std::once_flag packed;
  std::vector<float> panels;
};

SmallBatchProduct::SmallBatchProduct(const float* w, const float* bias, int64_t k, int64_t m)
    : w_(w), bias_(bias), k_(k), m_(m), state_(std::make_unique<State>()) {}

SmallBatchProduct::~SmallBatchProduct() = default;

void SmallBatchProduct::prepare() const {
  State& s = *state_;
  std::call_once(s.reordered, [&] {
    using dnnl::memory;
    try {
      // The layout oneDNN wants at 16 rows; row counts that want another fall back to sgemm.
      const dnnl::matmul::primitive_desc pd = describe(16, k_, m_);
      if (std::string(pd.impl_info_str()).rfind("brg", 0) != 0) return;  // only its blocked kernels pay
      s.layout = pd.weights_desc();
      s.weights = memory(s.layout, onednn_cpu_engine());
      memory plain({{k_, m_}, memory::data_type::f32, memory::format_tag::ab}, onednn_cpu_engine(), const_cast<float*>(w_));
      dnnl::stream stream(onednn_cpu_engine());
      dnnl::reorder(plain, s.weights).execute(stream, plain, s.weights);
      stream.wait();
      s.usable = true;
    } catch (const dnnl::error&) {
      s.usable = false;
    }
  });
}

bool SmallBatchProduct::on_panels() const {
  prepare();
  return !state_->usable && active_kernels().panel_gemm != kernels::panel_gemm_scalar_kernel();
}

bool SmallBatchProduct::run(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy, int threads) const {
  using dnnl::memory;
  if (rows < 1) return false;
  if (on_panels()) return run_on_panels(x, ldx, rows, y, ldy, threads);
  State& s = *state_;
  if (!s.usable || rows > kMaxRows || ldx != k_ || ldy != m_) return false;
  const State::Entry* entry = nullptr;
  {
    const std::lock_guard<std::mutex> lock(s.mutex);
    State::Entry& e = s.entries[{threads, rows}];
    if (!e.tried) {
      e.tried = true;
      const OpenMpThreadsForCall scope(threads);
      try {
        e.pd = describe(rows, k_, m_);
        e.usable = e.pd.weights_desc() == s.layout;
        if (e.usable) e.primitive = dnnl::matmul(e.pd);
      } catch (const dnnl::error&) {
        e.usable = false;
      }
    }
    if (!e.usable) return false;
    entry = &e;  // never changed again once usable
  }
  const dnnl::engine& engine = onednn_cpu_engine();
  const memory src(entry->pd.src_desc(), engine, const_cast<float*>(x));
  const memory bias(entry->pd.bias_desc(), engine, const_cast<float*>(bias_));
  const memory dst(entry->pd.dst_desc(), engine, y);
  std::vector<uint8_t> scratch(entry->pd.scratchpad_desc().get_size());
  const memory scratchpad(entry->pd.scratchpad_desc(), engine, scratch.data());
  const OpenMpThreadsForCall scope(threads);
  dnnl::stream stream(engine);
  entry->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                    {DNNL_ARG_WEIGHTS, s.weights},
                                    {DNNL_ARG_BIAS, bias},
                                    {DNNL_ARG_DST, dst},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
  return true;
}

bool SmallBatchProduct::run_on_panels(const float* x, int64_t ldx, int64_t rows, float* y, int64_t ldy,
                                      int threads) const {
  const kernels::PanelGemmFn panel_gemm = active_kernels().panel_gemm;
  State& s = *state_;
  std::call_once(s.packed, [&] {
    s.panels.resize(static_cast<size_t>(kernels::panel_count(m_) * k_ * kernels::kPanelWidth));
    kernels::pack_panels(w_, m_, k_, m_, s.panels.data());
  });
  kernels::PanelGemmArgs args;
  args.x = x;
  args.ldx = ldx;
  args.rows = rows;
  args.k = k_;
  args.panels = s.panels.data();
  args.bias = bias_;
  args.m = m_;
  args.y = y;
  args.ldy = ldy;
  const int64_t panels = kernels::panel_count(m_);
  const int used = static_cast<int>(threads < panels ? threads : panels);
  run_on_threads(used, [&](int thread, int count) {
    const auto [begin, end] = partition(panels, count, thread);
    panel_gemm(args, begin, end);
    return true;
  });
  return true;
}

}  // namespace lutmul::detail
