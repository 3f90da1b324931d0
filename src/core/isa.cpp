// Run-time choice of the kernel level and the kernel registry. Built without ISA flags, so
// it runs on any CPU. The only file that reads LUTMUL_ISA.
#include "lutmul/core/isa.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/kernel_registry.h"
#include "lutmul/core/cpu_features.h"
#include "lutmul/core/error.h"

namespace lutmul {
namespace {

constexpr std::array<Isa, 5> kAllIsas = {Isa::scalar, Isa::neon, Isa::avx2, Isa::avx512, Isa::avx512vbmi};

bool cpu_can_run(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.bmi2;  // the AVX2 kernels use pdep (BMI2) and FMA
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return avx2;
    case Isa::avx512: return avx512;
    case Isa::avx512vbmi: return avx512 && f.avx512vbmi && f.avx512vnni;
    case Isa::neon: return f.neon;
  }
  return false;
}

bool built(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
#if defined(LUTMUL_HAVE_AVX2_KERNELS)
    case Isa::avx2: return true;
#endif
#if defined(LUTMUL_HAVE_AVX512_KERNELS)
    case Isa::avx512: return true;
#endif
#if defined(LUTMUL_HAVE_AVX512VBMI_KERNELS)
    case Isa::avx512vbmi: return true;
#endif
#if defined(LUTMUL_HAVE_NEON_KERNELS)
    case Isa::neon: return true;
#endif
    default: return false;
  }
}

// Fills the set of a level. Called only for a level the CPU can run: every function called
// here for a SIMD level lives in a file compiled for that level.
detail::KernelSet fill(Isa isa) {
  detail::KernelSet set;
  set.isa = isa;
  set.maddness = kernels::scalar_kernels();
  set.int8 = kernels::int8_scalar_kernels();
  set.sparse = kernels::sparse_scalar_kernel();
  set.sparse24 = kernels::sparse24_scalar_kernel();
  set.lora = kernels::lora_scalar_kernel();
  set.runtime = kernels::runtime_scalar_kernels();
  set.panel_gemm = kernels::panel_gemm_scalar_kernel();
  set.panel_gemm_bf16 = kernels::panel_gemm_bf16_scalar_kernel();
  [[maybe_unused]] const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: break;
#if defined(LUTMUL_HAVE_AVX2_KERNELS)
    case Isa::avx2:
      set.maddness = *kernels::avx2_kernels();
      set.sparse = kernels::sparse_avx2_kernel();
      set.sparse24 = kernels::sparse24_avx2_kernel();
      set.runtime = kernels::runtime_avx2_kernels();
      set.panel_gemm = kernels::panel_gemm_avx2_kernel();
      set.panel_gemm_bf16 = kernels::panel_gemm_bf16_avx2_kernel();
      set.lora = kernels::lora_avx2_kernel();
      break;
#endif
#if defined(LUTMUL_HAVE_AVX512_KERNELS)
    case Isa::avx512:
    case Isa::avx512vbmi:
      set.maddness = isa == Isa::avx512vbmi ? *kernels::avx512vbmi_kernels() : *kernels::avx512_kernels();
      set.sparse = kernels::sparse_avx512_kernel();
      set.sparse24 = kernels::sparse24_avx512_kernel();
      set.lora = kernels::lora_avx512_kernel();
      set.runtime = kernels::runtime_avx512_kernels();
      set.panel_gemm = kernels::panel_gemm_avx512_kernel();
      set.panel_gemm_bf16 = kernels::panel_gemm_bf16_avx2_kernel();
      break;
#endif
#if defined(LUTMUL_HAVE_NEON_KERNELS)
    case Isa::neon:
      set.maddness = *kernels::neon_kernels();
      set.sparse = kernels::sparse_neon_kernel();
      set.sparse24 = kernels::sparse24_neon_kernel();
      break;
#endif
    default: break;
  }
  // int8 needs dot-product instructions the levels do not name: 512-bit VNNI at the AVX-512
  // levels where the CPU has it, else 256-bit AVX-VNNI where present, else AVX2's vpmaddwd.
