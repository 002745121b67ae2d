#include "backends/cuda/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
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

struct DevicePool::Cache {
  // A stream's freed blocks (capacity -> address). The stream is held so that its handle cannot
  // be reused by a new stream while blocks wait here.
  struct StreamFree {
    std::shared_ptr<Stream> stream;
    std::multimap<size_t, void*> blocks;
  };
  std::mutex mu;
  std::map<const Stream*, StreamFree> per_stream;
  std::multimap<size_t, void*> idle;  // free blocks no pending work touches: any stream's
  std::vector<void*> segments;        // kSegmentBytes each, cut into small blocks
  char* bump = nullptr;               // the newest segment's uncut rest
  size_t bump_left = 0;
  std::map<void*, size_t> large;      // blocks of their own (handed out or free) -> capacity
  uint64_t used = 0, reserved = 0, driver_allocations = 0;
  bool closed = false;                // the process is exiting: release_at_exit ran
};

namespace {

constexpr size_t kSmallGranule = 512;
constexpr size_t kLargeGranule = size_t{2} << 20;

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

// Takes a block of capacity in [want, limit] from `m`, the smallest that fits.
void* take(std::multimap<size_t, void*>& m, size_t want, size_t limit, size_t* capacity) {
  auto it = m.lower_bound(want);
  if (it == m.end() || it->first > limit) return nullptr;
  *capacity = it->first;
  void* p = it->second;
  m.erase(it);
  return p;
}

Status malloc_status(cudaError_t err, size_t bytes, int device) {
  return cuda_status(err, "cudaMalloc(" + std::to_string(bytes) + " bytes on cuda:" + std::to_string(device) + ")");
}

}  // namespace

DevicePool::DevicePool(Kind kind, cudaMemPool_t pool, int device) : kind_(kind), pool_(pool), device_(device) {
  if (kind == Kind::kCaching) cache_ = std::make_unique<Cache>();
}

namespace {

// The caching pools alive in the process. At exit, before CUDA's own clean-up (registered when
// CUDA was initialised, so earlier, so it runs later), each one waits for its device and hands
// every block back to the driver: what a long-lived backend caches would otherwise still be
// allocated when the context goes, which is no harm but is what compute-sanitizer's leak check
// reports.
class LivePools {
 public:
  static LivePools& get() {
    static LivePools* p = [] {
      auto* pools = new LivePools();  // never destroyed: used by the exit handler
      std::atexit([] { get().release_all(); });
      return pools;
    }();
    return *p;
  }
  void add(const std::shared_ptr<DevicePool>& pool) {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(pools_, [](const std::weak_ptr<DevicePool>& w) { return w.expired(); });
    pools_.push_back(pool);
  }
  void release_all() {
    std::vector<std::shared_ptr<DevicePool>> live;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& w : pools_)
        if (auto p = w.lock()) live.push_back(std::move(p));
    }
    for (const auto& p : live) p->release_at_exit();
  }

 private:
  std::mutex mu_;
  std::vector<std::weak_ptr<DevicePool>> pools_;
};

}  // namespace

void DevicePool::release_at_exit() {
  if (!cache_) return;
  Cache& c = *cache_;
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.closed) return;
  c.closed = true;
  RelaxedCaptureMode relaxed;
  if (device_set(device_).ok() && cudaDeviceSynchronize() == cudaSuccess) {
    for (void* seg : c.segments) cudaFree(seg);
    for (const auto& [p, bytes] : c.large) cudaFree(p);
  }
  cudaGetLastError();
  c.segments.clear();
  c.large.clear();
  c.idle.clear();
  for (auto& [key, f] : c.per_stream) f.blocks.clear();
  c.bump = nullptr;
  c.bump_left = 0;
  c.reserved = 0;
}

