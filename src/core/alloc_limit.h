// A per-thread cap on the size of a single tensor allocation (Tensor::empty).
//
// For work that only wants small results: constant folding evaluates kernels at build time and
// keeps an output only if it is small, so it caps allocations instead of letting a tiny model
// make the builder allocate (and zero) gigabytes it would throw away. An allocation over the cap
// fails with kResourceExhausted, as one the machine cannot hold does.
//
// The cap applies to the thread that creates the scope (not to thread-pool workers it hands work
// to); scopes nest, the innermost wins. Not copyable; destroy on the creating thread.
#pragma once

#include <cstddef>

namespace kiln {

class ScopedAllocationLimit {
 public:
  explicit ScopedAllocationLimit(size_t max_bytes);
  ~ScopedAllocationLimit();
  ScopedAllocationLimit(const ScopedAllocationLimit&) = delete;
  ScopedAllocationLimit& operator=(const ScopedAllocationLimit&) = delete;

  // True once an allocation on this thread was refused while this scope was the innermost.
  bool refused() const { return refused_; }

 private:
  friend bool allocation_within_limit(size_t bytes);
  friend size_t allocation_limit();
  ScopedAllocationLimit* enclosing_;
  size_t max_bytes_;
  bool refused_ = false;
};

// Whether the calling thread may allocate `bytes` under its innermost limit (true without one);
// records a refusal on that scope. Called by Tensor::empty.
bool allocation_within_limit(size_t bytes);
// The calling thread's current cap, or SIZE_MAX without one.
size_t allocation_limit();

}  // namespace kiln
