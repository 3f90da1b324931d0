// Devices, errors, streams and device buffers; and, on a machine without a GPU, that every
// entry point reports it as lutmul::Error instead of crashing.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <numeric>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "lutmul/lutmul.h"

namespace lutmul {
namespace {

template <typename F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Runs only where no GPU is usable (it skips on the GPU machine): the paths a CPU-only user
// of lutmul_cuda goes through.
TEST(NoDevice, EntryPointsThrowLutmulErrorsInsteadOfCrashing) {
  if (cuda::available()) GTEST_SKIP() << "a CUDA device is present: " << cuda::device_name();
  const std::string reason = cuda::unavailable_reason();
  ASSERT_FALSE(reason.empty());
  std::printf("no GPU here: %s\n", reason.c_str());
  EXPECT_NE(std::string::npos, error_of([] { cuda::device_name(); }).find(reason));
  EXPECT_NE(std::string::npos, error_of([] { cuda::DeviceBuffer<float> b(16); }).find(reason));
  EXPECT_NE(std::string::npos, error_of([] { cuda::Stream s; }).find(reason));
  const std::vector<float> w(12, 0.5f);
  EXPECT_NE(std::string::npos, error_of([&] { cuda::DenseGpu op(MatrixView::row_major(w.data(), 3, 4)); }).find(reason));
  EXPECT_NE(std::string::npos, error_of([&] { cuda::Int8Gpu op(MatrixView::row_major(w.data(), 3, 4)); }).find(reason));
  EXPECT_NE(std::string::npos, error_of([] { cuda::MaddnessGpu op{Maddness()}; }).find(reason));
  const cuda::LoraAdapterView adapter{MatrixView::row_major(w.data(), 3, 4), MatrixView::row_major(w.data(), 4, 3), 1.f};
  EXPECT_NE(std::string::npos, error_of([&] { cuda::LoraGpu op(3, 3, {adapter}); }).find(reason));
  cuda::DeviceBuffer<float> empty(0);  // nothing to allocate: no device needed
  EXPECT_EQ(nullptr, empty.data());
  EXPECT_EQ(0u, empty.size());
}

TEST(NoDevice, CudaStatusesBecomeErrorsWithCudasText) {
  EXPECT_NO_THROW(cuda::check(cudaSuccess, "nothing"));
  const std::string message = error_of([] { cuda::check(cudaErrorMemoryAllocation, "my allocation"); });
  EXPECT_NE(std::string::npos, message.find("my allocation")) << message;
  EXPECT_NE(std::string::npos, message.find("cudaErrorMemoryAllocation")) << message;
  EXPECT_NE(std::string::npos, message.find(cudaGetErrorString(cudaErrorMemoryAllocation))) << message;
}

TEST(Runtime, DeviceIsNamed) {
  LUTMUL_REQUIRE_GPU();
  EXPECT_TRUE(cuda::unavailable_reason().empty());
  const std::string name = cuda::device_name();
  EXPECT_FALSE(name.empty());
  std::printf("device: %s\n", name.c_str());
}

TEST(Runtime, BuffersRoundTripMoveAndZero) {
  LUTMUL_REQUIRE_GPU();
  std::vector<int32_t> host(1000);
  std::iota(host.begin(), host.end(), -500);
  cuda::DeviceBuffer<int32_t> a(host);
  EXPECT_EQ(host.size(), a.size());
  EXPECT_EQ(host.size() * sizeof(int32_t), a.bytes());
  EXPECT_EQ(host, a.download());
  cuda::DeviceBuffer<int32_t> b(std::move(a));
  EXPECT_EQ(nullptr, a.data());
  EXPECT_EQ(0u, a.size());
  EXPECT_EQ(host, b.download());
  std::vector<int32_t> part(10, 0);
  b.download(part.data(), part.size());
  EXPECT_EQ(std::vector<int32_t>(host.begin(), host.begin() + 10), part);
  cuda::Stream stream;
  b.zero(stream);
  EXPECT_EQ(std::vector<int32_t>(host.size(), 0), b.download(stream));
  a = std::move(b);
  EXPECT_EQ(host.size(), a.size());
  EXPECT_THROW(a.upload(host.data(), host.size() + 1), Error);
  EXPECT_THROW(a.download(part.data(), host.size() + 1), Error);
}

TEST(Runtime, FailedCallsBecomeLutmulErrorsAndLeaveTheRuntimeUsable) {
  LUTMUL_REQUIRE_GPU();
  const std::string message = error_of([] { cuda::DeviceBuffer<float> huge(size_t{1} << 58); });
  EXPECT_NE(std::string::npos, message.find("cudaErrorMemoryAllocation")) << message;
  cuda::DeviceBuffer<float> buffer(4);
  const std::vector<float> host = {1, 2, 3, 4};
  buffer.upload(host.data(), 4);
  EXPECT_EQ(host, buffer.download());
}

TEST(Runtime, StreamsMoveAndSynchronize) {
  LUTMUL_REQUIRE_GPU();
  cuda::Stream a;
  ASSERT_NE(nullptr, a.handle());
  void* handle = a.handle();
  cuda::Stream b(std::move(a));
  EXPECT_EQ(handle, b.handle());
  EXPECT_EQ(nullptr, a.handle());
  cuda::StreamView view = b;
  EXPECT_EQ(handle, view.handle());
  EXPECT_NO_THROW(view.synchronize());
  EXPECT_NO_THROW(cuda::StreamView().synchronize());
}

}  // namespace
}  // namespace lutmul
