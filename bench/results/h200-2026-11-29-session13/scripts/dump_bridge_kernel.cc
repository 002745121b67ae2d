// Writes the GEMM bridge kernel's f32 bias sources (NN and NT) as the checked-out commit's
// gemm_kernel_source makes them: PREFIX_nn.cu and PREFIX_nt.cu, which gemm_probe.py and ncu_one.py
// read (old_ from c0d1c77, ported_ from 443f5cb or later). From the checkout root, after a build:
//   g++ -std=c++20 -Isrc -Iinclude -I/usr/local/cuda/include \
//     bench/results/h200-2026-11-29-session13/scripts/dump_bridge_kernel.cc \
//     build/libkiln_backend_cuda.a build/libkiln_core.a build/libkiln_platform.a -o /tmp/dump_bridge
//   /tmp/dump_bridge bench/results/h200-2026-11-29-session13/scripts/ported
#include <cstdio>
#include <fstream>
#include <string>

#include "backends/cuda/kernels/gemm.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PREFIX (writes PREFIX_nn.cu and PREFIX_nt.cu)\n", argv[0]);
    return 2;
  }
  for (bool trans_b : {false, true}) {
    kiln::cuda::kernels::GemmKernelSpec spec;
    spec.dtype = kiln::DType::kF32;
    spec.trans_b = trans_b;
    spec.bias = true;
    kiln::Result<kiln::cuda::KernelSource> src = kiln::cuda::kernels::gemm_kernel_source(spec);
    const std::string path = std::string(argv[1]) + (trans_b ? "_nt.cu" : "_nn.cu");
    if (!src.ok() || !(std::ofstream(path) << src->source)) {
      std::fprintf(stderr, "%s: not written\n", path.c_str());
      return 1;
    }
  }
  return 0;
}
