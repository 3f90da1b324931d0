// The input layout of each fuzz target: how a fuzz input becomes the file its reader gets.
// Header-only, so the C++ suite replays the checked-in crash inputs (tests/cpp/data/fuzz/)
// through exactly the conversion the fuzzer used. The layouts are described at the top of
// each fuzz_*.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/file_format.h"
#include "io/operator_file.h"
#include "runtime/encoder_file.h"

namespace lutmul::fuzz {

// The container of a MADDNESS model file of 0.1 and 0.2 (src/io/maddness_file.cpp).
inline constexpr detail::Magic kLegacyModelMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'M', 'D'};

// The input cut at its first `parts - 1` NUL bytes: JSON text never holds a raw NUL, so a
// fuzz input spells "config\0header\0data" and the mutator may change any part's length.
// Missing parts are empty.
inline std::vector<std::string_view> split_at_nul(const uint8_t* data, size_t size, size_t parts) {
  std::vector<std::string_view> out;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (out.size() + 1 < parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    out.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  out.push_back(rest);
  out.resize(parts);
  return out;
}

// A safetensors file whose 8-byte header length is right whatever the header's length.
inline std::vector<uint8_t> safetensors_bytes(std::string_view header, std::string_view data) {
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  // Empty views may hold null, which memcpy must not get even for 0 bytes.
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

// fuzz_operator_file: byte 0 picks a kind of `kinds` (the rest is its payload), the legacy
// MADDNESS container (byte 1 picks version 1 or 2, the rest is its payload) or a raw file.
inline std::vector<uint8_t> operator_file_input(const uint8_t* data, size_t size, const std::vector<std::string>& kinds) {
  if (size < 1) return {};
  const size_t choice = data[0] % (kinds.size() + 2);
  const uint8_t* rest = data + 1;
  const size_t rest_size = size - 1;
  if (choice < kinds.size()) return detail::operator_file_bytes(kinds[choice], std::vector<uint8_t>(rest, rest + rest_size));
  if (choice == kinds.size()) {
    if (rest_size < 1) return {};
    return detail::wrap_payload(kLegacyModelMagic, 1 + rest[0] % 2, std::vector<uint8_t>(rest + 1, rest + rest_size));
  }
  return {rest, rest + rest_size};
}

// fuzz_maddness_file: byte 0 % 3 picks a "maddness" operator file around the rest, the legacy
// container (byte 1 picks version 1 or 2), or a raw file.
inline std::vector<uint8_t> maddness_file_input(const uint8_t* data, size_t size) {
  if (size < 1) return {};
  const uint8_t* rest = data + 1;
  const size_t rest_size = size - 1;
  switch (data[0] % 3) {
    case 0:
      return detail::operator_file_bytes("maddness", std::vector<uint8_t>(rest, rest + rest_size));
    case 1:
      if (rest_size < 1) return {};
      return detail::wrap_payload(kLegacyModelMagic, 1 + rest[0] % 2, std::vector<uint8_t>(rest + 1, rest + rest_size));
    default:
      return {rest, rest + rest_size};
  }
}

// fuzz_safetensors: byte 0 even, the rest is the whole file; odd, "header JSON\0data" with
// the header length written here.
inline std::vector<uint8_t> safetensors_input(const uint8_t* data, size_t size) {
  if (size < 1) return {};
  if (data[0] % 2 == 0) return {data + 1, data + size};
  const auto parts = split_at_nul(data + 1, size - 1, 2);
  return safetensors_bytes(parts[0], parts[1]);
}

// fuzz_peft_adapter: "adapter_config.json\0safetensors header\0tensor data".
struct PeftFolder {
  std::string config;
  std::vector<uint8_t> weights;
};
inline PeftFolder peft_input(const uint8_t* data, size_t size) {
  const auto parts = split_at_nul(data, size, 3);
  return {std::string(parts[0]), safetensors_bytes(parts[1], parts[2])};
}

// fuzz_encoder_file: byte 0 even, the rest is an encoder file's payload, wrapped here in its
// container (magic, version, length, CRC right); odd, the rest is the whole file.
inline std::vector<uint8_t> encoder_file_input(const uint8_t* data, size_t size) {
  if (size < 1) return {};
  if (data[0] % 2 == 1) return {data + 1, data + size};
  return detail::wrap_payload(runtime::kEncoderFileMagic, runtime::kEncoderFileVersion,
                              std::vector<uint8_t>(data + 1, data + size));
}

}  // namespace lutmul::fuzz
