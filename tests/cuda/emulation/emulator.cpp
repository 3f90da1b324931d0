// The CPU emulator's scheduler (see emu/cuda_runtime.h): one fiber per CUDA thread, the
// threads of one block at a time, switching at barriers and warp collectives.
#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "emu/cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace emu {

cudaError_t& last_error();                   // fake_runtime.cpp
size_t dynamic_shared_limit(const void* kernel);  // fake_runtime.cpp: the opted-in maximum

namespace {

constexpr size_t kStackBytes = 256 * 1024;

enum class State { runnable, at_barrier, at_warp_op, done };

struct Fiber {
  ucontext_t context{};
  std::unique_ptr<char[]> stack;
  uint3 thread{};
  int linear = 0;
  State state = State::runnable;
  WarpOp op = WarpOp::sync;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler{};
  Fiber* current = nullptr;
  uint3 index{};
  dim3 block_dim, grid_dim;
  std::vector<unsigned char> shared;
  const std::function<void()>* body = nullptr;
#if defined(__SANITIZE_ADDRESS__)
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
#endif
};

thread_local Block* g_block = nullptr;  // host threads may launch at once

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "CUDA emulator: %s (block %u,%u,%u)\n", what, g_block->index.x, g_block->index.y,
               g_block->index.z);
  std::abort();
}

// Switches from the running fiber back to the scheduler.
void yield() {
  Fiber* self = g_block->current;
#if defined(__SANITIZE_ADDRESS__)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, g_block->scheduler_stack, g_block->scheduler_stack_size);
#endif
  swapcontext(&self->context, &g_block->scheduler);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void fiber_entry() {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &g_block->scheduler_stack, &g_block->scheduler_stack_size);
#endif
  (*g_block->body)();
  g_block->current->state = State::done;
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(nullptr, g_block->scheduler_stack, g_block->scheduler_stack_size);
#endif
  setcontext(&g_block->scheduler);
}

void resume(Fiber& f) {
  g_block->current = &f;
#if defined(__SANITIZE_ADDRESS__)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack.get(), kStackBytes);
#endif
  swapcontext(&g_block->scheduler, &f.context);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// Completes the warp collective all live lanes of warp `w` are waiting in, if they are.
bool release_warp(Block& b, int w) {
  const int begin = 32 * w, end = std::min<int>(begin + 32, static_cast<int>(b.fibers.size()));
  unsigned live = 0;
  for (int i = begin; i < end; ++i) {
    if (b.fibers[i].state == State::done) continue;
    if (b.fibers[i].state != State::at_warp_op) return false;
    live |= 1u << (i - begin);
  }
  if (live == 0) return false;
  const Fiber& first = b.fibers[begin + __builtin_ctz(live)];
  for (int i = begin; i < end; ++i) {
    const Fiber& f = b.fibers[i];
    if (f.state != State::at_warp_op) continue;
    if (f.op != first.op) fail("lanes of a warp reached different collectives");
    if ((f.mask & live) != live || (f.mask & ~live & ((end - begin == 32) ? ~0u : ((1u << (end - begin)) - 1))) != 0)
      fail("a warp collective's mask differs from the lanes that reached it");
  }
  std::vector<uint64_t> values(32, 0);
  for (int i = begin; i < end; ++i) values[i - begin] = b.fibers[i].value;
  for (int i = begin; i < end; ++i) {
    Fiber& f = b.fibers[i];
    if (f.state != State::at_warp_op) continue;
    const int lane = i - begin;
    auto from = [&](int source) {
      if (source < 0 || source >= 32 || !(live & (1u << source))) fail("a shuffle reads an inactive lane");
      return values[source];
    };
    switch (f.op) {
      case WarpOp::sync: break;
      case WarpOp::shfl: f.result = from(f.arg & 31); break;
      case WarpOp::shfl_up: f.result = lane >= f.arg ? from(lane - f.arg) : f.value; break;
      case WarpOp::shfl_xor: f.result = from(lane ^ f.arg); break;
      case WarpOp::all: {
        bool all = true;
        for (int j = 0; j < 32; ++j)
          if (live & (1u << j)) all = all && values[j] != 0;
        f.result = all;
        break;
      }
      case WarpOp::any: {
        bool any = false;
        for (int j = 0; j < 32; ++j)
          if (live & (1u << j)) any = any || values[j] != 0;
        f.result = any;
        break;
      }
      case WarpOp::match_any: {
        unsigned same = 0;
        for (int j = 0; j < 32; ++j)
          if ((live & (1u << j)) && values[j] == f.value) same |= 1u << j;
        f.result = same;
        break;
      }
    }
  }
  for (int i = begin; i < end; ++i)
    if (b.fibers[i].state == State::at_warp_op) b.fibers[i].state = State::runnable;
  return true;
}

void run_block(Block& b, std::mt19937& rng) {
  std::vector<int> order(b.fibers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int i : order)
      if (b.fibers[i].state == State::runnable) resume(b.fibers[i]);
    bool progress = false;
    for (int w = 0; w * 32 < static_cast<int>(b.fibers.size()); ++w) progress = release_warp(b, w) || progress;
    if (progress) continue;
    bool all_done = true, all_at_barrier = true;
    for (const Fiber& f : b.fibers) {
      all_done = all_done && f.state == State::done;
      all_at_barrier = all_at_barrier && (f.state == State::done || f.state == State::at_barrier);
    }
    if (all_done) return;
    if (!all_at_barrier) fail("deadlock: threads wait in different barriers or collectives");
    for (Fiber& f : b.fibers)
      if (f.state == State::at_barrier) f.state = State::runnable;
  }
}

}  // namespace

