// EngineModel: the in-memory form of an engine file, everything needed to reconstruct the
// program and nothing about how it runs (no runtime mode, no cache path, no timestamp).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/builder.h"

namespace kiln::format {

struct EngineHeader {
  std::string name;
  std::string kiln_version;          // of the kiln that built it
  std::string target_platform;
  int32_t min_compute_capability = 75;
  HardwareCompatibility hardware_compatibility = HardwareCompatibility::kPortable;
  Precision precision = Precision::kFp32;
  bool allow_tf32 = false;
  int32_t optimization_level = 3;
};

// One input or output of the engine.
struct Binding {
  std::string name;
  int value = -1;          // value id in the graph
  DType dtype = DType::kUndefined;
  ir::Shape shape;         // symbolic dims survive: "batch", "seq"
  Dims min, opt, max;      // inputs: the profile (empty for outputs)
};

// A generated kernel's source, for backends that JIT-compile (CUDA). Optional PTX.
struct KernelSource {
  std::string name;
  std::string source;
  std::string ptx;
};

struct EngineModel {
  EngineHeader header;
  std::vector<Binding> inputs;
  std::vector<Binding> outputs;
  ir::Graph graph;                 // constants are the weights
  std::vector<KernelSource> kernels;
  std::map<std::string, std::string> metadata;  // shown by `kiln inspect`, never read to decide behaviour
};

}  // namespace kiln::format
