#include "lutmul/operators/lora_linear.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/blas.h"
#include "core/file_format.h"
#include "core/finite.h"
#include "core/kernel_registry.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/io/peft_adapter.h"
#include "lutmul/operators/dense_linear.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

// One immutable version of the operator: replaced whole by every add, remove, merge, unmerge.
struct LoraLinear::State {
  std::shared_ptr<const LinearOperator> base;
  std::vector<std::shared_ptr<const LoraAdapter>> by_id;  // index = id; null once removed
  std::vector<uint8_t> merged;                             // by id
  std::map<std::string, int32_t> ids;
};

std::vector<float> LoraAdapter::b() const {
  const int64_t panel = kernels::kLoraPanel;
  std::vector<float> out(static_cast<size_t>(rank * m));
  for (int64_t s = 0; s < rank; ++s)
    for (int64_t j = 0; j < m; ++j) out[s * m + j] = b_panels[j / panel * panel * rank + s * panel + j % panel];
  return out;
}

namespace {

// A file's LoRA operators may nest (a LoRA base of a LoRA base ...) at most this deep.
constexpr int kMaxNestedLora = 16;
constexpr int64_t kWorkRows = 64;  // rows of one segment per parallel work item
// Multiply-adds below which one more thread does not pay. The adapter term is a few per cent
// of the base's work; a parallel region for it left libgomp's idle workers spinning into the
// base's next OpenBLAS call, which with 2 cores made a 2-thread forward 2-3x slower than the
// base alone (see docs/design.md).
constexpr double kMacsPerThread = 32e6;

}  // namespace

LoraLinear::LoraLinear(std::shared_ptr<const LinearOperator> base)
    : SizedLinearOperator("lora") {
  LUTMUL_CHECK(base != nullptr, "LoraLinear: the base operator is null");
  k_ = base->input_dim();
  m_ = base->output_dim();
  auto state = std::make_shared<State>();
  state->base = std::move(base);
  state_ = std::move(state);
}

std::shared_ptr<const LoraLinear::State> LoraLinear::snapshot() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return state_;
}

void LoraLinear::publish(std::shared_ptr<const State> next) {
  std::lock_guard<std::mutex> lock(state_mutex_);
  state_.swap(next);
  // `next` now holds the old state; callers keep their own reference to it so that it is
  // released after they unlock (a base owned from Python takes the GIL when released).
}

std::shared_ptr<const LinearOperator> LoraLinear::base() const { return snapshot()->base; }

int64_t LoraLinear::bytes() const {
  const auto state = snapshot();
  int64_t total = state->base->bytes();
  for (const auto& adapter : state->by_id)
    if (adapter) total += static_cast<int64_t>((adapter->a.size() + adapter->b_panels.size() + 1) * sizeof(float));
  return total;
}

double LoraLinear::multiply_adds_per_row() const { return snapshot()->base->multiply_adds_per_row(); }

