// MADDNESS model files (Maddness::deserialize, is_saved_model). The input is a payload and
// this target writes the container around it, sizes and CRC-32 right, so mutations reach the
// model parser:
//   byte 0 % 3 == 0: the rest is a model payload in an operator file of kind "maddness";
//   byte 0 % 3 == 1: byte 1 picks format version 1 or 2, the rest is the payload of a 0.1/0.2
//                    model container (magic LUTMULMD);
//   byte 0 % 3 == 2: the rest is the whole file, unrepaired.
// What loads is run and saved again (fuzz_util.h).
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/operators/maddness.h"

using namespace lutmul;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> file = fuzz::maddness_file_input(data, size);
  bool saved_model = false;
  try {
    saved_model = Maddness::is_saved_model(file.data(), file.size());
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  (void)saved_model;
  Maddness model;
  try {
    model = Maddness::deserialize(file.data(), file.size());
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;
  }
  fuzz::exercise(model);  // outside the try: an Error from a model that loaded is a bug
  return 0;
}
