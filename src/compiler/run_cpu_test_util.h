// For the compiler's tests: run a graph on the CPU backend, the reference the passes' outputs
// are checked against. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "ir/graph.h"

namespace kiln::compiler {

// The outputs of `g` run on a fresh CPU backend with `inputs`; a failure to prepare or run fails
// the test (EXPECT) and gives the outputs produced so far (none when prepare failed).
inline std::vector<Tensor> run_cpu(const ir::Graph& g, const std::vector<Tensor>& inputs) {
  auto backend = cpu::create_cpu_backend();
  auto prog = backend->prepare(std::make_shared<ir::Graph>(g), PrepareOptions{});
  EXPECT_TRUE(prog.ok()) << prog.status().to_string();
  std::vector<Tensor> out;
  if (!prog.ok()) return out;
  Status s = (*prog)->run(inputs, &out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

}  // namespace kiln::compiler
