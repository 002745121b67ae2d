#include "backends/cuda/allocator.h"

#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "backends/cuda/capture_hooks.h"
#include "backends/cuda/device.h"

namespace kiln::cuda {

Result<std::shared_ptr<Stream>> Stream::create(int device) {
  KILN_RETURN_IF_ERROR(device_set(device));
  cudaStream_t s = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamCreate(&s), "cudaStreamCreate");
  return std::shared_ptr<Stream>(new Stream(s, device));
}

Result<std::shared_ptr<Stream>> Stream::create(int device, unsigned flags) {
  KILN_RETURN_IF_ERROR(device_set(device));
  cudaStream_t s = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, flags), "cudaStreamCreateWithFlags");
  return std::shared_ptr<Stream>(new Stream(s, device));
}

Stream::~Stream() { cudaStreamDestroy(stream_); }

Result<std::shared_ptr<DevicePool>> DevicePool::create(int device, uint64_t release_threshold) {
  KILN_RETURN_IF_ERROR(device_set(device));
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate");
  uint64_t threshold = release_threshold;
  Status s = cuda_status(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                         "cudaMemPoolSetAttribute(release threshold)");
  if (!s.ok()) {
    cudaMemPoolDestroy(pool);
    return s;
  }
  return std::shared_ptr<DevicePool>(new DevicePool(pool, device));
}

DevicePool::~DevicePool() { cudaMemPoolDestroy(pool_); }

namespace {

// The helper threads of DevicePool::prime, joined at exit: before CUDA's own clean-up, which
// registered its exit handler earlier (the pool exists, so CUDA is initialised).
class Primers {
 public:
  static Primers& get() {
    static Primers* p = [] {
      auto* primers = new Primers();  // never destroyed: threads are joined at exit
      std::atexit([] { get().join(); });
      return primers;
    }();
    return *p;
  }
  void start(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      threads_.emplace_back(std::move(fn));
    } catch (const std::system_error&) {  // no thread: the first run sets the pool up instead
    }
  }
  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace

void DevicePool::prime() {
  std::shared_ptr<DevicePool> self = shared_from_this();
  Primers::get().start([self] {
    // A caller may be capturing a graph in global mode meanwhile: none of this is part of it.
    RelaxedCaptureMode relaxed;
    Result<std::shared_ptr<Stream>> stream = Stream::create(self->device_, cudaStreamNonBlocking);
    if (!stream.ok()) return;
    {
      Result<std::shared_ptr<void>> first = self->alloc_bytes(1, *stream);
      if (!first.ok()) cudaGetLastError();  // a real allocation reports the error where it matters
    }
    cudaStreamSynchronize((*stream)->get());
  });
}

Result<std::shared_ptr<void>> DevicePool::alloc_bytes(size_t bytes, const std::shared_ptr<Stream>& stream) {
  if (bytes == 0) return std::shared_ptr<void>();
  void* p = nullptr;
  cudaError_t err = cudaMallocFromPoolAsync(&p, bytes, pool_, stream->get());
  if (err != cudaSuccess)
    return cuda_status(err, "cudaMallocFromPoolAsync(" + std::to_string(bytes) + " bytes on cuda:" +
                                std::to_string(device_) + ")");
  std::shared_ptr<DevicePool> self = shared_from_this();
  return std::shared_ptr<void>(p, [self, stream](void* q) { cudaFreeAsync(q, stream->get()); });
}

Result<Tensor> DevicePool::alloc(DType dtype, Dims dims, const std::shared_ptr<Stream>& stream) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 50) / d))
      return resource_exhausted("device tensor of shape " + dims_to_string(dims) + " is too large");
    n *= d;
  }
  size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> mem, alloc_bytes(bytes, stream));
  void* data = mem.get();
  return Tensor::wrap(dtype, std::move(dims), data, std::move(mem), Device{DeviceType::kCuda, device_});
}

uint64_t DevicePool::used_bytes() const {
  uint64_t v = 0;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &v);
  return v;
}

uint64_t DevicePool::reserved_bytes() const {
  uint64_t v = 0;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &v);
  return v;
}

Result<Tensor> copy_to_device(const Tensor& host, DevicePool& pool, const std::shared_ptr<Stream>& stream) {
  KILN_ASSIGN_OR_RETURN(Tensor dev, pool.alloc(host.dtype(), host.dims(), stream));
  if (host.nbytes() > 0)
    KILN_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dev.data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice, stream->get()),
        "cudaMemcpyAsync(host to device, " + std::to_string(host.nbytes()) + " bytes)");
  return dev;
}

Result<Tensor> copy_to_host(const Tensor& device, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(Tensor host, Tensor::empty(device.dtype(), device.dims()));
  if (host.nbytes() > 0) {
    KILN_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(host.data(), device.data(), host.nbytes(), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync(device to host, " + std::to_string(host.nbytes()) + " bytes)");
    KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "cudaStreamSynchronize (device to host copy)");
  }
  return host;
}

Result<std::vector<Tensor>> upload_tensors(std::span<const Tensor> hosts, std::span<const std::string> names,
                                           int device, const std::shared_ptr<Stream>& stream) {
  // One cudaMalloc for all of them (each tensor 256-byte aligned in it). Not the stream-ordered
  // pool: the first growth of a fresh pool by the 10 MB of mobilenet's weights took 7.5-8.1 ms on
  // the H200 machine, cudaMalloc 0.16-0.21 ms. The weights live as long as the program anyway.
  constexpr size_t kAlign = 256;
  std::vector<size_t> offsets(hosts.size(), 0);
  size_t total = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (!hosts[i].defined()) continue;
    offsets[i] = total;
    total += (hosts[i].nbytes() + kAlign - 1) / kAlign * kAlign;
  }
  std::shared_ptr<void> block;  // none when every tensor is empty
  if (total > 0) {
    void* p = nullptr;
    KILN_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, total), "cudaMalloc (" + std::to_string(total) + " bytes of constants on cuda:" +
                                                         std::to_string(device) + ")");
    block = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
  }
  auto* base = static_cast<char*>(block.get());
  std::vector<Tensor> out(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    const Tensor& t = hosts[i];
    if (!t.defined()) continue;
    char* dst = t.nbytes() > 0 ? base + offsets[i] : nullptr;
    if (dst)
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, t.data(), t.nbytes(), cudaMemcpyHostToDevice, stream->get()),
                                "cudaMemcpyAsync (uploading '" + (i < names.size() ? names[i] : std::to_string(i)) +
                                    "', " + std::to_string(t.nbytes()) + " bytes)");
    out[i] = Tensor::wrap(t.dtype(), t.dims(), dst, block, Device{DeviceType::kCuda, device});
  }
  KILN_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream->get()), "cudaStreamSynchronize (upload)");
  return out;
}

}  // namespace kiln::cuda
