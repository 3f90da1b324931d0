#include "lutmul/core/threading.h"

#include <omp.h>

#include <atomic>

#include "lutmul/core/error.h"

namespace lutmul {
namespace {
std::atomic<int> configured_threads{0};  // 0: not set, use OpenMP's default
}

void set_num_threads(int n) {
  LUTMUL_CHECK(n >= 1, "set_num_threads: n must be at least 1, got ", n);
  configured_threads.store(n);
}

int num_threads() {
  const int n = configured_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace lutmul
