#include "platform/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>

namespace kiln::platform {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* s = strerror_r(err, buf, sizeof(buf));
  return s ? std::string(s) : "errno " + std::to_string(err);
}

namespace {

Status os_error(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " '" + path + "': " + errno_text(err);
  if (err == ENOENT) return not_found(std::move(msg));
  if (err == ENOSPC || err == EDQUOT)
    return io_error(std::move(msg) + " (free some disk space and retry)");
  return io_error(std::move(msg));
}

int open_retry(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path, flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Closes fd on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  // Closes now and reports close()'s errno (0 on success).
  int close_now() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  int fd = open_retry(path.c_str(), O_RDONLY);
  if (fd < 0) return os_error("cannot open", path, errno);
  FdGuard guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return os_error("cannot stat", path, errno);
  if (S_ISDIR(st.st_mode)) return io_error("cannot read '" + path + "': it is a directory");
  std::vector<uint8_t> out;
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  uint8_t buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error("cannot read", path, errno);
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  if (path.empty()) return invalid_argument("write_file_atomic: empty path");
  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd = open_retry(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0 && errno != EEXIST) return os_error("cannot create temp file", tmp, errno);
  }
  if (fd < 0) return io_error("cannot create a unique temp file beside '" + path + "'");
  FdGuard guard(fd);
  auto fail = [&](Status s) {
    if (guard.get() >= 0) guard.close_now();
    ::unlink(tmp.c_str());
    return s;
  };

  size_t done = 0;
  while (done < bytes.size()) {
    size_t chunk = std::min<size_t>(bytes.size() - done, size_t{1} << 30);
    ssize_t n = ::write(fd, bytes.data() + done, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(os_error("cannot write", tmp, errno));
    }
    if (n == 0) return fail(io_error("cannot write '" + tmp + "': write made no progress"));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(os_error("cannot fsync", tmp, errno));
  if (int err = guard.close_now(); err != 0) return fail(os_error("cannot close", tmp, err));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(os_error("cannot rename '" + tmp + "' to", path, errno));

  // Make the rename itself durable. The new content is already in place, so a failure here is
  // reported but nothing is rolled back.
  std::string dir = parent_dir(path);
  int dfd = open_retry(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return os_error("cannot open folder to fsync", dir, errno);
  FdGuard dguard(dfd);
  if (::fsync(dfd) != 0 && errno != EINVAL) return os_error("cannot fsync folder", dir, errno);
  return Status();
}

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = open_retry(path.c_str(), O_RDONLY);
  if (fd < 0) return os_error("cannot open", path, errno);
  FdGuard guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return os_error("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) return io_error("cannot map '" + path + "': not a regular file");
  if (static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max())
    return io_error("cannot map '" + path + "': file too large for this address space");
  auto mf = std::make_shared<MappedFile>();
  mf->path_ = path;
  mf->size_ = static_cast<size_t>(st.st_size);
  if (mf->size_ == 0) return mf;
  void* p = ::mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    mf->size_ = 0;
    return os_error("cannot mmap", path, err);
  }
  mf->data_ = static_cast<const uint8_t*>(p);
  return mf;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(other.data_), size_(other.size_), path_(std::move(other.path_)) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = other.data_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

std::shared_ptr<void> lazily_zeroed(size_t bytes) {
  const size_t n = std::max<size_t>(bytes, 1);
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return std::shared_ptr<void>(p, [n](void* q) { ::munmap(q, n); });
}

}  // namespace kiln::platform
