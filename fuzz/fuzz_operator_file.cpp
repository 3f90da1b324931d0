// Operator files (LinearOperator::deserialize), every kind. The container's checksum would
// reject almost every mutated file before a kind's parser saw it, so the input is a payload
// and this target writes the container around it, sizes and CRC-32 right:
//   byte 0 picks, over operator_kinds() and two more choices,
//     a kind:      the rest is that kind's payload, wrapped in an operator file;
//     legacy:      byte 1 picks format version 1 or 2, the rest is the payload of a 0.1/0.2
//                  MADDNESS model container (magic LUTMULMD);
//     raw:         the rest is the whole file, unrepaired (the container's own checks).
// What loads is run and saved again (fuzz_util.h).
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/operators/factory.h"

using namespace lutmul;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);  // one thread: deterministic, and no pool start-up in every run
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kinds = operator_kinds();
  const std::vector<uint8_t> file = fuzz::operator_file_input(data, size, kinds);
  std::unique_ptr<LinearOperator> op;
  try {
    op = LinearOperator::deserialize(file.data(), file.size());
  } catch (const Error& e) {
    fuzz::rejected(e);
    return 0;  // rejected with a message: what a bad file should get
  }
  fuzz::exercise(*op);
  return 0;
}
