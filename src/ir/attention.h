// kiln.Attention: scaled dot-product attention, one node for what a model spells as
// MatMul(Q, K^T) -> scale -> Softmax -> MatMul(., V) (made by compiler::fuse_attention).
//
//   O[b, h, i, :] = sum_j softmax_j(scale * <Q[b, h, i, :], K[b, h, j, :]>) * V[b, h, j, :]
//
// Inputs Q, K, V (any may be the same value). Each operand is read through a view of its input
// tensor, so the head split and transposes an exporter writes around attention need no copies:
//   q_axes, k_axes, v_axes   4 ints each: the input axis holding logical b, h, s (sequence) and
//                            d (feature); -1 for an absent b or h (size 1). s and d are required.
//   q_index, k_index, v_index  one int per input axis: the fixed index along each axis not named
//                            in the operand's axes (a packed [B, S, 3, H, D] QKV tensor picks
//                            slot 0, 1 or 2 this way); 0 for named axes. Absent: all 0.
//   out_axes                 4 ints: the output axis of logical b, h, s, d (-1: absent, allowed
//                            only where that size is 1); the present ones are a permutation of
//                            0..rank-1. The output is contiguous.
//   scale                    float, default 1.
// Q is [B, H, Sq, D], K [B, H, Sk, D] and V [B, H, Sk, Dv] logically; the output [B, H, Sq, Dv]
// permuted by out_axes, with Q's dtype. With Sk == 0 the output is zeros (an empty sum).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::ir {

inline constexpr std::string_view kAttentionOp = "kiln.Attention";
// The largest head dim (D and Dv) fuse_attention makes the node for: the GPU kernel keeps a
// tile of K and V rows of this width in shared memory.
inline constexpr int64_t kMaxAttentionHeadDim = 128;

// Logical axes of an attention operand.
enum AttentionAxis : int { kAttnB = 0, kAttnH = 1, kAttnS = 2, kAttnD = 3 };

struct AttentionView {
  std::array<int, 4> axes{-1, -1, -1, -1};  // input axis of b, h, s, d; -1: absent
  std::vector<int64_t> index;               // per input axis (empty: all 0)
};

struct AttentionAttrs {
  double scale = 1.0;
  AttentionView view[3];                     // q, k, v
  std::array<int, 4> out_axes{0, 1, 2, 3};
  int out_rank = 4;
};

// Decodes and checks node's attributes against its inputs' ranks. Errors: kInvalidArgument
// naming the node.
Result<AttentionAttrs> attention_attrs(const Node& node, std::span<const int64_t> input_ranks);

// One call's geometry, from concrete input dims: sizes, and per operand (q, k, v, out) the
// element offset and the element strides along b, h, s, d (0 along absent axes).
struct AttentionGeometry {
  int64_t batch = 1, heads = 1, seq_q = 0, seq_k = 0, dim = 0, dim_v = 0;
  int64_t offset[4] = {0, 0, 0, 0};
  int64_t stride[4][4] = {};
  Dims out_dims;
};

// Errors: kInvalidArgument naming the node when the operands disagree (Q's and K's feature
// sizes, K's and V's sequence lengths, batch or heads) or a fixed index is out of range.
Result<AttentionGeometry> attention_geometry(const Node& node, const AttentionAttrs& attrs, const Dims& q,
                                             const Dims& k, const Dims& v);

class InferContext;
// The shape inference rule of kiln.Attention (registered by op_registry.cc).
Status infer_attention(InferContext& ctx);

// Writes the attributes of `attrs` onto `node` (what fuse_attention makes).
void set_attention_attrs(Node& node, const AttentionAttrs& attrs);

}  // namespace kiln::ir