int32_t LoraLinear::add_adapter(const std::string& name, const MatrixView& A, const MatrixView& B, float alpha) {
  LUTMUL_CHECK(!name.empty(), "LoraLinear.add_adapter: the name is empty");
  check_view(A, "A");
  check_view(B, "B");
  LUTMUL_CHECK(A.rows == k_ && A.cols >= 1 && B.rows == A.cols && B.cols == m_, "LoraLinear.add_adapter(\"", name,
               "\"): A must be K x r = ", k_, " x r and B r x M = r x ", m_, " with r >= 1; got A ", A.rows, " x ", A.cols,
               " and B ", B.rows, " x ", B.cols);
  LUTMUL_CHECK(std::isfinite(alpha), "LoraLinear.add_adapter(\"", name, "\"): alpha must be finite, got ", alpha);
  check_finite(A, "A");
  check_finite(B, "B");
  auto adapter = std::make_shared<LoraAdapter>();
  adapter->name = name;
  adapter->rank = A.cols;
  adapter->alpha = alpha;
  adapter->m = m_;
  adapter->a.resize(static_cast<size_t>(k_ * adapter->rank));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t s = 0; s < adapter->rank; ++s) adapter->a[i * adapter->rank + s] = A.at(i, s);
  const int64_t r = adapter->rank, panel = kernels::kLoraPanel;
  adapter->b_panels.assign(static_cast<size_t>(kernels::lora_b_panel_floats(r, m_)), 0.f);
  for (int64_t s = 0; s < r; ++s)
    for (int64_t j = 0; j < m_; ++j) adapter->b_panels[j / panel * panel * r + s * panel + j % panel] = B.at(s, j);

  std::shared_ptr<const State> old;
  std::lock_guard<std::mutex> lock(writer_mutex_);
  old = snapshot();
  LUTMUL_CHECK(old->ids.count(name) == 0, "LoraLinear.add_adapter: an adapter called \"", name, "\" is already loaded");
  LUTMUL_CHECK(old->by_id.size() < static_cast<size_t>(std::numeric_limits<int32_t>::max()),
               "LoraLinear.add_adapter: adapter ids are exhausted");
  auto next = std::make_shared<State>(*old);
  adapter->id = static_cast<int32_t>(next->by_id.size());
  next->by_id.push_back(adapter);
  next->merged.push_back(0);
  next->ids[name] = adapter->id;
  publish(std::move(next));
  return adapter->id;
}

void LoraLinear::remove_adapter(const std::string& name) {
  std::shared_ptr<const State> old;
  std::lock_guard<std::mutex> lock(writer_mutex_);
  old = snapshot();
  const auto it = old->ids.find(name);
  LUTMUL_CHECK(it != old->ids.end(), "LoraLinear.remove_adapter: no adapter called \"", name, "\"");
  LUTMUL_CHECK(!old->merged[it->second], "LoraLinear.remove_adapter: \"", name,
               "\" is merged into the base; unmerge it first");
  auto next = std::make_shared<State>(*old);
  next->by_id[it->second] = nullptr;
  next->ids.erase(name);
  publish(std::move(next));
}

int32_t LoraLinear::load_peft(const std::string& directory, const std::string& name, const std::string& module) {
  const PeftAdapter peft = read_peft_adapter(directory, module);
  LUTMUL_CHECK(peft.k == k_ && peft.m == m_, directory, ": module \"", peft.module, "\" adapts a ", peft.k, " -> ",
               peft.m, " layer, but this operator is ", k_, " -> ", m_);
  return add_adapter(name, MatrixView::row_major(peft.a.data(), peft.k, peft.rank),
                     MatrixView::row_major(peft.b.data(), peft.rank, peft.m), peft.alpha);
}

int32_t LoraLinear::adapter_id(const std::string& name) const {
  const auto state = snapshot();
  const auto it = state->ids.find(name);
  LUTMUL_CHECK(it != state->ids.end(), "LoraLinear: no adapter called \"", name, "\"");
  return it->second;
}

std::vector<std::string> LoraLinear::adapter_names() const {
  const auto state = snapshot();
  std::vector<std::string> names;
  for (const auto& adapter : state->by_id)
    if (adapter) names.push_back(adapter->name);
  return names;
}

std::shared_ptr<const LoraAdapter> LoraLinear::adapter(const std::string& name) const {
  const auto state = snapshot();
  const auto it = state->ids.find(name);
  LUTMUL_CHECK(it != state->ids.end(), "LoraLinear: no adapter called \"", name, "\"");
  return state->by_id[it->second];
}

bool LoraLinear::merged(const std::string& name) const {
  const auto state = snapshot();
  const auto it = state->ids.find(name);
  LUTMUL_CHECK(it != state->ids.end(), "LoraLinear: no adapter called \"", name, "\"");
  return state->merged[it->second] != 0;
}