void misaligned(const void* p, size_t alignment) {
  std::fprintf(stderr, "CUDA emulator: misaligned load of %zu-byte aligned data at %p\n", alignment, p);
  std::abort();
}

const uint3& thread_index() { return g_block->current->thread; }
const uint3& block_index() { return g_block->index; }
const dim3& block_dim() { return g_block->block_dim; }
const dim3& grid_dim() { return g_block->grid_dim; }
void* dynamic_shared() { return g_block->shared.data(); }

void sync_threads() {
  g_block->current->state = State::at_barrier;
  yield();
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg) {
  Fiber* f = g_block->current;
  f->state = State::at_warp_op;
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  yield();
  return f->result;
}

cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
      grid.x > 0x7FFFFFFFu)
    return last_error() = cudaErrorInvalidConfiguration;
  if (shared_bytes > 48 * 1024 && shared_bytes > dynamic_shared_limit(kernel))
    return last_error() = cudaErrorInvalidValue;  // as CUDA: more than 48 KiB needs the opt-in attribute
  static thread_local std::mt19937 rng(12345);
  Block b;
  b.block_dim = block;
  b.grid_dim = grid;
  b.body = &body;
  b.fibers.resize(threads);
  for (uint64_t i = 0; i < threads; ++i) b.fibers[i].stack.reset(new char[kStackBytes]);
  Block* outer = g_block;
  g_block = &b;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        b.index = uint3{x, y, z};
        b.shared.assign(shared_bytes, 0xA5);  // garbage: nothing may rely on its contents
        for (uint64_t i = 0; i < threads; ++i) {
          Fiber& f = b.fibers[i];
          f.state = State::runnable;
          f.linear = static_cast<int>(i);
          f.thread = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>((i / block.x) % block.y),
                           static_cast<unsigned>(i / (uint64_t{block.x} * block.y))};
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = f.stack.get();
          f.context.uc_stack.ss_size = kStackBytes;
          f.context.uc_link = nullptr;
          makecontext(&f.context, fiber_entry, 0);
        }
        run_block(b, rng);
      }
  g_block = outer;
  return cudaSuccess;
}

}  // namespace emu
