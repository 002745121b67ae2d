// FileLock: an exclusive advisory lock (flock) held on a lock file, for read-merge-write cycles
// that several processes share (the runtime cache's save).
//
// Convention: to guard a file F, lock the sidecar file sidecar_lock_path(F) == F + ".lock", never
// F itself (F is replaced by rename, which would silently drop a lock held on the old inode).
// The lock file is created if missing and never deleted (deleting it would let two processes
// lock two different inodes under the same name).
//
// flock locks belong to an open file description: two FileLocks on the same path exclude each
// other even within one process and one thread (so never acquire twice on one thread: that
// deadlocks). The lock is released when the FileLock is destroyed or the process exits, even on a
// crash. Move-only. Advisory only: processes that do not take the lock are not stopped.
#pragma once

#include <string>

#include "kiln/status.h"

namespace kiln::platform {

class FileLock {
 public:
  // Blocks until the exclusive lock on `lock_path` is held. Errors: kNotFound when the folder does
  // not exist, kIoError when the file cannot be created/opened or flock fails.
  static Result<FileLock> acquire(const std::string& lock_path);
  // Like acquire(), but returns kUnavailable at once when another holder has the lock.
  static Result<FileLock> try_acquire(const std::string& lock_path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // Releases the lock now (idempotent).
  void release();

 private:
  FileLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  static Result<FileLock> lock(const std::string& lock_path, bool blocking);

  int fd_ = -1;
  std::string path_;
};

// The sidecar lock file guarding `path`: path + ".lock".
inline std::string sidecar_lock_path(const std::string& path) { return path + ".lock"; }

}  // namespace kiln::platform
