// Loading libcudnn.so.9 (see cudnn_api.h).
#ifdef KILN_HAVE_CUDNN

#include "backends/cuda/cudnn_api.h"

#include <dlfcn.h>

namespace kiln::cuda {
namespace {

Result<const CudnnApi*> load() {
  std::string tried;
  void* lib = nullptr;
  std::string path;
  // The build's own library first, then whatever the dynamic loader finds (LD_LIBRARY_PATH, the
  // binary's rpath, ldconfig, or a libcudnn.so.9 the process already loaded, such as PyTorch's).
  for (const char* candidate : {KILN_CUDNN_LIBRARY, "libcudnn.so.9"}) {
    lib = dlopen(candidate, RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      path = candidate;
      break;
    }
    const char* err = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + candidate + ": " + (err ? err : "not loadable");
  }
  if (!lib) return unavailable("cuDNN: libcudnn.so.9 could not be loaded (" + tried + ")");
  auto* api = new CudnnApi();  // lives as long as the process: the library is never unloaded
  api->path = path;
  std::string missing;
#define KILN_CUDNN_RESOLVE(f)                                       \
  api->f = reinterpret_cast<decltype(api->f)>(dlsym(lib, #f));      \
  if (!api->f) missing += std::string(missing.empty() ? "" : ", ") + #f;
  KILN_CUDNN_FUNCTIONS(KILN_CUDNN_RESOLVE)
#undef KILN_CUDNN_RESOLVE
  if (!missing.empty()) {
    delete api;
    return unavailable("cuDNN: " + path + " lacks " + missing);
  }
  api->version = static_cast<int>(api->cudnnGetVersion());
  if (api->version / 10000 != 9) {
    const int v = api->version;
    delete api;
    return unavailable("cuDNN: " + path + " is version " + std::to_string(v / 10000) + "." +
                       std::to_string(v / 100 % 100) + "; kiln needs cuDNN 9");
  }
  return static_cast<const CudnnApi*>(api);
}

}  // namespace

Result<const CudnnApi*> cudnn_api() {
  static const Result<const CudnnApi*> api = load();
  return api;
}

Status cudnn_status(cudnnStatus_t s, std::string_view call, std::string_view where, StatusCode code) {
  if (s == CUDNN_STATUS_SUCCESS) return Status();
  Result<const CudnnApi*> api = cudnn_api();
  std::string name = api.ok() ? (*api)->cudnnGetErrorString(s) : "status " + std::to_string(static_cast<int>(s));
  return Status(code, std::string(call) + " failed: " + name + " (" + std::string(where) + ")");
}

}  // namespace kiln::cuda

#endif  // KILN_HAVE_CUDNN
