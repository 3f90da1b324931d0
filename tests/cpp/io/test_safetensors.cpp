// The safetensors reader: valid files read back exactly in every float dtype, and every
// malformed or lying header is a lutmul::Error that says what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "lutmul/core/error.h"
#include "lutmul/io/safetensors.h"
#include "safetensors_writer.h"

namespace lutmul {
namespace {

using testing::float_bytes;
using testing::RawTensor;
using testing::safetensors_file;

std::vector<uint8_t> u16_bytes(const std::vector<uint16_t>& values) {
  std::vector<uint8_t> out;
  for (uint16_t v : values) {
    out.push_back(static_cast<uint8_t>(v & 0xff));
    out.push_back(static_cast<uint8_t>(v >> 8));
  }
  return out;
}

// Expects parse() to throw lutmul::Error whose message contains `fragment`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    SafetensorsFile::parse(bytes, "case.safetensors");
    FAIL() << "accepted a malformed file; expected an error containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("case.safetensors"), std::string::npos) << e.what();
  }
}

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  return safetensors_file(header, std::vector<uint8_t>(data_bytes, 0));
}

TEST(Safetensors, ReadsEveryFloatDtypeBack) {
  const std::vector<float> a = {1.5f, -2.25f, 3.f, 1e-30f, -0.f, 65504.f};
  const std::vector<double> d = {0.1, -1e10};
  std::vector<uint8_t> d_bytes(d.size() * 8);
  std::memcpy(d_bytes.data(), d.data(), d_bytes.size());
  const std::vector<RawTensor> tensors = {
      {"a", "F32", {2, 3}, float_bytes(a)},
      {"h", "F16", {4}, u16_bytes({0x3c00, 0xc000, 0x0001, 0x7bff})},
      {"b", "BF16", {1, 2}, u16_bytes({0x3f80, 0xc0a0})},
      {"d", "F64", {2}, d_bytes},
      {"empty", "F32", {0, 7}, {}},
      {"scalar", "I32", {}, {7, 0, 0, 0}},
  };
  const std::string path = (std::filesystem::temp_directory_path() / "lutmul_test_read.safetensors").string();
  testing::write_bytes(path, safetensors_file(tensors, "{\"format\":\"pt\"}"));
  const SafetensorsFile file = SafetensorsFile::read(path);
  std::remove(path.c_str());

  ASSERT_EQ(file.tensors().size(), 6u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.tensors()[0].name, "a");  // data order
  EXPECT_EQ(file.tensor("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file.to_float("a"), a);
  EXPECT_EQ(file.to_float("h"), (std::vector<float>{1.f, -2.f, std::ldexp(1.f, -24), 65504.f}));
  EXPECT_EQ(file.to_float("b"), (std::vector<float>{1.f, -5.f}));
  EXPECT_EQ(file.to_float("d"), (std::vector<float>{0.1f, -1e10f}));
  EXPECT_TRUE(file.to_float("empty").empty());
  EXPECT_EQ(file.tensor("scalar").elements(), 1);
  EXPECT_EQ(file.tensor("scalar").dtype, TensorDType::I32);
  EXPECT_EQ(file.data(file.tensor("scalar"))[0], 7);
  EXPECT_EQ(file.find("missing"), nullptr);
  EXPECT_THROW(file.tensor("missing"), Error);
  EXPECT_THROW(file.to_float("scalar"), Error);  // integers do not convert
}

TEST(Safetensors, HalfWidensExactlyForEveryBitPattern) {
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
  EXPECT_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.f, -24));  // largest subnormal
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.f, -14));     // smallest normal
#ifdef __FLT16_MAX__
  // The compiler's own _Float16 (software conversion in libgcc) as an independent reference.
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    _Float16 h;
    const auto b16 = static_cast<uint16_t>(bits);
    std::memcpy(&h, &b16, 2);
    const float expected = static_cast<float>(h), got = half_to_float(b16);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(got)) << bits;
    } else {
      ASSERT_EQ(std::memcmp(&expected, &got, 4), 0) << "bits 0x" << std::hex << bits;
    }
  }
#endif
  EXPECT_EQ(bfloat16_to_float(0x3f80), 1.f);
  EXPECT_EQ(bfloat16_to_float(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bfloat16_to_float(0x0001), std::ldexp(1.f, -133));
}

TEST(Safetensors, TruncatedFilesAreRejected) {
  const std::vector<uint8_t> good = safetensors_file({{"w", "F32", {4, 4}, float_bytes(std::vector<float>(16, 1.f))}});
  expect_rejected({1, 2, 3}, "too short");
  // Cut inside the header, then inside the data.
  expect_rejected(std::vector<uint8_t>(good.begin(), good.begin() + 20), "runs past the end");
  expect_rejected(std::vector<uint8_t>(good.begin(), good.end() - 4), "run past the end of the data");
  // Trailing bytes that no tensor claims.
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  expect_rejected(longer, "belong to no tensor");
}

