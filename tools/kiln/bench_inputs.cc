#include "bench_inputs.h"

#include <bit>
#include <map>
#include <random>

#include "cli_common.h"
#include "core/half.h"

namespace kiln::cli {
namespace {

std::string input_names(const std::vector<BindingInfo>& inputs) {
  std::string out;
  for (const BindingInfo& b : inputs) out += (out.empty() ? "'" : ", '") + b.name + "'";
  return out.empty() ? "none" : out;
}

}  // namespace

Result<std::vector<Dims>> bench_shapes(const std::vector<BindingInfo>& inputs,
                                       const std::vector<std::string>& shape_args, int64_t batch) {
  std::vector<Dims> shapes;
  bool any_dynamic_batch = false;
  for (const BindingInfo& b : inputs) {
    Dims d = b.opt;
    if (batch > 0 && !b.min.empty() && b.min.size() == b.max.size() && b.min[0] != b.max[0]) {
      d[0] = batch;
      any_dynamic_batch = true;
    }
    shapes.push_back(std::move(d));
  }
  if (batch > 0 && !any_dynamic_batch)
    return invalid_argument("--batch " + std::to_string(batch) +
                            ": no input has a dynamic first dim (inputs: " + input_names(inputs) +
                            "); use --shape NAME:DIMS, or rebuild with kiln build --shape "
                            "NAME:MIN:OPT:MAX");
  std::map<std::string, bool> given;
  for (const std::string& arg : shape_args) {
    KILN_ASSIGN_OR_RETURN(ShapeProfile p, parse_shape_spec(arg));
    if (p.min != p.max)
      return invalid_argument("invalid --shape '" + arg +
                              "': kiln bench takes one shape per input, NAME:DIMS (like "
                              "x:8x3x224x224)");
    if (given[p.input])
      return invalid_argument("--shape gives input '" + p.input + "' more than once");
    given[p.input] = true;
    size_t i = 0;
    while (i < inputs.size() && inputs[i].name != p.input) ++i;
    if (i == inputs.size())
      return invalid_argument("--shape names input '" + p.input +
                              "', which the engine does not have; its inputs are " +
                              input_names(inputs));
    shapes[i] = p.opt;
  }
  return shapes;
}

Result<std::vector<Tensor>> random_inputs(const std::vector<BindingInfo>& inputs,
                                          const std::vector<Dims>& shapes, uint64_t seed) {
  if (inputs.size() != shapes.size())
    return invalid_argument("random_inputs: " + std::to_string(shapes.size()) + " shapes for " +
                            std::to_string(inputs.size()) + " inputs");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<Tensor> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const DType dt = inputs[i].dtype;
    if (dtype_size(dt) == 0)
      return invalid_argument("input '" + inputs[i].name +
                              "' has no known dtype; kiln bench cannot make values for it");
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, shapes[i]));
    const int64_t n = t.numel();
    switch (dt) {
      case DType::kF32: {
        float* p = t.data_as<float>();
        for (int64_t k = 0; k < n; ++k) p[k] = uniform(rng);
        break;
      }
      case DType::kF64: {
        double* p = t.data_as<double>();
        for (int64_t k = 0; k < n; ++k) p[k] = uniform(rng);
        break;
      }
      case DType::kF16: {
        uint16_t* p = t.data_as<uint16_t>();
        for (int64_t k = 0; k < n; ++k) p[k] = f32_to_f16(uniform(rng));
        break;
      }
      case DType::kBF16: {
        uint16_t* p = t.data_as<uint16_t>();
        for (int64_t k = 0; k < n; ++k) p[k] = f32_to_bf16(uniform(rng));
        break;
      }
      default: {
        // Integers and bools: 0 or 1 in the lowest byte of a zero-filled element.
        static_assert(std::endian::native == std::endian::little);
        uint8_t* p = t.data_as<uint8_t>();
        const size_t size = dtype_size(dt);
        for (int64_t k = 0; k < n; ++k) p[static_cast<size_t>(k) * size] = rng() & 1;
        break;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace kiln::cli