Result<std::shared_ptr<DevicePool>> DevicePool::create(int device, Kind kind) {
  KILN_RETURN_IF_ERROR(device_set(device));
  if (kind == Kind::kCaching) {
    std::shared_ptr<DevicePool> pool(new DevicePool(kind, nullptr, device));
    LivePools::get().add(pool);
    return pool;
  }
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate");
  uint64_t threshold = 0;  // nothing stays cached
  Status s = cuda_status(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                         "cudaMemPoolSetAttribute(release threshold)");
  if (!s.ok()) {
    cudaMemPoolDestroy(pool);
    return s;
  }
  return std::shared_ptr<DevicePool>(new DevicePool(kind, pool, device));
}

DevicePool::~DevicePool() {
  if (pool_) cudaMemPoolDestroy(pool_);
  if (!cache_) return;
  // Every block is free (handed-out ones keep the pool alive). cudaFree waits for the device, so
  // no stream's pending work still reads them; errors (CUDA shut down at exit first) are moot.
  RelaxedCaptureMode relaxed;
  const int previous = [] {
    int d = -1;
    return cudaGetDevice(&d) == cudaSuccess ? d : -1;
  }();
  if (previous != device_) cudaSetDevice(device_);
  for (void* seg : cache_->segments) cudaFree(seg);
  for (const auto& [p, bytes] : cache_->large) cudaFree(p);
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
  cudaGetLastError();
}

Result<void*> DevicePool::cached_alloc(size_t bytes, const std::shared_ptr<Stream>& stream, size_t* out_capacity) {
  Cache& c = *cache_;
  const bool small = bytes <= kSmallLimit;
  const size_t want = small ? round_up(bytes, kSmallGranule) : round_up(bytes, kLargeGranule);
  const size_t limit = small ? 2 * want : want + want / 4;
  size_t capacity = 0;
  // From the stream's own free blocks or the idle ones.
  auto reuse = [&]() -> void* {
    if (auto it = c.per_stream.find(stream.get()); it != c.per_stream.end())
      if (void* p = take(it->second.blocks, want, limit, &capacity)) return p;
    return take(c.idle, want, limit, &capacity);
  };
  // From the newest segment's uncut rest.
  auto carve = [&]() -> void* {
    if (!small || c.bump_left < want) return nullptr;
    void* p = c.bump;
    c.bump += want;
    c.bump_left -= want;
    capacity = want;
    return p;
  };
  auto handed_out = [&](void* p) -> Result<void*> {
    c.used += capacity;
    *out_capacity = capacity;
    return p;
  };
  // Moves the free blocks of the streams `pick` selects to the idle list once those streams
  // have finished what they were given: blocks freed meanwhile stay where they are.
  auto settle = [&](std::unique_lock<std::mutex>& lock, auto pick) {
    std::vector<std::pair<std::shared_ptr<Stream>, std::multimap<size_t, void*>>> moved;
    for (auto it = c.per_stream.begin(); it != c.per_stream.end();) {
      if (!pick(it->second)) {
        ++it;
        continue;
      }
      moved.emplace_back(it->second.stream, std::move(it->second.blocks));
      it->second.blocks.clear();
      if (it->second.stream.use_count() == 2) {  // ours and the copy above: nobody else holds it
        it = c.per_stream.erase(it);
      } else {
        ++it;
      }
    }
    if (moved.empty()) return;
    lock.unlock();
    {
      RelaxedCaptureMode relaxed;
      for (auto& [s, blocks] : moved) cudaStreamSynchronize(s->get());  // an error leaves them unusable
      cudaGetLastError();
    }
    lock.lock();
    for (auto& [s, blocks] : moved) c.idle.merge(blocks);
    lock.unlock();
    moved.clear();  // streams nobody holds are destroyed outside the lock
    lock.lock();
  };

  std::unique_lock<std::mutex> lock(c.mu);
  if (void* p = reuse()) return handed_out(p);
  // Streams only this pool still holds (their programs are gone): their blocks are anyone's.
  bool orphans = false;
  for (const auto& [key, f] : c.per_stream) orphans = orphans || f.stream.use_count() == 1;
  if (orphans) {
    settle(lock, [](const Cache::StreamFree& f) { return f.stream.use_count() == 1; });
    if (void* p = reuse()) return handed_out(p);
  }
  if (void* p = carve()) return handed_out(p);
  lock.unlock();

  const size_t driver_bytes = small ? kSegmentBytes : want;
  void* fresh = nullptr;
  cudaError_t err;
  {
    RelaxedCaptureMode relaxed;  // a caller capturing in global mode on another thread is not disturbed
    err = cudaMalloc(&fresh, driver_bytes);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      // Out of memory: hand idle large blocks back (after every stream finished with its free
      // ones) and try once more. Segments stay: their small blocks may be in use.
      lock.lock();
      settle(lock, [](const Cache::StreamFree& f) { return !f.blocks.empty(); });
      for (auto it = c.idle.begin(); it != c.idle.end();) {
        auto big = c.large.find(it->second);
        if (big == c.large.end()) {
          ++it;
          continue;
        }
        cudaFree(big->first);
        c.reserved -= big->second;
        c.large.erase(big);
        it = c.idle.erase(it);
      }
      lock.unlock();
      cudaGetLastError();
      err = cudaMalloc(&fresh, driver_bytes);
    }
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    return malloc_status(err, driver_bytes, device_);
  }
  lock.lock();
  ++c.driver_allocations;
  c.reserved += driver_bytes;
  if (!small) {
    c.large.emplace(fresh, want);
    capacity = want;
    return handed_out(fresh);
  }
  // A new segment: the old one's uncut rest was never used, so any stream may take it.
  if (c.bump_left >= kSmallGranule) c.idle.emplace(c.bump_left, c.bump);
  c.segments.push_back(fresh);
  c.bump = static_cast<char*>(fresh) + want;
  c.bump_left = kSegmentBytes - want;
  capacity = want;
  return handed_out(fresh);
}

