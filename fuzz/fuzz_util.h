// Shared by the fuzz targets and the seed writer: how a fuzz input is cut into the parts a
// target rebuilds a file from, and the checks run on whatever a reader accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lutmul/operators/linear_operator.h"
#include "lutmul/operators/maddness.h"

namespace lutmul::fuzz {

// The container of a MADDNESS model file of 0.1 and 0.2 (src/io/maddness_file.cpp).
inline constexpr char kLegacyModelMagic[8] = {'L', 'U', 'T', 'M', 'U', 'L', 'M', 'D'};

// The input cut at its first `parts - 1` NUL bytes: JSON text never holds a raw NUL, so a
// fuzz input spells "config\0header\0data" and the mutator may change any part's length.
// Missing parts are empty.
std::vector<std::string_view> split_at_nul(const uint8_t* data, size_t size, size_t parts);
// The same joined back (what the seed writer emits).
std::string join_with_nul(const std::vector<std::string>& parts);

// A safetensors file whose 8-byte header length is right whatever the header's length.
std::vector<uint8_t> safetensors_bytes(std::string_view header, std::string_view data);

// Whatever a reader accepted must be usable: a forward on a few rows (when the operator is
// small enough to run within the fuzzer's memory limit) and a save that reads back to the
// same bytes. A failure here is a bug, not a bad input, so it aborts.
void exercise(const LinearOperator& op);
void exercise(const Maddness& model);

// A rejected input: printed when LUTMUL_FUZZ_VERBOSE is set (to see why a seed or a crash
// input stops where it does), silent otherwise.
void rejected(const std::exception& error);

// Aborts with a message: the fuzzer records it as a crash.
[[noreturn]] void fail(const char* what);

}  // namespace lutmul::fuzz
