#include "runtime/backend_registry.h"

#include <map>
#include <mutex>

#include "backends/cpu/cpu_backend.h"

namespace kiln {

#ifdef KILN_HAVE_CUDA
Result<std::unique_ptr<Backend>> create_cuda_backend(int device);  // backends/cuda
#endif

std::vector<std::string> backend_names() {
#ifdef KILN_HAVE_CUDA
  return {"cpu", "cuda"};
#else
  return {"cpu"};
#endif
}

Result<std::shared_ptr<const Backend>> backend_get(std::string_view name, int device) {
  static std::mutex mu;
  static auto* table = new std::map<std::pair<std::string, int>, std::shared_ptr<const Backend>>();
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(std::string(name), device);
  if (auto it = table->find(key); it != table->end()) return it->second;
  std::shared_ptr<const Backend> b;
  if (name == "cpu") {
    b = cpu::create_cpu_backend();
  } else if (name == "cuda") {
#ifdef KILN_HAVE_CUDA
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Backend> cuda, create_cuda_backend(device));
    b = std::move(cuda);
#else
    return unavailable("this kiln was built without the CUDA backend (CUDA toolkit not found at build time)");
#endif
  } else {
    std::string valid;
    for (const auto& n : backend_names()) valid += (valid.empty() ? "" : "|") + n;
    return invalid_argument("invalid backend '" + std::string(name) + "'; expected " + valid);
  }
  (*table)[key] = b;
  return b;
}

}  // namespace kiln
