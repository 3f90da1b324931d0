// Internal: the kernel registry. One KernelSet per ISA level holds every family's kernels
// for that level; it is filled on first use, after the CPU check, so no code compiled for a
// higher ISA runs on a CPU that lacks it. Operators fetch a set once per call, outside
// their loops.
#pragma once

#include <vector>

#include "kernels/cpu/dense/panel_gemm.h"
#include "kernels/cpu/int8/int8_kernels.h"
#include "kernels/cpu/lora/lora_kernels.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "kernels/cpu/pruned/sparse24_kernels.h"
#include "kernels/cpu/pruned/sparse_kernels.h"
#include "kernels/cpu/runtime/runtime_kernels.h"
#include "lutmul/core/isa.h"

namespace lutmul::detail {

struct KernelSet {
  Isa isa = Isa::scalar;
  kernels::KernelTable maddness{};       // encode, scan
  kernels::Int8KernelTable int8{};       // quantize, gemm
  const char* int8_variant = "scalar";   // which dot-product instructions int8 uses
  kernels::SparseFn sparse = nullptr;
  kernels::Sparse24Fn sparse24 = nullptr;
  kernels::LoraFn lora = nullptr;
  kernels::RuntimeKernelTable runtime{};  // the encoder's glue: embeddings, LayerNorm, GELU, attention, pooling
  // DenseLinear's few-row product on packed weights; the scalar reference at levels without
  // a vector one, where DenseLinear keeps sgemm instead.
  kernels::PanelGemmFn panel_gemm = nullptr;
  // Bf16Linear's product on bfloat16 panels where oneDNN has none; the AVX2 kernel at every
  // x86 SIMD level (AVX-512 CPUs run oneDNN's, so the AVX-512 levels only test it).
  kernels::PanelGemmFn panel_gemm_bf16 = nullptr;
};

// The set of the level in use (active_isa()).
const KernelSet& active_kernels();
// The set of `isa`; throws lutmul::Error if this build or CPU cannot run it.
const KernelSet& kernels_for(Isa isa);
// The scalar references every other set is tested against.
inline const KernelSet& reference_kernels() { return kernels_for(Isa::scalar); }

// Every int8 kernel variant this CPU can run, the scalar reference first, for the tests that
// check each against it (the levels pick one variant each, so a sweep over levels would miss
// some).
struct Int8Variant {
  const char* name;
  kernels::Int8KernelTable table;
};
std::vector<Int8Variant> runnable_int8_variants();

}  // namespace lutmul::detail
