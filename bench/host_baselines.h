// Raw CUDA host costs per call on this machine (see host_baselines.cc), printed to stdout.
#pragma once

#include <functional>

namespace kiln::bench {
void print_host_baselines();
}
