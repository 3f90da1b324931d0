// The runtime's model-folder config (runtime::EncoderConfig::parse on config.json text):
// every field checked, unsupported architectures refused by name. What parses must write
// itself back (to_json) to a text that parses to the same config.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/runtime.h"

using namespace lutmul;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  runtime::EncoderConfig config;
  try {
    config = runtime::EncoderConfig::parse(text, "config.json");
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  const runtime::EncoderConfig again = runtime::EncoderConfig::parse(config.to_json(), "to_json");
  if (again.to_json() != config.to_json() || again.hidden_size != config.hidden_size ||
      again.layer_norm_eps != config.layer_norm_eps || again.head_dim() != config.head_dim())
    fuzz::fail("a parsed config written back by to_json parses to another config");
  return 0;
}
