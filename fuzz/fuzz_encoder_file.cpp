// Encoder files (runtime::Encoder::load on a file written by Encoder::save: config text,
// pooling, embeddings, LayerNorms, every layer's operator file, metadata). Input layout in
// fuzz_inputs.h (encoder_file_input): a payload whose container this target repairs, or a
// raw file. Encoder::load reads a path, so each input goes through a file of this process.
// What loads must embed a short batch, and save to a file that loads and saves to the same bytes.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/runtime.h"

using namespace lutmul;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const char* name) {
  const fs::path shm("/dev/shm");
  const fs::path dir = fs::is_directory(shm) ? shm : fs::temp_directory_path();
  return dir / ("lutmul_fuzz_" + std::string(name) + "_" + std::to_string(::getpid()));
}

std::vector<uint8_t> read_back(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path input = scratch("encoder_in"), again = scratch("encoder_again");
  const std::vector<uint8_t> file = fuzz::encoder_file_input(data, size);
  {
    std::ofstream out(input, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  }
  std::shared_ptr<runtime::Encoder> encoder;
  try {
    encoder = runtime::Encoder::load(input.string());
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  // Loaded: a batch of two short sequences (the model may be big; a few tokens keep it cheap).
  const int64_t length = std::min<int64_t>(3, encoder->config().max_position_embeddings);
  const std::vector<int32_t> ids(static_cast<size_t>(2 * length), 0);
  const std::vector<int64_t> lengths = {length, length};
  std::vector<float> out(static_cast<size_t>(2 * encoder->hidden_size()));
  if (static_cast<double>(encoder->bytes()) < 64e6) {
    try {
      encoder->embed(ids.data(), lengths.data(), 2, out.data());
    } catch (const Error&) {
      // Finite weights large enough to overflow are refused by the operators' contract.
    }
  }
  // A save writes the canonical form (config.json text as to_json writes it, metadata sorted by
  // name), so the first save may differ from a hand-made input; from then on load and save
  // must be a fixed point.
  encoder->save(again.string(), encoder->metadata());
  const std::vector<uint8_t> saved = read_back(again);
  const auto reloaded = runtime::Encoder::load(again.string());
  reloaded->save(again.string(), reloaded->metadata());
  if (read_back(again) != saved) fuzz::fail("an encoder file saved, loaded and saved again changed");
  if (reloaded->metadata() != encoder->metadata() || reloaded->bytes() != encoder->bytes())
    fuzz::fail("an encoder file saved and loaded again holds another encoder");
  return 0;
}