namespace {

// A new dense base W + sign·(alpha/r)·A·B, computed in double and rounded once, so that
// merging then unmerging restores W to within float rounding. DenseLinear checks the result
// is finite (a huge adapter could overflow float).
std::shared_ptr<const DenseLinear> fold_adapter(const DenseLinear& dense, const LoraAdapter& adapter, int64_t k,
                                                int64_t m, double sign) {
  const std::vector<float> b_rows = adapter.b();
  std::vector<double> a(adapter.a.begin(), adapter.a.end()), b(b_rows.begin(), b_rows.end());
  std::vector<double> w(dense.weights().begin(), dense.weights().end());
  {
    detail::use_single_threaded_blas();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(m),
                static_cast<int>(adapter.rank), sign * static_cast<double>(adapter.alpha) / static_cast<double>(adapter.rank),
                a.data(), static_cast<int>(adapter.rank), b.data(), static_cast<int>(m), 1.0, w.data(), static_cast<int>(m));
  }
  const std::vector<float> folded(w.begin(), w.end());
  return std::make_shared<DenseLinear>(MatrixView::row_major(folded.data(), k, m), dense.bias().data());
}

}  // namespace

void LoraLinear::merge(const std::string& name) {
  std::shared_ptr<const State> old;
  std::lock_guard<std::mutex> lock(writer_mutex_);
  old = snapshot();
  const auto it = old->ids.find(name);
  LUTMUL_CHECK(it != old->ids.end(), "LoraLinear.merge: no adapter called \"", name, "\"");
  LUTMUL_CHECK(!old->merged[it->second], "LoraLinear.merge: \"", name, "\" is already merged");
  const auto* dense = dynamic_cast<const DenseLinear*>(old->base.get());
  LUTMUL_CHECK(dense != nullptr, "LoraLinear.merge: merging needs a dense base; this base is \"", old->base->kind(), "\"");
  auto next = std::make_shared<State>(*old);
  next->base = fold_adapter(*dense, *old->by_id[it->second], k_, m_, 1.0);
  next->merged[it->second] = 1;
  publish(std::move(next));
}

void LoraLinear::unmerge(const std::string& name) {
  std::shared_ptr<const State> old;
  std::lock_guard<std::mutex> lock(writer_mutex_);
  old = snapshot();
  const auto it = old->ids.find(name);
  LUTMUL_CHECK(it != old->ids.end(), "LoraLinear.unmerge: no adapter called \"", name, "\"");
  LUTMUL_CHECK(old->merged[it->second], "LoraLinear.unmerge: \"", name, "\" is not merged");
  const auto* dense = dynamic_cast<const DenseLinear*>(old->base.get());  // merged implies dense
  auto next = std::make_shared<State>(*old);
  next->base = fold_adapter(*dense, *old->by_id[it->second], k_, m_, -1.0);
  next->merged[it->second] = 0;
  publish(std::move(next));
}

void LoraLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  snapshot()->base->forward(X, Y, ldy);
}

void LoraLinear::forward(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy) const {
  run(X, adapter_ids, Y, ldy, true, false);
}

Matrix LoraLinear::forward(const MatrixView& X, const int32_t* adapter_ids) const {
  Matrix Y(X.rows, m_);
  forward(X, adapter_ids, Y.data(), m_);
  return Y;
}

void LoraLinear::add_adapter_terms(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy) const {
  run(X, adapter_ids, Y, ldy, false, false);
}

void LoraLinear::add_adapter_terms_reference(const MatrixView& X, const int32_t* adapter_ids, float* Y,
                                             int64_t ldy) const {
  run(X, adapter_ids, Y, ldy, false, true);
}

