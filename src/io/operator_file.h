// Internal: the operator file, the one file format of the library. A container
// (src/core/file_format.h, magic "LUTMULOP", CRC-32) around the operator's kind and its payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lutmul::detail {

// Version 2 (0.3): a "maddness" payload is the model's state (0.1 and 0.2 nested a whole
// MADDNESS model file there, which is still read). Every other kind's payload is unchanged.
// Version 3: an "int8" payload may end with smoothing factors. Written only for such
// operators (LinearOperator::file_version), so that every other file stays readable by 0.3.
constexpr uint32_t kOperatorFileVersion = 3;
constexpr uint32_t kPlainOperatorFileVersion = 2;
constexpr uint32_t kOldestOperatorFileVersion = 1;

std::vector<uint8_t> operator_file_bytes(const std::string& kind, const std::vector<uint8_t>& payload,
                                         uint32_t version = kPlainOperatorFileVersion);

struct OperatorFileContents {
  std::string kind;
  std::vector<uint8_t> payload;
};
// Checks the container (magic, version, length, checksum) and returns what it holds.
OperatorFileContents read_operator_file(const uint8_t* data, size_t size);

}  // namespace lutmul::detail
