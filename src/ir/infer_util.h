// Dim arithmetic shared by the inference rules (internal to src/ir). All of it is overflow-safe:
// a result that does not fit int64 becomes unknown, never undefined behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ir/op_registry.h"

namespace kiln::ir::infer {

std::optional<int64_t> checked_add(int64_t a, int64_t b);
std::optional<int64_t> checked_mul(int64_t a, int64_t b);

// A dim as a product: a known coefficient times symbols (a symbol "4*a*b" counts as 4, a and b).
// `exact` is false when a factor is unknown (or the coefficient overflowed).
struct Factors {
  int64_t coef = 1;
  std::vector<std::string> symbols;  // sorted
  bool exact = true;
};
Factors factors_of(std::span<const Dim> dims);
// coef * symbols as a Dim: a number without symbols, else a symbol "a", "a*b" or "4*a*b".
Dim dim_of(const Factors& f);
// The product of dims: known, a symbolic product ("batch*seq"), or unknown.
Dim dim_product(std::span<const Dim> dims);

// Numpy broadcasting of two dims. Sets *conflict on two known sizes that do not broadcast.
Dim broadcast_dim(const Dim& a, const Dim& b, bool* conflict);
// Two dims that must be equal: known wins, then a symbol; *conflict on two different sizes.
Dim unify_dim(const Dim& a, const Dim& b, bool* conflict);

// Numpy broadcasting of several shapes (unknown rank if any rank is unknown).
Result<Shape> broadcast_shapes(const InferContext& ctx, std::span<const Shape* const> shapes);

// axis in [-rank, rank) -> [0, rank); nullopt when out of range.
std::optional<int64_t> normalize_axis(int64_t axis, int64_t rank);

// A shape of `rank` unknown dims.
Shape unknown_dims(size_t rank);

// Same dtype and shape as input 0 for output 0.
Status same_as_input(InferContext& ctx);

}  // namespace kiln::ir::infer
