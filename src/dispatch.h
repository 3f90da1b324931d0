// Internal: the kernel table in use.
#pragma once

#include "kernels/cpu/kernels.h"
#include "lutmul/isa.h"

namespace lutmul::detail {
const kernels::KernelTable& active_kernels();
// Throws lutmul::Error if `isa` is not supported here.
const kernels::KernelTable& kernels_for(Isa isa);
}  // namespace lutmul::detail
