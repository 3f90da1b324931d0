// Internal: the encoder file's container constants (Encoder::save / load, src/runtime/encoder_file.cpp),
// shared with the fuzz target that writes containers around mutated payloads.
#pragma once

#include <cstdint>

#include "core/file_format.h"

namespace lutmul::runtime {

inline constexpr detail::Magic kEncoderFileMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'E', 'N'};
inline constexpr uint32_t kEncoderFileVersion = 1;

}  // namespace lutmul::runtime
