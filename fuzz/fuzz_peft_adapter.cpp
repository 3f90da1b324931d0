// PEFT adapter folders (peft_modules, read_peft_adapter, LoraLinear::load_peft). The input is
// "adapter_config.json\0safetensors header\0tensor data"; this target writes the folder
// (the safetensors header length made right) and reads it the ways a program would: the
// module list, the only adapter, each module by name, and a load into a LoRA operator that
// then runs.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/io/peft_adapter.h"
#include "lutmul/operators/dense_linear.h"
#include "lutmul/operators/lora_linear.h"

using namespace lutmul;
namespace fs = std::filesystem;

namespace {

std::string folder;  // one per process, rewritten for every input

void remove_folder() { fs::remove_all(folder); }

void write(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) fuzz::fail("cannot write the adapter folder");
}

// A dense base of the adapter's shape, when small, so that load_peft and forward run.
void load_into_lora(const PeftAdapter& adapter) {
  if (adapter.k * adapter.m > (int64_t{1} << 16)) return;
  const std::vector<float> w(static_cast<size_t>(adapter.k * adapter.m), 0.5f);
  LoraLinear lora(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), adapter.k, adapter.m)));
  try {
    lora.load_peft(folder, "fuzzed", adapter.module);
  } catch (const Error& e) {
    fuzz::rejected(e);
    return;  // add_adapter's own checks (a huge alpha/r, ...) are errors by contract
  }
  fuzz::exercise(lora);  // outside the try: an Error from an adapter that loaded is a bug
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);
  // In memory where the system has it: two small files are written for every input.
  const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  std::string pattern = (base / "lutmul-fuzz-peft-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) fuzz::fail("cannot create a temporary folder");
  folder = pattern;
  std::atexit(remove_folder);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fuzz::PeftFolder input = fuzz::peft_input(data, size);
  write(fs::path(folder) / "adapter_config.json", input.config.data(), input.config.size());
  write(fs::path(folder) / "adapter_model.safetensors", input.weights.data(), input.weights.size());

  std::vector<std::string> modules;
  try {
    modules = peft_modules(folder);
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  // The first module by name and the only one (if there is one) reach every path; each read
  // parses both files again, so more would only slow the run.
  if (modules.size() > 1) modules.resize(1);
  modules.push_back("");
  for (const std::string& module : modules) {
    PeftAdapter adapter;
    try {
      adapter = read_peft_adapter(folder, module);
    } catch (const Error& e) {
      fuzz::rejected(e);
      continue;
    }
    if (adapter.rank < 1 || adapter.k < 1 || adapter.m < 1 ||
        adapter.a.size() != static_cast<size_t>(adapter.k * adapter.rank) ||
        adapter.b.size() != static_cast<size_t>(adapter.rank * adapter.m))
      fuzz::fail("an adapter read back with sizes that disagree");
    load_into_lora(adapter);
  }
  return 0;
}
