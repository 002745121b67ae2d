// Streams and the caching allocator of the CUDA backend.
//
// DevicePool keeps freed device memory cached for reuse, so steady-state runs allocate nothing
// from the driver; memory freed on a stream may be reused by later work on that stream at once,
// without a sync. Both classes are thread-safe; a Stream is used by one run at a time.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

// An owned cudaStream_t, destroyed with the last shared_ptr to it. Streams are created
// blocking (not cudaStreamNonBlocking), so work a caller queued on the legacy default stream
// (for example writing an input buffer) is ordered before kiln's work.
class Stream {
 public:
  static Result<std::shared_ptr<Stream>> create(int device);
  // With cudaStreamCreateWithFlags `flags` (cudaStreamNonBlocking for streams that capture graphs:
  // they must not synchronise implicitly with the legacy default stream).
  static Result<std::shared_ptr<Stream>> create(int device, unsigned flags);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  int device() const { return device_; }

 private:
  Stream(cudaStream_t s, int device) : stream_(s), device_(device) {}
  cudaStream_t stream_;
  int device_;
};

// DevicePool: the device memory of one CUDA backend, in one of two kinds.
//
// kCaching (the backend's runs): kiln's own caching allocator over plain cudaMalloc. A stream's
// freed blocks wait in that stream's free lists and later allocations on the same stream reuse
// them at once, with no sync (stream order makes it safe, as with cudaFreeAsync). Requests up to
// kSmallLimit are cut from shared segments of kSegmentBytes; larger ones get blocks of their own.
// Memory is handed back to the driver only when an allocation fails (then idle large blocks are
// freed and it is tried again) and when the pool goes. A stream that only the pool still holds
// is synchronised once and its free blocks become anyone's. Not the driver's stream-ordered
// pools: a process's first stream-ordered allocation sets that machinery up in the driver, 10-14
// ms on the H200 machine whatever the pool or size (first cudaMalloc: 0.1 ms), which a warm
// first inference would wait for.
// kStreamOrdered: a cudaMemPool with release threshold 0 (cudaMallocFromPoolAsync/cudaFreeAsync;
// freed memory goes back to the driver at each sync), for background helpers that must not keep
// memory cached.
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  enum class Kind { kCaching, kStreamOrdered };
  static constexpr size_t kSmallLimit = size_t{1} << 20;
  static constexpr size_t kSegmentBytes = size_t{8} << 20;

  static Result<std::shared_ptr<DevicePool>> create(int device, Kind kind);
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // A device tensor of `dims` on this pool's device, ordered on `stream`; its memory returns to
  // the pool, ordered on that stream, when the last copy of the tensor is gone (the tensor keeps
  // the stream and the pool alive). Contents are uninitialised; every block is 256-byte aligned.
  // kResourceExhausted names the size.
  Result<Tensor> alloc(DType dtype, Dims dims, const std::shared_ptr<Stream>& stream);
  // Raw bytes with the same ownership rules.
  Result<std::shared_ptr<void>> alloc_bytes(size_t bytes, const std::shared_ptr<Stream>& stream);

  int device() const { return device_; }
  Kind kind() const { return kind_; }
  // Bytes currently handed out, and held from the driver (kStreamOrdered: cudaMemPoolAttr*Current).
  uint64_t used_bytes() const;
  uint64_t reserved_bytes() const;
  // kCaching: driver allocations made so far (segments and large blocks); a steady state makes none.
  uint64_t driver_allocations() const;
  // kCaching, called at process exit (an atexit handler registered with the first caching pool,
  // which runs before CUDA's own clean-up): waits for the device and hands every block back to
  // the driver, free or not; blocks freed later are dropped. Allocations after it get new memory.
  void release_at_exit();

 private:
  struct Cache;  // kCaching's state
  DevicePool(Kind kind, cudaMemPool_t pool, int device);
  Result<void*> cached_alloc(size_t bytes, const std::shared_ptr<Stream>& stream, size_t* capacity);
  void cached_free(void* p, size_t bytes, const std::shared_ptr<Stream>& stream);
  Kind kind_;
  cudaMemPool_t pool_ = nullptr;  // kStreamOrdered
  int device_;
  std::unique_ptr<Cache> cache_;  // kCaching
};

// Copies every host tensor of `hosts` to device tensors (same dtypes and dims) that share one
// cudaMalloc'd block on the current device (`device`, which it must be), and waits for the copies.
// Pageable copies: on the H200 machine 12.6 MB of weights in 50 tensors take 1.9 ms so, against
// 7 ms through freshly pinned staging buffers. Freeing the block (with the last tensor)
// synchronises the device, as cudaFree does. Undefined tensors stay undefined. Errors name the
// tensor by `names[i]` (its index when `names` is shorter).
Result<std::vector<Tensor>> upload_tensors(std::span<const Tensor> hosts, std::span<const std::string> names,
                                           int device, const std::shared_ptr<Stream>& stream);

// Copies between host and device on `stream`. The host side may be pageable memory; copy_to_host
// waits for the stream, so the data is on the host when it returns.
Result<Tensor> copy_to_device(const Tensor& host, DevicePool& pool, const std::shared_ptr<Stream>& stream);
Result<Tensor> copy_to_host(const Tensor& device, cudaStream_t stream);

}  // namespace kiln::cuda
