// Shared by the fuzz targets and the seed writer: the checks run on whatever a reader
// accepts (the input layouts are in fuzz_inputs.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_inputs.h"
#include "lutmul/operators/linear_operator.h"
#include "lutmul/operators/maddness.h"

namespace lutmul::fuzz {

// The same input joined back from its parts (what the seed writer emits).
std::string join_with_nul(const std::vector<std::string>& parts);

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
