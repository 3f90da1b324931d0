// Run-time choice of the kernel table. Built without ISA flags, so it runs on any CPU.
#include "lutmul/isa.h"

#include <atomic>
#include <cstdlib>

#include "dispatch.h"
#include "lutmul/error.h"

namespace lutmul {
namespace {

bool cpu_can_run(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case Isa::avx512vbmi:
      return cpu_can_run(Isa::avx512) && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
    case Isa::neon: return false;
  }
  return false;
#elif defined(__aarch64__)
  return isa == Isa::scalar || isa == Isa::neon;  // NEON is part of AArch64
#else
  return isa == Isa::scalar;
#endif
}

const kernels::KernelTable* built_kernels(Isa isa) {
  switch (isa) {
    case Isa::scalar: return &kernels::scalar_kernels();
#ifdef LUTMUL_HAVE_AVX2_KERNELS
    case Isa::avx2: return kernels::avx2_kernels();
#endif
#ifdef LUTMUL_HAVE_AVX512_KERNELS
    case Isa::avx512: return kernels::avx512_kernels();
#endif
#ifdef LUTMUL_HAVE_AVX512VBMI_KERNELS
    case Isa::avx512vbmi: return kernels::avx512vbmi_kernels();
#endif
#ifdef LUTMUL_HAVE_NEON_KERNELS
    case Isa::neon: return kernels::neon_kernels();
#endif
    default: return nullptr;
  }
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
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512vbmi, Isa::neon})
    if (name == isa_name(isa)) return isa;
  detail::throw_error("unknown ISA '", name, "' (expected scalar, avx2, avx512, avx512vbmi or neon)");
}

bool isa_supported(Isa isa) { return built_kernels(isa) != nullptr && cpu_can_run(isa); }

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::scalar, Isa::neon, Isa::avx2, Isa::avx512, Isa::avx512vbmi})
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
const kernels::KernelTable& active_kernels() { return *built_kernels(active_isa()); }
const kernels::KernelTable& kernels_for(Isa isa) {
  LUTMUL_CHECK(isa_supported(isa), "kernels for ", isa_name(isa), " are not supported on this CPU");
  return *built_kernels(isa);
}
}  // namespace detail

}  // namespace lutmul
