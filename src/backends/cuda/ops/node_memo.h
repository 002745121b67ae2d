// NodeMemo: host-side work a node's handler did on an earlier run that later runs reuse (a
// decoded attribute program; the kernel variant, key strings and launch geometry an elementwise
// launch derived from its dims and strides), so a steady-state call builds no key strings and
// parses no attributes. A program keeps one per node for its lifetime.
//
// Entries are keyed by (kind, signature): the signature holds every value the stored result was
// derived from that can change between runs (dims, strides, dtypes, attribute bits); whatever
// else the result depends on must be fixed for the node, or compared by the caller on a hit.
// Values are immutable once stored. Thread-safe: concurrent runs of one program share it. At most
// kMaxEntries per node (dynamic shapes cycle through them; the least recently used is replaced).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace kiln::cuda {

class NodeMemo {
 public:
  // 12: a node keeps what does not change with its shape (a generic kernel variant, parsed
  // attributes) beside up to about 10 shapes' launch plans.
  static constexpr size_t kMaxEntries = 12;

  // The value stored under (kind, sig), or null. A hit moves its entry to the front, so the
  // shapes a program runs at now are found first (a dynamic program's nodes keep up to
  // kMaxEntries; its steady-state calls compare one).
  std::shared_ptr<const void> find(uint32_t kind, std::span<const int64_t> sig) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      if (e.kind != kind || e.sig.size() != sig.size() || !std::equal(sig.begin(), sig.end(), e.sig.begin())) continue;
      if (i > 0) std::rotate(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(i),
                             entries_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return entries_.front().value;
    }
    return nullptr;
  }

  // Stores `value` under (kind, sig) at the front, replacing an entry of the same key or, when
  // full, the least recently used one (the last).
  void put(uint32_t kind, std::vector<int64_t> sig, std::shared_ptr<const void> value) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t i = 0;
    while (i < entries_.size() && !(entries_[i].kind == kind && entries_[i].sig == sig)) ++i;
    if (i == entries_.size()) {
      if (entries_.size() < kMaxEntries) {
        entries_.push_back(Entry{});
      } else {
        i = entries_.size() - 1;
      }
    }
    entries_[i] = Entry{kind, std::move(sig), std::move(value)};
    std::rotate(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(i),
                entries_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    uint32_t kind = 0;
    std::vector<int64_t> sig;
    std::shared_ptr<const void> value;
  };
  mutable std::mutex mu_;
  mutable std::vector<Entry> entries_;  // most recently used first
};

}  // namespace kiln::cuda
