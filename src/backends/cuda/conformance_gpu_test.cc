// The ONNX conformance suite on the CUDA backend (label gpu): every case the CPU backend passes
// must pass on CUDA too. Small all-host nodes would run on the host by design, so the host
// execution limit is lifted: every node with a CUDA handler runs on the GPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "backends/cuda/cuda_backend.h"
#include "tests/util/testdata.h"
#include "tools/conformance/conformance.h"

namespace kiln::cuda {
namespace {

namespace fs = std::filesystem;

TEST(CudaConformanceTest, PassesEveryCaseTheCpuPasses) {
  const fs::path root = kiln::test::testdata_dir() / "onnx-conformance";
  ASSERT_TRUE(fs::exists(root)) << "conformance data not unpacked at " << root << " (set KILN_TESTDATA)";
  conformance::Options cpu_opts;
  cpu_opts.jobs = 16;
  Result<conformance::Report> cpu = conformance::run(root.string(), cpu_opts);
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();

  set_host_execution_limit(-1);
  conformance::Options cuda_opts = cpu_opts;
  cuda_opts.backend = "cuda";
  cuda_opts.jobs = 8;
  Result<conformance::Report> cuda = conformance::run(root.string(), cuda_opts);
  set_host_execution_limit(4096);
  ASSERT_TRUE(cuda.ok()) << cuda.status().to_string();

  std::map<std::string, const conformance::CaseResult*> on_cuda;
  for (const auto& c : cuda->cases) on_cuda[c.name] = &c;
  int regressions = 0;
  for (const auto& c : cpu->cases) {
    if (c.status != conformance::CaseStatus::kPassed) continue;
    auto it = on_cuda.find(c.name);
    if (it != on_cuda.end() && it->second->status == conformance::CaseStatus::kPassed) continue;
    ++regressions;
    std::printf("[ cuda-only failure ] %s: %s\n", c.name.c_str(),
                it == on_cuda.end() ? "missing" : it->second->message.substr(0, 400).c_str());
  }
  std::printf("[ conformance ] cpu: %zu passed, %zu failed, %zu skipped; cuda: %zu passed, %zu failed, %zu skipped\n",
              cpu->passed, cpu->failed, cpu->skipped, cuda->passed, cuda->failed, cuda->skipped);
  EXPECT_EQ(regressions, 0) << regressions << " cases pass on the CPU but not on CUDA (listed above)";
}

}  // namespace
}  // namespace kiln::cuda
