// Forces a helper inline where GCC's growth limits for a large translation unit would call it
// out of line: a tile of 16 vectors passed to an out-of-line transpose goes through the stack.
// Measured on the VBMI scans (docs/experiments.md, "Sapphire Rapids, third session"), whose
// file holds every MADDNESS kernel of its ISA.
#pragma once

#define LUTMUL_KERNEL_INLINE inline __attribute__((always_inline))
