// NodeMemo: lookups by (kind, signature), replacement of the least recently used entry when full, and
// concurrent use by several runs of one program (under ASan+UBSan in CI, as every nogpu test; the
// TSan step covers the runtime's threaded suites, not this binary).
#include "backends/cuda/ops/node_memo.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace kiln::cuda {
namespace {

std::shared_ptr<const void> value(int v) { return std::make_shared<const int>(v); }
int as_int(const std::shared_ptr<const void>& p) { return *static_cast<const int*>(p.get()); }

TEST(NodeMemoTest, FindsByKindAndSignature) {
  NodeMemo m;
  EXPECT_EQ(m.find(1, {}), nullptr);
  m.put(1, {}, value(10));
  m.put(1, {2, 3}, value(11));
  m.put(2, {2, 3}, value(12));
  ASSERT_NE(m.find(1, {}), nullptr);
  EXPECT_EQ(as_int(m.find(1, {})), 10);
  const std::vector<int64_t> sig = {2, 3};
  EXPECT_EQ(as_int(m.find(1, sig)), 11);
  EXPECT_EQ(as_int(m.find(2, sig)), 12);
  const std::vector<int64_t> other = {2, 4}, longer = {2, 3, 0};
  EXPECT_EQ(m.find(1, other), nullptr);
  EXPECT_EQ(m.find(1, longer), nullptr);
  m.put(1, {2, 3}, value(13));  // same key: replaced, not added
  EXPECT_EQ(as_int(m.find(1, sig)), 13);
  EXPECT_EQ(m.size(), 3u);
}

TEST(NodeMemoTest, FullMemoReplacesTheOldestEntry) {
  NodeMemo m;
  for (int i = 0; i < static_cast<int>(NodeMemo::kMaxEntries) + 3; ++i) m.put(7, {i}, value(i));
  EXPECT_EQ(m.size(), NodeMemo::kMaxEntries);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(m.find(7, std::vector<int64_t>{i}), nullptr) << i;
  for (int i = 3; i < static_cast<int>(NodeMemo::kMaxEntries) + 3; ++i) {
    ASSERT_NE(m.find(7, std::vector<int64_t>{i}), nullptr) << i;
    EXPECT_EQ(as_int(m.find(7, std::vector<int64_t>{i})), i);
  }
}

TEST(NodeMemoTest, FullMemoKeepsWhatWasFoundLately) {
  NodeMemo m;
  const int full = static_cast<int>(NodeMemo::kMaxEntries);
  for (int i = 0; i < full; ++i) m.put(7, {i}, value(i));
  ASSERT_NE(m.find(7, std::vector<int64_t>{0}), nullptr);  // the oldest put, used now
  m.put(7, {full}, value(full));                           // evicts 1, the least recently used
  EXPECT_EQ(m.size(), NodeMemo::kMaxEntries);
  EXPECT_EQ(m.find(7, std::vector<int64_t>{1}), nullptr);
  for (int i : {0, 2, full - 1, full}) {
    ASSERT_NE(m.find(7, std::vector<int64_t>{i}), nullptr) << i;
    EXPECT_EQ(as_int(m.find(7, std::vector<int64_t>{i})), i);
  }
  m.put(7, {2}, value(20));  // an existing key: replaced in place, nothing evicted
  EXPECT_EQ(as_int(m.find(7, std::vector<int64_t>{2})), 20);
  EXPECT_EQ(m.size(), NodeMemo::kMaxEntries);
  EXPECT_NE(m.find(7, std::vector<int64_t>{3}), nullptr);
}

TEST(NodeMemoTest, ConcurrentRunsShareIt) {
  NodeMemo m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::vector<int64_t> sig = {i % 7, t % 2};  // 14 keys: more than the memo holds
        std::shared_ptr<const void> v = m.find(3, sig);
        if (v) {
          EXPECT_EQ(as_int(v), static_cast<int>(sig[0] * 10 + sig[1]));
        } else {
          m.put(3, sig, value(static_cast<int>(sig[0] * 10 + sig[1])));
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(m.size(), NodeMemo::kMaxEntries);
}

}  // namespace
}  // namespace kiln::cuda