void LoraLinear::run(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy, bool with_base,
                     bool reference) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  const auto state = snapshot();  // this call's adapters and base, whatever writers do meanwhile
  const int64_t n = X.rows, slots = static_cast<int64_t>(state->by_id.size());

  // Group rows by adapter: a counting sort over ids (merged adapters and kNoAdapter skipped).
  std::vector<int64_t> start(static_cast<size_t>(slots) + 1, 0);
  std::vector<uint8_t> base_only(static_cast<size_t>(n), 1);  // rows no adapter kernel reads
  if (adapter_ids != nullptr)
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = adapter_ids[i];
      if (id == kNoAdapter) continue;
      LUTMUL_CHECK(id >= 0 && id < slots && state->by_id[id] != nullptr, "lora forward: row ", i, " names adapter id ",
                   id, ", which is not loaded (removed, or never added)");
      if (!state->merged[id]) {
        ++start[id + 1];
        base_only[i] = 0;
      }
    }
  // Rows of the adapters are checked by the kernels (through X·A); the others here, since a
  // base may not check its input.
  if (with_base) {
    detail::check_rows_finite(X, &base_only, "lora");
    state->base->forward(X, Y, ldy);
  }
  for (int64_t s = 0; s < slots; ++s) start[s + 1] += start[s];
  const int64_t grouped = start[slots];
  if (grouped == 0) return;
  std::vector<int64_t> order(static_cast<size_t>(grouped));
  {
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t id = adapter_ids[i];
      if (id != kNoAdapter && !state->merged[id]) order[next[id]++] = i;
    }
  }

  // The kernels read rows in place; a column-major X is transposed once.
  std::vector<float> transposed;
  int64_t ldx = 0;
  const float* x = detail::contiguous_rows(X, 0, n, transposed, ldx);

  const kernels::LoraFn kernel = (reference ? detail::reference_kernels() : detail::active_kernels()).lora;
  struct Work {
    int32_t id;
    int64_t begin, end;  // into order
  };
  std::vector<Work> work;
  int64_t max_rank = 0;
  double macs = 0;
  for (int64_t s = 0; s < slots; ++s) {
    if (start[s + 1] == start[s]) continue;
    max_rank = std::max(max_rank, state->by_id[s]->rank);
    macs += static_cast<double>((start[s + 1] - start[s]) * state->by_id[s]->rank * (k_ + m_));
    for (int64_t b = start[s]; b < start[s + 1]; b += kWorkRows)
      work.push_back({static_cast<int32_t>(s), b, std::min(b + kWorkRows, start[s + 1])});
  }
  const auto items = static_cast<int64_t>(work.size());
  const auto worth = std::max<int64_t>(1, static_cast<int64_t>(macs / kMacsPerThread));
  const int threads = static_cast<int>(std::min<int64_t>({num_threads(), items, worth}));
  bool finite = true;
#pragma omp parallel num_threads(threads) reduction(&& : finite)
  {
    std::vector<float> scratch(static_cast<size_t>(kernels::lora_scratch_floats(max_rank)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < items; ++w) {
      const LoraAdapter& adapter = *state->by_id[work[w].id];
      kernels::LoraArgs args;
      args.x = x;
      args.ldx = ldx;
      args.k = k_;
      args.m = m_;
      args.r = adapter.rank;
      args.a = adapter.a.data();
      args.b = adapter.b_panels.data();
      args.scale = adapter.scale();
      args.y = Y;
      args.ldy = ldy;
      args.scratch = scratch.data();
      finite = kernel(args, order.data() + work[w].begin, work[w].end - work[w].begin) && finite;
    }
  }
  if (!finite) {
    detail::check_rows_finite(X, nullptr, "lora");
    detail::throw_error("lora forward: X·A overflowed float (inputs or adapter too large)");
  }
}

