// The soak: for a fixed time, many threads at once on shared objects — LoRA forwards while
// adapters come and go, encoder embeds, and saves and loads of an operator file and of an
// encoder file at the same two paths — every result compared bit for bit with the one
// computed alone before, every file read back checked. LUTMUL_SOAK_SECONDS sets the time
// (scripts/test.sh runs it for 60 s); without it the suite runs it for 3 s.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "runtime/tiny_bert.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double soak_seconds() {
  const char* text = std::getenv("LUTMUL_SOAK_SECONDS");
  return text != nullptr ? std::atof(text) : 3.0;
}

TEST(Soak, ForwardEmbedAdapterChangesSavesAndLoadsTogether) {
  const double seconds = soak_seconds();
  ASSERT_GT(seconds, 0.0) << "LUTMUL_SOAK_SECONDS must be a positive number of seconds";

  // A LoRA operator over a dense base, with one adapter that stays and rows that name it.
  const int64_t n = 24, k = 40, m = 24, r = 4;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 1), a = uniform(k, r, -0.5f, 0.5f, 2),
                           b = uniform(r, m, -0.5f, 0.5f, 3), x = uniform(n, k, -1.f, 1.f, 4);
  auto lora = std::make_shared<LoraLinear>(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m)));
  const int32_t stable = lora->add_adapter("stable", MatrixView::row_major(a.data(), k, r),
                                           MatrixView::row_major(b.data(), r, m), 2.f);
  std::vector<int32_t> ids(static_cast<size_t>(n), LoraLinear::kNoAdapter);
  for (int64_t i = 0; i < n; i += 2) ids[static_cast<size_t>(i)] = stable;
  const MatrixView xv = MatrixView::row_major(x.data(), n, k);
  const std::vector<float> lora_expected = lora->forward(xv, ids.data()).values;

  // A tiny encoder with an int8 layer, and a ragged batch.
  TinyBertSpec spec;
  const TinyBert bert = write_tiny_bert(spec, "soak");
  const std::vector<float>& key_w = bert.tensors.at("encoder.layer.0.attention.self.key.weight");
  const auto encoder = runtime::Encoder::load(bert.folder)->with_linear(
      0, "key", std::make_shared<Int8Linear>(MatrixView::col_major(key_w.data(), spec.hidden, spec.hidden),
                                             bert.tensors.at("encoder.layer.0.attention.self.key.bias").data()));
  const std::vector<int64_t> lengths = {5, 12, 1, 9};
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < 27; ++i) tokens.push_back(static_cast<int32_t>((i * 7 + 3) % static_cast<size_t>(spec.vocab)));
  const auto embed = [&](const runtime::Encoder& e) {
    std::vector<float> out(lengths.size() * static_cast<size_t>(spec.hidden));
    e.embed(tokens.data(), lengths.data(), static_cast<int64_t>(lengths.size()), out.data());
    return out;
  };
  const std::vector<float> embed_expected = embed(*encoder);

  const fs::path dir = fs::temp_directory_path() / ("lutmul_soak_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string operator_path = (dir / "lora.lutmul").string(), encoder_path = (dir / "encoder.lutmul").string();
  lora->save(operator_path);
  encoder->save(encoder_path, {{"note", "soak"}});

  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  std::atomic<int64_t> forwards{0}, embeds{0}, changes{0}, saves{0}, loads{0}, wrong{0}, failures{0};
  std::vector<std::string> messages;
  std::mutex messages_mutex;
  const auto fail = [&](const std::string& what) {
    ++failures;
    std::lock_guard<std::mutex> lock(messages_mutex);
    if (messages.size() < 10) messages.push_back(what);
  };
  // Runs body until the deadline, turning any exception into a recorded failure.
  const auto loop = [&](auto&& body) {
    return std::thread([&, body] {
      while (Clock::now() < deadline) {
        try {
          body();
        } catch (const std::exception& e) {
          fail(e.what());
        }
      }
    });
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.push_back(loop([&] {
      if (lora->forward(xv, ids.data()).values != lora_expected) ++wrong;
      ++forwards;
    }));
  for (int t = 0; t < 2; ++t)
    threads.push_back(loop([&] {
      if (embed(*encoder) != embed_expected) ++wrong;
      ++embeds;
    }));
  threads.push_back(loop([&] {  // adapters come and go beside the stable one
    lora->add_adapter("churn", MatrixView::row_major(b.data(), k, 2), MatrixView::row_major(a.data(), 2, m), 1.f);
    lora->remove_adapter("churn");
    ++changes;
  }));
  for (int t = 0; t < 2; ++t)
    threads.push_back(loop([&] {  // two writers on each path: every save is atomic
      lora->save(operator_path);
      encoder->save(encoder_path, {{"note", "soak"}});
      ++saves;
    }));
  threads.push_back(loop([&] {  // whatever the writers are doing, a load gives a whole file
    const std::unique_ptr<LinearOperator> op = LinearOperator::load(operator_path);
    const auto* loaded = dynamic_cast<const LoraLinear*>(op.get());
    if (loaded == nullptr || loaded->adapter_id("stable") != stable ||
        loaded->forward(xv, ids.data()).values != lora_expected)
      ++wrong;
    const auto loaded_encoder = runtime::Encoder::load(encoder_path);
    if (embed(*loaded_encoder) != embed_expected || loaded_encoder->metadata().at("note") != "soak") ++wrong;
    ++loads;
  }));
  for (std::thread& thread : threads) thread.join();

  std::string joined;
  for (const std::string& message : messages) joined += message + "\n";
  EXPECT_EQ(failures.load(), 0) << joined;
  EXPECT_EQ(wrong.load(), 0);
  for (const auto* count : {&forwards, &embeds, &changes, &saves, &loads}) EXPECT_GT(count->load(), 0);
  EXPECT_EQ(lora->adapter_names(), std::vector<std::string>{"stable"});
  std::printf("soak %.0f s: %lld forwards, %lld embeds, %lld adapter changes, %lld saves, %lld loads\n", seconds,
              static_cast<long long>(forwards), static_cast<long long>(embeds), static_cast<long long>(changes),
              static_cast<long long>(saves), static_cast<long long>(loads));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lutmul::testing