TEST(Safetensors, AbsurdHeaderLengthsAreRejected) {
  std::vector<uint8_t> bytes = safetensors_file({{"w", "F32", {1}, float_bytes({1.f})}});
  for (int i = 0; i < 8; ++i) bytes[i] = 0xff;  // 2^64 − 1
  expect_rejected(bytes, "larger than");
  for (int i = 0; i < 8; ++i) bytes[i] = 0;
  bytes[3] = 0x10;  // 256 MiB: under no limit of the file, over the header cap
  expect_rejected(bytes, "larger than");
  for (int i = 0; i < 8; ++i) bytes[i] = 0;  // zero-length header
  expect_rejected(bytes, "must be a JSON object");
}

TEST(Safetensors, LyingHeadersAreRejected) {
  const std::string f32 = "\"dtype\":\"F32\"";
  // Offsets past the end of the data.
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[4],\"data_offsets\":[0,32]}}", 16), "run past the end");
  // Shape × dtype ≠ bytes.
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[3],\"data_offsets\":[0,16]}}", 16), "needs 3 x 4 bytes");
  expect_rejected(with_header("{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16), "needs 4 x 2");
  // Overlapping tensors, and a hole between two.
  expect_rejected(with_header("{\"a\":{" + f32 + ",\"shape\":[4],\"data_offsets\":[0,16]}," + "\"b\":{" + f32 +
                                  ",\"shape\":[4],\"data_offsets\":[8,24]}}",
                              24),
                  "overlaps");
  expect_rejected(with_header("{\"a\":{" + f32 + ",\"shape\":[4],\"data_offsets\":[0,16]}," + "\"b\":{" + f32 +
                                  ",\"shape\":[2],\"data_offsets\":[20,28]}}",
                              28),
                  "belong to no tensor");
  // The same bytes claimed twice.
  expect_rejected(with_header("{\"a\":{" + f32 + ",\"shape\":[4],\"data_offsets\":[0,16]}," + "\"b\":{" + f32 +
                                  ",\"shape\":[4],\"data_offsets\":[0,16]}}",
                              16),
                  "overlaps");
  // End before begin; a shape that overflows; a size that overflows.
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[0],\"data_offsets\":[8,4]}}", 16), "end before");
  expect_rejected(
      with_header("{\"w\":{" + f32 + ",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", 16),
      "too many elements");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}}", 16),
                  "needs 4611686018427387904 x 4");
}

TEST(Safetensors, MalformedHeadersAreRejected) {
  const std::string f32 = "\"dtype\":\"F32\"";
  expect_rejected(with_header("{\"w\": [1, 2", 0), "not valid JSON");
  expect_rejected(with_header("[1, 2]", 0), "starting with '{'");
  expect_rejected(with_header("{\"w\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "unknown dtype");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "non-negative integer");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4), "non-negative integer");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[1]}}", 4), "needs dtype, shape and data_offsets");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[1],\"data_offsets\":[0]}}", 4), "[begin, end]");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4), "unknown field");
  expect_rejected(with_header("{\"w\":3}", 0), "must be an object");
  expect_rejected(with_header("{\"__metadata__\":{\"k\":1}}", 0), "must be a string");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[1],\"data_offsets\":[0,4]}," + "\"w\":{" + f32 +
                                  ",\"shape\":[1],\"data_offsets\":[4,8]}}",
                              8),
                  "repeats the key \"w\"");
  expect_rejected(with_header("{\"w\":{" + f32 + ",\"shape\":[[[[[1]]]]],\"data_offsets\":[0,4]}}", 4), "nests deeper");
  // A duplicate key inside one tensor's entry, too.
  expect_rejected(with_header("{\"w\":{" + f32 + "," + f32 + ",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "repeats");
}

TEST(Safetensors, NonFiniteValuesAndBadPathsAreErrors) {
  const SafetensorsFile file = SafetensorsFile::parse(safetensors_file({{"w", "F32", {2}, float_bytes({1.f, NAN})}}));
  EXPECT_THROW(file.to_float("w"), Error);
  EXPECT_THROW(SafetensorsFile::read("/nonexistent/lutmul.safetensors"), Error);
  EXPECT_THROW(SafetensorsFile::read(std::filesystem::temp_directory_path().string()), Error);
  // An empty file with an empty header is valid.
  EXPECT_TRUE(SafetensorsFile::parse(safetensors_file(std::vector<RawTensor>{})).tensors().empty());
}

}  // namespace
}  // namespace lutmul
