// DevicePool's caching kind (label gpu): reuse on a stream, segments for small blocks, blocks of
// their own for large ones, streams only the pool still holds, errors, and threads.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "backends/cuda/allocator.h"

namespace kiln::cuda {
namespace {

std::shared_ptr<DevicePool> caching_pool() {
  Result<std::shared_ptr<DevicePool>> p = DevicePool::create(0, DevicePool::Kind::kCaching);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? *p : nullptr;
}

std::shared_ptr<Stream> stream() {
  Result<std::shared_ptr<Stream>> s = Stream::create(0);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : nullptr;
}

TEST(DevicePoolTest, AStreamReusesItsFreedBlockWithoutTheDriver) {
  auto pool = caching_pool();
  auto s = stream();
  ASSERT_TRUE(pool && s);
  void* first = nullptr;
  {
    Result<std::shared_ptr<void>> a = pool->alloc_bytes(1000, s);
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    first = a->get();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 256, 0u);
    EXPECT_EQ(pool->used_bytes(), 1024u);  // 512-byte granules
  }
  EXPECT_EQ(pool->used_bytes(), 0u);
  const uint64_t driver = pool->driver_allocations();
  Result<std::shared_ptr<void>> b = pool->alloc_bytes(900, s);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->get(), first);
  EXPECT_EQ(pool->driver_allocations(), driver);
}

TEST(DevicePoolTest, SmallBlocksShareOneSegmentAndDoNotOverlap) {
  auto pool = caching_pool();
  auto s = stream();
  ASSERT_TRUE(pool && s);
  std::vector<std::shared_ptr<void>> blocks;
  std::set<uintptr_t> starts;
  for (int i = 0; i < 100; ++i) {
    Result<std::shared_ptr<void>> a = pool->alloc_bytes(4096, s);
    ASSERT_TRUE(a.ok());
    starts.insert(reinterpret_cast<uintptr_t>(a->get()));
    blocks.push_back(*a);
  }
  EXPECT_EQ(pool->driver_allocations(), 1u);
  EXPECT_EQ(pool->reserved_bytes(), DevicePool::kSegmentBytes);
  ASSERT_EQ(starts.size(), 100u);
  for (auto it = starts.begin(); std::next(it) != starts.end(); ++it) EXPECT_GE(*std::next(it) - *it, 4096u);
  // Each block holds its own bytes: fill block i with i, read all back.
  for (size_t i = 0; i < blocks.size(); ++i)
    ASSERT_EQ(cudaMemsetAsync(blocks[i].get(), static_cast<int>(i), 4096, s->get()), cudaSuccess);
  for (size_t i = 0; i < blocks.size(); ++i) {
    std::vector<uint8_t> host(4096);
    ASSERT_EQ(cudaMemcpyAsync(host.data(), blocks[i].get(), 4096, cudaMemcpyDeviceToHost, s->get()), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s->get()), cudaSuccess);
    EXPECT_EQ(host.front(), static_cast<uint8_t>(i));
    EXPECT_EQ(host.back(), static_cast<uint8_t>(i));
  }
}

TEST(DevicePoolTest, LargeBlocksAreTheirOwnAndReusedWhenTheyFit) {
  auto pool = caching_pool();
  auto s = stream();
  ASSERT_TRUE(pool && s);
  void* first = nullptr;
  {
    Result<std::shared_ptr<void>> a = pool->alloc_bytes(3 << 20, s);
    ASSERT_TRUE(a.ok());
    first = a->get();
    EXPECT_EQ(pool->reserved_bytes(), uint64_t{4} << 20);  // 2 MB granules
  }
  Result<std::shared_ptr<void>> b = pool->alloc_bytes((7 << 20) / 2, s);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->get(), first);
  Result<std::shared_ptr<void>> c = pool->alloc_bytes(3 << 20, s);  // the 4 MB block is taken
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->get(), first);
  EXPECT_EQ(pool->driver_allocations(), 2u);
}

TEST(DevicePoolTest, AnotherStreamTakesAFreedBlockOnlyOnceItsStreamIsGone) {
  auto pool = caching_pool();
  auto s1 = stream();
  auto s2 = stream();
  ASSERT_TRUE(pool && s1 && s2);
  void* first = nullptr;
  {
    Result<std::shared_ptr<void>> a = pool->alloc_bytes(64 << 10, s1);
    ASSERT_TRUE(a.ok());
    first = a->get();
    ASSERT_EQ(cudaMemsetAsync(first, 1, 64 << 10, s1->get()), cudaSuccess);
  }
  {
    Result<std::shared_ptr<void>> b = pool->alloc_bytes(64 << 10, s2);  // s1 may still be writing it
    ASSERT_TRUE(b.ok());
    EXPECT_NE(b->get(), first);
  }
  s1.reset();  // only the pool holds s1 now: it is synchronised and its blocks are anyone's
  std::shared_ptr<Stream> s3 = stream();
  Result<std::shared_ptr<void>> c = pool->alloc_bytes(40 << 10, s3);
  ASSERT_TRUE(c.ok());
  Result<std::shared_ptr<void>> d = pool->alloc_bytes(40 << 10, s3);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(c->get() == first || d->get() == first);
  EXPECT_EQ(pool->driver_allocations(), 1u);
}

TEST(DevicePoolTest, AnImpossibleSizeIsResourceExhaustedAndThePoolGoesOn) {
  auto pool = caching_pool();
  auto s = stream();
  ASSERT_TRUE(pool && s);
  Result<std::shared_ptr<void>> kept = pool->alloc_bytes(8 << 20, s);
  ASSERT_TRUE(kept.ok());
  Result<std::shared_ptr<void>> huge = pool->alloc_bytes(size_t{1} << 46, s);  // 64 TiB
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted) << huge.status().to_string();
  EXPECT_NE(huge.status().message().find(std::to_string(size_t{1} << 46)), std::string::npos)
      << huge.status().to_string();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  Result<std::shared_ptr<void>> after = pool->alloc_bytes(1 << 20, s);
  EXPECT_TRUE(after.ok());
  EXPECT_EQ(pool->used_bytes(), (uint64_t{8} << 20) + (uint64_t{1} << 20));
}

TEST(DevicePoolTest, ThreadsOnTheirOwnStreamsBalanceTheirAccounts) {
  auto pool = caching_pool();
  ASSERT_TRUE(pool);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([pool, t] {
      Result<std::shared_ptr<Stream>> s = Stream::create(0);
      ASSERT_TRUE(s.ok());
      std::mt19937 rng(static_cast<uint32_t>(t));
      std::uniform_int_distribution<size_t> size(1, 3 << 20);
      std::vector<std::shared_ptr<void>> live;
      for (int i = 0; i < 500; ++i) {
        Result<std::shared_ptr<void>> a = pool->alloc_bytes(size(rng), *s);
        ASSERT_TRUE(a.ok()) << a.status().to_string();
        ASSERT_EQ(cudaMemsetAsync(a->get(), 0, 1, (*s)->get()), cudaSuccess);
        live.push_back(*a);
        if (live.size() > 8) live.erase(live.begin() + static_cast<long>(rng() % live.size()));
      }
      live.clear();
      ASSERT_EQ(cudaStreamSynchronize((*s)->get()), cudaSuccess);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(pool->used_bytes(), 0u);
  EXPECT_LT(pool->driver_allocations(), 4u * 500u / 4);  // mostly reuse
}

}  // namespace
}  // namespace kiln::cuda
