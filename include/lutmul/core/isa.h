// Which SIMD kernels run. Chosen once from what the CPU has; the environment variable
// LUTMUL_ISA=scalar|avx2|avx512|avx512vbmi|neon forces a level (an unsupported one is an
// error). avx512 needs AVX-512 F/BW/DQ/VL; avx512vbmi adds VBMI and VNNI (Ice Lake, Zen 4)
// for a scan built on vpermb and vpdpbusd.
#pragma once

#include <string>
#include <vector>

namespace lutmul {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2, neon = 3, avx512vbmi = 4 };

// Name as accepted by LUTMUL_ISA: "scalar", "avx2", "avx512", "avx512vbmi", "neon".
std::string isa_name(Isa isa);
// Parses a name; throws lutmul::Error for an unknown one.
Isa parse_isa(const std::string& name);
// Every level lutmul knows, whether or not this build or CPU has it (for test sweeps).
std::vector<Isa> all_isas();
// True when the CPU (and OS) can run `isa` and this build has kernels for it. The AVX2
// level needs AVX2, FMA and BMI2; AVX-512 adds F, BW, DQ and VL.
bool isa_supported(Isa isa);
// Every supported level, best last.
std::vector<Isa> supported_isas();
// The best level the CPU supports.
Isa best_isa();
// The level in use: set_isa()'s if it was called, else LUTMUL_ISA if set (checked on first
// use), else best_isa().
Isa active_isa();
// Forces a level for this process; throws lutmul::Error if the CPU lacks it.
void set_isa(Isa isa);

}  // namespace lutmul
