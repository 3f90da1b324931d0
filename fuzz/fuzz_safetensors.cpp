// safetensors files (SafetensorsFile::parse, to_float). Byte 0 picks how the rest is read:
//   even: the whole file, unrepaired (the 8-byte header length included);
//   odd:  "header JSON\0data": this target writes the header length, so a mutation that
//         changes the header's length still reaches the JSON and offset checks.
// Every tensor a parsed file hands out is read whole.
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/io/safetensors.h"

using namespace lutmul;

volatile uint64_t byte_sum;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes = fuzz::safetensors_input(data, size);
  SafetensorsFile file;
  try {
    file = SafetensorsFile::parse(std::move(bytes), "fuzz input");
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  uint64_t sum = 0;
  for (const TensorInfo& t : file.tensors()) {
    if (file.find(t.name) != &t) fuzz::fail("find() does not give back a listed tensor");
    if (static_cast<uint64_t>(t.elements()) * static_cast<uint64_t>(dtype_size(t.dtype)) != t.end - t.begin)
      fuzz::fail("a tensor's bytes are not its elements times its dtype size");
    const uint8_t* p = file.data(t);
    for (uint64_t i = 0; i < t.end - t.begin; ++i) sum += p[i];  // ASan checks every byte is inside
    try {
      const std::vector<float> values = file.to_float(t.name);
      if (values.size() != static_cast<size_t>(t.elements())) fuzz::fail("to_float gave the wrong count");
    } catch (const Error& e) {
      fuzz::rejected(e);
      // not a float dtype, or a non-finite value: both errors by contract
    }
  }
  byte_sum = sum;  // keeps the reads
  return 0;
}
