#include "isa_sweep.h"

#include "core/kernel_registry.h"

namespace lutmul::testing {
namespace {

// True when the level holds the scalar kernel of the family (the registry fills a level
// without its own kernel with the scalar one).
bool runs_scalar_kernel(Isa isa, Family family) {
  const detail::KernelSet& level = detail::kernels_for(isa);
  const detail::KernelSet& scalar = detail::reference_kernels();
  switch (family) {
    case Family::maddness:
      return level.maddness.encode == scalar.maddness.encode && level.maddness.scan == scalar.maddness.scan;
    case Family::int8: return level.int8.quantize == scalar.int8.quantize && level.int8.gemm == scalar.int8.gemm;
    case Family::sparse: return level.sparse == scalar.sparse;
    case Family::sparse24: return level.sparse24 == scalar.sparse24;
    case Family::lora: return level.lora == scalar.lora;
    case Family::runtime: return level.runtime.gelu == scalar.runtime.gelu;
    case Family::dense: return level.panel_gemm == scalar.panel_gemm;
  }
  return false;
}

}  // namespace

std::string family_name(Family family) {
  switch (family) {
    case Family::maddness: return "maddness";
    case Family::int8: return "int8";
    case Family::sparse: return "sparse";
    case Family::sparse24: return "2:4 sparse";
    case Family::lora: return "lora";
    case Family::runtime: return "runtime";
    case Family::dense: return "dense panel";
  }
  return "unknown";
}

std::vector<Isa> every_level() { return all_isas(); }

std::vector<Isa> simd_levels() {
  std::vector<Isa> out;
  for (Isa isa : all_isas())
    if (isa != Isa::scalar) out.push_back(isa);
  return out;
}

std::string reason_to_skip(Isa isa, Family family) {
  if (!isa_supported(isa)) return isa_name(isa) + " is not supported by this CPU or build";
  if (isa != Isa::scalar && runs_scalar_kernel(isa, family))
    return isa_name(isa) + " runs the scalar " + family_name(family) + " kernel";
  return "";
}

LevelScope::LevelScope(Isa isa) : previous_(active_isa()) { set_isa(isa); }

LevelScope::~LevelScope() { set_isa(previous_); }

}  // namespace lutmul::testing