// The base operator's own file, then every adapter id slot (removed ids stay holes, so ids a
// caller holds stay valid): name, alpha, A, B (r × M), merged. A merged adapter is already in
// the saved base.
std::vector<uint8_t> LoraLinear::payload() const {
  const std::shared_ptr<const State> state = snapshot();
  detail::ByteWriter w;
  w.put<int64_t>(k_);
  w.put<int64_t>(m_);
  w.put_bytes(state->base->serialize());
  w.put<uint64_t>(state->by_id.size());
  for (size_t id = 0; id < state->by_id.size(); ++id) {
    const std::shared_ptr<const LoraAdapter>& adapter = state->by_id[id];
    w.put<uint8_t>(adapter != nullptr ? 1 : 0);
    if (adapter == nullptr) continue;
    w.put_string(adapter->name);
    w.put<float>(adapter->alpha);
    w.put<int64_t>(adapter->rank);
    w.put_array(adapter->a);
    w.put_array(adapter->b());
    w.put<uint8_t>(state->merged[id]);
  }
  return std::move(w.bytes());
}

std::unique_ptr<LoraLinear> LoraLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const int64_t k = r.get<int64_t>("K"), m = r.get<int64_t>("M");
  const std::vector<uint8_t> base_file = r.get_array<uint8_t>("base operator");
  // A base may itself be LoRA, but a file of nested LoRA operators a few dozen bytes each
  // would recurse once per level (stack) and copy the rest of the file at each (memory).
  thread_local int depth = 0;
  LUTMUL_CHECK(depth < kMaxNestedLora, "operator file is corrupt: LoRA operators nested more than ", kMaxNestedLora,
               " deep");
  struct Nesting {
    Nesting() { ++depth; }
    ~Nesting() { --depth; }
  } nesting;
  std::shared_ptr<const LinearOperator> base = LinearOperator::deserialize(base_file.data(), base_file.size());
  LUTMUL_CHECK(base->input_dim() == k && base->output_dim() == m, "operator file is corrupt: LoRA is ", k, " x ", m,
               " but its base is ", base->input_dim(), " x ", base->output_dim());
  auto op = std::make_unique<LoraLinear>(base);
  const uint64_t slots = r.get<uint64_t>("adapter slots");
  LUTMUL_CHECK(slots <= size, "operator file is corrupt: ", slots, " adapter slots");
  std::vector<uint8_t> present(static_cast<size_t>(slots), 0), merged(static_cast<size_t>(slots), 0);
  for (uint64_t id = 0; id < slots; ++id) {
    present[id] = r.get<uint8_t>("adapter present");
    if (present[id] == 0) continue;
    const std::string name = r.get_string("adapter name", 1 << 16);
    const float alpha = r.get<float>("alpha");
    const int64_t rank = r.get<int64_t>("rank");
    LUTMUL_CHECK(rank >= 1 && rank <= INT32_MAX, "operator file is corrupt: adapter rank ", rank);
    const std::vector<float> a = r.get_array<float>("A", static_cast<uint64_t>(k) * static_cast<uint64_t>(rank));
    const std::vector<float> b = r.get_array<float>("B", static_cast<uint64_t>(rank) * static_cast<uint64_t>(m));
    merged[id] = r.get<uint8_t>("merged");
    LUTMUL_CHECK(merged[id] <= 1 && (merged[id] == 0 || base->kind() == "dense"),
                 "operator file is corrupt: adapter \"", name, "\" is marked merged into a ", base->kind(), " base");
    // add_adapter validates and packs; ids are put back in their slots below.
    op->add_adapter(name, MatrixView::row_major(a.data(), k, rank), MatrixView::row_major(b.data(), rank, m), alpha);
  }
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the adapters");
  auto state = std::make_shared<State>(*op->snapshot());
  std::vector<std::shared_ptr<const LoraAdapter>> by_id(static_cast<size_t>(slots));
  size_t next = 0;
  for (uint64_t id = 0; id < slots; ++id) {
    if (present[id] == 0) continue;
    auto adapter = std::make_shared<LoraAdapter>(*state->by_id[next++]);
    adapter->id = static_cast<int32_t>(id);
    state->ids[adapter->name] = adapter->id;
    by_id[id] = std::move(adapter);
  }
  state->by_id = std::move(by_id);
  state->merged = std::move(merged);
  op->publish(std::move(state));
  return op;
}

}  // namespace lutmul
