#include "operators/bf16_onednn.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <vector>

#include "core/onednn_engine.h"
#include "core/onednn_primitives.h"
#include "core/sgemm.h"
#include "lutmul/core/error.h"

namespace lutmul::detail {

struct Bf16OnednnProduct::Impl {
  struct Block {
    int64_t rows = 0;  // 0: any (the general primitive)
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
    dnnl::memory weights;  // in pd's layout (blocks only)
  };
  struct Primitives {  // for one thread count and epilogue
    Block general;
    std::vector<Block> blocks;  // at one thread where AMX runs them; else empty
  };

  using memory_type = dnnl::memory::data_type;
  static constexpr memory_type type = memory_type::bf16;
  int64_t k = 0, m = 0;
  PerThreadCount<Primitives> primitives;
  std::unique_ptr<PackedWeights> packed;  // made under primitives's lock

  dnnl::memory plain_weights(const uint16_t* w) const {
    return dnnl::memory({{k, m}, type, dnnl::memory::format_tag::ab}, onednn_cpu_engine(), const_cast<uint16_t*>(w));
  }

  // Made at the first call with this thread count, epilogue and output type: the runtime asks
  // each layer for one of each only.
  const Primitives& get(int threads, const uint16_t* w, const Epilogue& epilogue, bool bf16_y) {
    const memory_type y_type = bf16_y ? memory_type::bf16 : memory_type::f32;
    const bool gelu = epilogue.activation == Epilogue::Activation::gelu;
    return primitives.get(threads, [&](int) {  // under OpenMP set to `threads`
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
      p.general.pd = make_pd({rt, k}, memory::desc({k, m}, type, memory::format_tag::ab), {rt, m}, y_type, attr);
      p.general.primitive = dnnl::matmul(p.general.pd);
      if (threads != 1) return p;  // blocks run on one thread each (run_block)
      for (const int64_t rows : kBlockRows) {
        Block block;
        block.rows = rows;
        block.pd = make_pd({rows, k}, memory::desc({k, m}, type, memory::format_tag::any), {rows, m}, y_type, attr);
        if (std::string(block.pd.impl_info_str()).find("amx") == std::string::npos) {
          p.blocks.clear();  // no AMX: the general primitive alone
          return p;
        }
        block.primitive = dnnl::matmul(block.pd);
        p.blocks.push_back(block);
      }
      if (packed == nullptr) packed = std::make_unique<PackedWeights>(plain_weights(w), p.blocks[0].pd.weights_desc());
      for (Block& block : p.blocks) block.weights = packed->in(block.pd.weights_desc());
      return p;
    }, (bf16_y ? 4 : 0) + (gelu ? 2 : 0) + (epilogue.accumulate ? 1 : 0));
  }

  dnnl::matmul::primitive_desc make_pd(const dnnl::memory::dims& src_dims, const dnnl::memory::desc& weights,
                                       const dnnl::memory::dims& dst_dims, memory_type y_type,
                                       const dnnl::primitive_attr& attr) const {
    using dnnl::memory;
    const memory::desc src(src_dims, type, memory::dims{k, 1});
    const memory::desc bias({1, m}, memory::data_type::f32, memory::format_tag::ab);
    // A run-time row count comes with a run-time leading dimension of Y; a block's Y is dense.
    const memory::dim ldy = src_dims[0] == DNNL_RUNTIME_DIM_VAL ? DNNL_RUNTIME_DIM_VAL : m;
    const memory::desc dst(dst_dims, y_type, memory::dims{ldy, 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), attr, onednn_cpu_engine());
  }

  void execute(const Block& block, const dnnl::memory& weights, const uint16_t* x, int64_t n, const float* bias,
               const Output& y) const {
    using dnnl::memory;
    const dnnl::engine& engine = onednn_cpu_engine();
    const memory src({{n, k}, type, memory::dims{k, 1}}, engine, const_cast<uint16_t*>(x));
    const memory b({{1, m}, memory::data_type::f32, memory::format_tag::ab}, engine, const_cast<float*>(bias));
    const memory dst({{n, m}, y.bf16 ? memory_type::bf16 : memory_type::f32, memory::dims{y.ldy, 1}}, engine, y.y);
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
};

Bf16OnednnProduct::Bf16OnednnProduct(int64_t k, int64_t m, const uint16_t* w) : impl_(std::make_unique<Impl>()) {
  impl_->k = k;
  impl_->m = m;
  const Impl::Primitives& one = impl_->get(1, w, Epilogue{}, false);
  has_blocks_ = !one.blocks.empty();
  implementation_ = one.general.pd.impl_info_str();
  if (!has_blocks_) return;
  std::string rows;
  for (size_t b = 0; b < one.blocks.size(); ++b)
    rows += (b == 0 ? "" : b + 1 == one.blocks.size() ? " and " : ", ") + std::to_string(one.blocks[b].rows);
  implementation_ = std::string(one.blocks[0].pd.impl_info_str()) + " for blocks of " + rows +
                    " rows (the last rows padded to one), " + implementation_ + " where Y is wider than M";
}

Bf16OnednnProduct::~Bf16OnednnProduct() = default;

void Bf16OnednnProduct::run(const uint16_t* x, int64_t n, const uint16_t* w, const float* bias, const Output& y,
                            int threads, const Epilogue& epilogue) const {
  const Impl::Primitives& p = impl_->get(threads, w, epilogue, y.bf16);
  const OpenMpThreadsForCall scope(threads);
  impl_->execute(p.general, impl_->plain_weights(w), x, n, bias, y);
}

void Bf16OnednnProduct::run_block(const uint16_t* x, int64_t rows, const uint16_t* w, const float* bias, void* y,
                                  bool bf16_y, const Epilogue& epilogue) const {
  const Impl::Primitives& p = impl_->get(1, w, epilogue, bf16_y);
  const OpenMpThreadsForCall scope(1);
  for (const Impl::Block& block : p.blocks)
    if (block.rows == rows) return impl_->execute(block, block.weights, x, rows, bias, Output{y, impl_->m, bf16_y});
  LUTMUL_CHECK(false, "Bf16OnednnProduct: no block of ", rows, " rows");
}

}  // namespace lutmul::detail
