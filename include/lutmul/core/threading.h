// The number of threads lutmul's own parallel loops use (OpenMP underneath).
#pragma once

namespace lutmul {

// Sets the thread count for lutmul calls made after it; n < 1 is an error.
void set_num_threads(int n);
// The thread count in use: set_num_threads(), else OMP_NUM_THREADS, else all cores.
int num_threads();

}  // namespace lutmul
