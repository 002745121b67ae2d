// ShapeMemo: the host values a program computes from its inputs' shapes alone, kept per input
// signature, so a later run at a seen signature skips those nodes. A dynamic-shape export computes
// every Reshape target at run time (Shape -> Gather -> Unsqueeze -> Concat: 48 host nodes per call
// in the benchmark's 4-layer encoder); the values are the same on every call at one shape.
//
// Which nodes qualify (shape_only_nodes): Shape and Size over a value whose shape inference wrote
// every dim as a number or a product of the graph inputs' symbols (its size follows from the input
// shapes, so no data-dependent op such as NonZero lies behind it), and any deterministic node whose
// inputs are all constants or outputs of qualifying nodes; either way only when each output has a
// known shape of rank 0 or 1 and at most kMaxElements elements. A run records the outputs of those nodes
// when every one of them is a host tensor and all of them together stay under kMaxBytes; otherwise
// the signature is remembered as not memoisable and runs as before.
//
// Values are immutable once stored. Thread-safe: concurrent runs of one program share it. At most
// kMaxSignatures signatures (the oldest is replaced).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

class ShapeMemo {
 public:
  static constexpr size_t kMaxSignatures = 64;
  static constexpr size_t kMaxBytes = 64 << 10;
  static constexpr int64_t kMaxElements = 1024;

  struct Entry {
    bool usable = false;          // false: this signature's values cannot be memoised
    std::vector<Tensor> values;   // the qualifying nodes' outputs, in node and output order
  };

  // shape_only[n]: node n's outputs are a function of the inputs' dtypes and dims alone.
  static std::vector<bool> shape_only_nodes(const ir::Graph& g);

  std::shared_ptr<const Entry> find(const std::string& signature) const;
  // Stores `entry` for `signature` (an existing entry is kept: a concurrent run recorded it first).
  void put(const std::string& signature, std::shared_ptr<const Entry> entry);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::pair<std::string, std::shared_ptr<const Entry>>> entries_;  // oldest first
};

}  // namespace kiln::cuda