#if defined(LUTMUL_HAVE_INT8_AVX2_KERNELS)
  const bool avx2_or_more = isa == Isa::avx2 || isa == Isa::avx512 || isa == Isa::avx512vbmi;
  const bool avx512_level = isa == Isa::avx512 || isa == Isa::avx512vbmi;
  if (avx512_level && f.avx512vnni) {
    set.int8 = *kernels::int8_vnni_kernels();
    set.int8_variant = "avx512-vnni";
  } else if (avx2_or_more && f.avxvnni) {
    set.int8 = *kernels::int8_avxvnni_kernels();
    set.int8_variant = "avx-vnni";
  } else if (avx2_or_more) {
    set.int8 = *kernels::int8_avx2_kernels();
    set.int8_variant = "avx2";
  }
#endif
  return set;
}

constexpr int kNotForced = -1;
std::atomic<int> forced_isa{kNotForced};

Isa isa_from_environment() {
  const char* value = std::getenv("LUTMUL_ISA");
  if (value == nullptr || *value == '\0') return best_isa();
  const Isa isa = parse_isa(value);
  LUTMUL_CHECK(isa_supported(isa), "LUTMUL_ISA=", value, " is not supported on this CPU (supported: ",
               [] {
                 std::string names;
                 for (Isa s : supported_isas()) names += (names.empty() ? "" : ", ") + isa_name(s);
                 return names;
               }(),
               ")");
  return isa;
}

}  // namespace

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512vbmi: return "avx512vbmi";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : kAllIsas)
    if (name == isa_name(isa)) return isa;
  detail::throw_error("unknown ISA '", name, "' (expected scalar, avx2, avx512, avx512vbmi or neon)");
}

std::vector<Isa> all_isas() { return {kAllIsas.begin(), kAllIsas.end()}; }

// The CPU first: nothing of a level is touched before the CPU is known to run it.
bool isa_supported(Isa isa) { return cpu_can_run(isa) && built(isa); }

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() { return supported_isas().back(); }

Isa active_isa() {
  const int forced = forced_isa.load(std::memory_order_relaxed);
  if (forced != kNotForced) return static_cast<Isa>(forced);
  static const Isa from_environment = isa_from_environment();
  return from_environment;
}

void set_isa(Isa isa) {
  LUTMUL_CHECK(isa_supported(isa), "set_isa: ", isa_name(isa), " is not supported on this CPU");
  forced_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

namespace detail {

const KernelSet& kernels_for(Isa isa) {
  LUTMUL_CHECK(isa_supported(isa), "kernels for ", isa_name(isa), " are not supported on this CPU");
  static std::array<KernelSet, kAllIsas.size()> sets;
  static std::array<std::once_flag, kAllIsas.size()> filled;
  const auto index = static_cast<size_t>(isa);
  std::call_once(filled[index], [&] { sets[index] = fill(isa); });
  return sets[index];
}

const KernelSet& active_kernels() { return kernels_for(active_isa()); }

std::vector<Int8Variant> runnable_int8_variants() {
  std::vector<Int8Variant> out = {{"scalar", kernels::int8_scalar_kernels()}};
#if defined(LUTMUL_HAVE_INT8_AVX2_KERNELS)
  const CpuFeatures& f = cpu_features();
  if (isa_supported(Isa::avx2)) out.push_back({"avx2", *kernels::int8_avx2_kernels()});
  if (isa_supported(Isa::avx2) && f.avxvnni) out.push_back({"avx-vnni (VEX)", *kernels::int8_avxvnni_kernels()});
  if (isa_supported(Isa::avx512) && f.avx512vnni) {
    out.push_back({"avx512 vnni", *kernels::int8_vnni_kernels()});
    out.push_back({"ymm vnni (EVEX)", *kernels::int8_vnni_ymm_evex_kernels()});
  }
#endif
  return out;
}

}  // namespace detail
}  // namespace lutmul
