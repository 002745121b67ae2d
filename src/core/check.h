// KILN_CHECK: aborts with a message on a broken internal invariant. Never for bad input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define KILN_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "kiln: internal check failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #cond);                                                  \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
