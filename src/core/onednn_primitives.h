// Internal: what lutmul's oneDNN products share: primitives kept per thread count, and
// weights reordered once into each layout the primitives want.
//
// A oneDNN 2.6 matmul primitive splits its work for the OpenMP thread count current when it
// is created and runs with that many threads whatever the setting when it executes: a bf16
// product created at one thread ran on one thread when called at two (2048 × 1536 × 384 on
// Sapphire Rapids: 3.35 against 2.27 ms), and one created at two would run on two for a caller
// asking for one. So each product makes its primitives per thread count, at the first call
// with that count, inside an OpenMpThreadsForCall scope of it.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/sgemm.h"

namespace lutmul::detail {

// The weights in every layout asked for, each reordered once from the first copy. Not
// synchronised: PerThreadCount's lock guards it.
class PackedWeights {
 public:
  // A copy of `plain` (needed only during this call) in `first_layout`.
  PackedWeights(const dnnl::memory& plain, const dnnl::memory::desc& first_layout)
      : first_(first_layout, plain.get_engine()) {
    reorder(plain, first_);
  }

  const dnnl::memory& in(const dnnl::memory::desc& layout) {
    if (first_.get_desc() == layout) return first_;
    for (const dnnl::memory& p : others_)
      if (p.get_desc() == layout) return p;
    others_.emplace_back(layout, first_.get_engine());
    reorder(first_, others_.back());
    return others_.back();
  }

 private:
  static void reorder(const dnnl::memory& from, dnnl::memory& to) {
    dnnl::stream stream(to.get_engine());
    dnnl::reorder(from, to).execute(stream, const_cast<dnnl::memory&>(from), to);
    stream.wait();
  }

  dnnl::memory first_;
  std::vector<dnnl::memory> others_;
};

// One T per thread count (and per `variant`, a number the caller gives each kind of T it
// makes, such as a primitive's post-ops), made by make(threads) under
// OpenMpThreadsForCall(threads) at the first get() with that key and kept (never changed)
// from then on. Safe to call concurrently; make runs under the lock.
template <class T>
class PerThreadCount {
 public:
  template <class Make>
  const T& get(int threads, Make&& make, int variant = 0) const {
    const std::lock_guard<std::mutex> lock(mutex_);
    const std::pair<int, int> key(threads, variant);
    auto it = made_.find(key);
    if (it == made_.end()) {
      const OpenMpThreadsForCall scope(threads);
      it = made_.emplace(key, std::make_unique<const T>(make(threads))).first;
    }
    return *it->second;
  }

 private:
  mutable std::mutex mutex_;
  mutable std::map<std::pair<int, int>, std::unique_ptr<const T>> made_;
};

}  // namespace lutmul::detail