void DevicePool::cached_free(void* p, size_t capacity, const std::shared_ptr<Stream>& stream) {
  Cache& c = *cache_;
  std::lock_guard<std::mutex> lock(c.mu);
  c.used -= capacity;
  if (c.closed) return;  // exiting: the block went back to the driver with the rest (or is kept)
  auto [it, added] = c.per_stream.try_emplace(stream.get());
  if (added) it->second.stream = stream;
  it->second.blocks.emplace(capacity, p);
}

Result<std::shared_ptr<void>> DevicePool::alloc_bytes(size_t bytes, const std::shared_ptr<Stream>& stream) {
  if (bytes == 0) return std::shared_ptr<void>();
  if (!stream) return invalid_argument("DevicePool::alloc_bytes: no stream");
  std::shared_ptr<DevicePool> self = shared_from_this();
  if (cache_) {
    if (bytes > (size_t{1} << 50))
      return resource_exhausted("device allocation of " + std::to_string(bytes) + " bytes is too large");
    size_t capacity = 0;  // the block's: what it goes back to the free lists as
    KILN_ASSIGN_OR_RETURN(void* p, cached_alloc(bytes, stream, &capacity));
    return std::shared_ptr<void>(p, [self, stream, capacity](void* q) { self->cached_free(q, capacity, stream); });
  }
  void* p = nullptr;
  cudaError_t err = cudaMallocFromPoolAsync(&p, bytes, pool_, stream->get());
  if (err != cudaSuccess)
    return cuda_status(err, "cudaMallocFromPoolAsync(" + std::to_string(bytes) + " bytes on cuda:" +
                                std::to_string(device_) + ")");
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
  if (cache_) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    return cache_->used;
  }
  uint64_t v = 0;
  cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &v);
  return v;
}

uint64_t DevicePool::driver_allocations() const {
  if (!cache_) return 0;
  std::lock_guard<std::mutex> lock(cache_->mu);
  return cache_->driver_allocations;
}

uint64_t DevicePool::reserved_bytes() const {
  if (cache_) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    return cache_->reserved;
  }
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
