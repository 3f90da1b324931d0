#include "operators/int8_onednn.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <array>

#include "core/onednn_engine.h"
#include "core/onednn_primitives.h"
#include "core/sgemm.h"
#include "lutmul/core/error.h"

namespace lutmul::detail {
namespace {

// K past which Σ (x_q + 128)·w_q could leave int32 (255 · 127 · K < 2^31): oneDNN sums the
// offset values, the own kernels the centred ones.
constexpr int64_t kMaxK = 65536;

// Whether oneDNN's kernel sums u8·s8 pairs exactly: its brgemm kernels name their ISA; its
// gemm:jit kernels (which it picks when rows of x are not dense, K not a multiple of 4) use
// vpdpbusd where the CPU has VNNI. Without VNNI both add pairs in saturating 16-bit lanes.
bool exact_sums(const std::string& name) {
  if (name.find("vnni") != std::string::npos || name.find("amx") != std::string::npos) return true;
  if (name.rfind("gemm", 0) != 0) return false;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2_vnni:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx: return true;
    default: return false;
  }
}

}  // namespace

// One primitive per block row count and thread count (core/onednn_primitives.h), with the
// weights reordered once into each layout they want (all blocks of one CPU want the same one;
// a block that wanted another would get its own copy).
struct Int8OnednnProduct::Impl {
  struct Block {
    int64_t rows = 0;
    dnnl::matmul::primitive_desc pd;
    dnnl::matmul primitive;
    dnnl::memory weights;
  };
  using Blocks = std::array<Block, std::size(kBlockRows)>;

  int64_t k = 0, ldx = 0, m = 0;
  PerThreadCount<Blocks> blocks;
  std::unique_ptr<PackedWeights> packed;  // made at the first call; under blocks's lock

  // The blocks for this thread count; `plain`, the weights, only at the first call.
  // dnnl::error where oneDNN has no u8·s8 matmul, Error where the kernel it picks (at any
  // thread count) would saturate the sums.
  const Blocks& get(int threads, const dnnl::memory* plain = nullptr) {
    return blocks.get(threads, [&](int) {
      using dnnl::memory;
      const dnnl::engine& engine = onednn_cpu_engine();
      Blocks made;
      for (size_t b = 0; b < std::size(kBlockRows); ++b) {
        Block& block = made[b];
        block.rows = kBlockRows[b];
        const memory::desc src({block.rows, k}, memory::data_type::u8, memory::dims{ldx, 1});
        const memory::desc weights({k, m}, memory::data_type::s8, memory::format_tag::any);
        const memory::desc dst({block.rows, m}, memory::data_type::s32, memory::format_tag::ab);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        block.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, engine);
        const std::string name = block.pd.impl_info_str();
        LUTMUL_CHECK(exact_sums(name), "oneDNN runs '", name,
                     "' here, whose int8 sums saturate (it needs AVX-512 VNNI or AMX)");
        if (packed == nullptr) packed = std::make_unique<PackedWeights>(*plain, block.pd.weights_desc());
        block.weights = packed->in(block.pd.weights_desc());
        block.primitive = dnnl::matmul(block.pd);
      }
      return made;
    });
  }
};

Int8OnednnProduct::Int8OnednnProduct(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  implementation_ = impl_->get(1)[0].pd.impl_info_str();
}

Int8OnednnProduct::~Int8OnednnProduct() = default;

bool Int8OnednnProduct::uses_amx() const { return implementation_.find("amx") != std::string::npos; }

std::shared_ptr<const Int8OnednnProduct> Int8OnednnProduct::create(int64_t k, int64_t ldx, int64_t m, const std::vector<int8_t>& w,
                                                                   std::string& reason) {
  using dnnl::memory;
  if (k > kMaxK) {
    reason = "K = " + std::to_string(k) + " is past " + std::to_string(kMaxK) + ", where oneDNN's int32 sums could overflow";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->k = k;
  impl->ldx = ldx;
  impl->m = m;
  try {
    const memory plain({{k, m}, memory::data_type::s8, memory::format_tag::ab}, onednn_cpu_engine(),
                       const_cast<int8_t*>(w.data()));
    impl->get(1, &plain);
  } catch (const dnnl::error& error) {
    reason = std::string("oneDNN has no u8·s8 matmul for this CPU (") + error.what() + ")";
    return nullptr;
  } catch (const Error& error) {  // its kernel would saturate the sums
    reason = error.what();
    return nullptr;
  }
  return std::shared_ptr<const Int8OnednnProduct>(new Int8OnednnProduct(std::move(impl)));
}

void Int8OnednnProduct::run(const uint8_t* x, int64_t rows, int32_t* sums, int threads) const {
  using dnnl::memory;
  const Impl::Block* block = nullptr;
  for (const Impl::Block& b : impl_->get(threads))
    if (b.rows == rows) block = &b;
  LUTMUL_CHECK(block != nullptr, "Int8OnednnProduct: no block of ", rows, " rows");
  const dnnl::engine& engine = onednn_cpu_engine();
  const memory src(block->pd.src_desc(), engine, const_cast<uint8_t*>(x));
  const memory dst(block->pd.dst_desc(), engine, sums);
  thread_local std::vector<uint8_t> scratch;  // kept: allocated once per thread
  scratch.resize(block->pd.scratchpad_desc().get_size());
  const memory scratchpad(block->pd.scratchpad_desc(), engine, scratch.data());
  const OpenMpThreadsForCall scope(threads);
  dnnl::stream stream(engine);
  block->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                    {DNNL_ARG_WEIGHTS, block->weights},
                                    {DNNL_ARG_DST, dst},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
}

}  // namespace lutmul::detail
