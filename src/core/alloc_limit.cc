#include "core/alloc_limit.h"

#include <cstdint>

#include "core/check.h"

namespace kiln {
namespace {
thread_local ScopedAllocationLimit* t_innermost = nullptr;
}  // namespace

ScopedAllocationLimit::ScopedAllocationLimit(size_t max_bytes)
    : enclosing_(t_innermost), max_bytes_(max_bytes) {
  t_innermost = this;
}

ScopedAllocationLimit::~ScopedAllocationLimit() {
  KILN_CHECK(t_innermost == this);  // destroyed on another thread, or out of order
  t_innermost = enclosing_;
}

bool allocation_within_limit(size_t bytes) {
  ScopedAllocationLimit* s = t_innermost;
  if (s == nullptr || bytes <= s->max_bytes_) return true;
  s->refused_ = true;
  return false;
}

size_t allocation_limit() { return t_innermost ? t_innermost->max_bytes_ : SIZE_MAX; }

}  // namespace kiln
