#include "platform/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "platform/file.h"

namespace kiln::platform {

Result<FileLock> FileLock::acquire(const std::string& lock_path) { return lock(lock_path, true); }

Result<FileLock> FileLock::try_acquire(const std::string& lock_path) {
  return lock(lock_path, false);
}

Result<FileLock> FileLock::lock(const std::string& lock_path, bool blocking) {
  int fd;
  do {
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int err = errno;
    std::string msg = "cannot open lock file '" + lock_path + "': " + errno_text(err);
    return err == ENOENT ? not_found(std::move(msg)) : io_error(std::move(msg));
  }
  int op = LOCK_EX | (blocking ? 0 : LOCK_NB);
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return unavailable("lock file '" + lock_path + "' is held by another holder");
    return io_error("cannot lock '" + lock_path + "': " + errno_text(err));
  }
  return FileLock(fd, lock_path);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() {
  if (fd_ < 0) return;
  // Closing the only descriptor of the open file description drops the flock.
  ::close(fd_);
  fd_ = -1;
}

}  // namespace kiln::platform
