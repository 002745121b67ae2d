// An engine file and a runtime cache written onto a full disk: the write fails with a Status that
// names the file and the OS reason, the previous file stays intact and loadable, no temp file is
// left behind, and the next write after space comes back succeeds.
//
// Each case runs in a forked child. Where the test may mount (root, and mount namespaces
// allowed), the child makes a private mount namespace and a 1 MiB tmpfs, filled up to the last
// page: a real ENOSPC. Elsewhere (CI containers that refuse mount) the child lowers RLIMIT_FSIZE
// (and ignores SIGXFSZ) instead, so writes fail with EFBIG: the same code path in kiln.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "kiln/runtime_cache.h"
#include "platform/file.h"
#include "runtime/runtime_cache_test_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing_cache::TempDir;

const char* kExample = KILN_SOURCE_DIR "/examples/tiny_classifier/model.onnx";

// What the child reports back through a pipe: "" for success, else what went wrong.
struct ChildResult {
  std::string failure;
  std::string mode;  // "tmpfs" or "rlimit"
};

// The disk the child writes on, and how to fill it.
class FullDisk {
 public:
  explicit FullDisk(std::string dir) : dir_(std::move(dir)) {}

  // Mounts a small tmpfs on dir_ in a private mount namespace; false when not allowed.
  bool mount_tmpfs() {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m") != 0) return false;
    tmpfs_ = true;
    return true;
  }
  bool tmpfs() const { return tmpfs_; }

  // Makes further writes fail: fills the tmpfs to the last byte, or lowers the file size limit
  // below `next_write_bytes`.
  std::string fill(size_t next_write_bytes) {
    if (!tmpfs_) {
      ::signal(SIGXFSZ, SIG_IGN);
      // The soft limit only: an unprivileged process could not raise a hard one back.
      struct rlimit rl;
      if (::getrlimit(RLIMIT_FSIZE, &rl) != 0) return "getrlimit failed";
      saved_ = rl;
      rl.rlim_cur = next_write_bytes / 2;
      if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return "setrlimit failed";
      return "";
    }
    int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return "cannot create filler file";
    std::vector<char> page(4096, 'x');
    for (size_t chunk : {size_t{4096}, size_t{1}}) {
      while (::write(fd, page.data(), chunk) > 0) {
      }
      if (errno != ENOSPC) {
        ::close(fd);
        return std::string("filler stopped with ") + std::strerror(errno);
      }
    }
    ::close(fd);
    return "";
  }

  // Gives the space back.
  void drain() {
    if (tmpfs_) {
      ::unlink(filler().c_str());
    } else {
      ::setrlimit(RLIMIT_FSIZE, &saved_);
    }
  }

  // The folder's entries except the filler.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      std::string name = e.path().filename();
      if (name != "filler") out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // The message a write on this disk must carry.
  const char* os_reason() const { return tmpfs_ ? "No space left on device" : "File too large"; }

 private:
  std::string filler() const { return dir_ + "/filler"; }
  std::string dir_;
  bool tmpfs_ = false;
  struct rlimit saved_ = {RLIM_INFINITY, RLIM_INFINITY};
};

// Runs `body(disk)` in a child; `body` returns "" on success or a description of the failure.
ChildResult run_in_child(const std::string& dir,
                         const std::function<std::string(FullDisk&)>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return {"pipe failed", ""};
  pid_t pid = ::fork();
  if (pid < 0) return {"fork failed", ""};
  if (pid == 0) {
    ::close(fds[0]);
    FullDisk disk(dir);
    disk.mount_tmpfs();
    std::string msg = std::string(disk.tmpfs() ? "tmpfs" : "rlimit") + "\n" + body(disk);
    size_t done = 0;
    while (done < msg.size()) {
      ssize_t n = ::write(fds[1], msg.data() + done, msg.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(0);  // no atexit handlers: the forked runtime-cache registry must not save
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
    return {"child died (status " + std::to_string(wstatus) + "): " + got, ""};
  size_t nl = got.find('\n');
  if (nl == std::string::npos) return {"child wrote nothing", ""};
  return {got.substr(nl + 1), got.substr(0, nl)};
}

std::string expect_io_error(const Status& s, const std::string& path, const FullDisk& disk) {
  if (s.ok()) return "write on a full disk succeeded";
  if (s.code() != StatusCode::kIoError) return "wrong code: " + s.to_string();
  if (s.message().find(path) == std::string::npos) return "message lacks the path: " + s.message();
  if (s.message().find(disk.os_reason()) == std::string::npos)
    return "message lacks the OS reason: " + s.message();
  return "";
}

TEST(FullDiskTest, EngineFileWriteFailsCleanlyAndKeepsTheOldEngine) {
  BuildOptions small, large;
  small.shapes.push_back(ShapeProfile{"x", {1, 16}, {4, 16}, {64, 16}});
  large = small;
  // A second engine big enough not to fit: same program, a large metadata entry.
  large.metadata["padding"] = std::string(600 * 1024, 'p');
  auto old_bytes = build_engine(kExample, small);
  auto new_bytes = build_engine(kExample, large);
  ASSERT_TRUE(old_bytes.ok()) << old_bytes.status().to_string();
  ASSERT_TRUE(new_bytes.ok()) << new_bytes.status().to_string();
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.file("model.kiln");

  ChildResult r = run_in_child(dir.path(), [&](FullDisk& disk) -> std::string {
    if (Status s = platform::write_file_atomic(path, *old_bytes); !s.ok())
      return "first write failed: " + s.to_string();
    if (std::string e = disk.fill(new_bytes->size()); !e.empty()) return e;
    Status s = platform::write_file_atomic(path, *new_bytes);
    if (std::string e = expect_io_error(s, path, disk); !e.empty()) return e;
    if (disk.entries() != std::vector<std::string>{"model.kiln"})
      return "temp file left behind";
    auto back = platform::read_file(path);
    if (!back.ok() || *back != *old_bytes) return "old engine file changed";
    auto engine = Engine::load(path);
    if (!engine.ok()) return "old engine no longer loads: " + engine.status().to_string();
    disk.drain();
    if (Status s2 = platform::write_file_atomic(path, *new_bytes); !s2.ok())
      return "write after freeing space failed: " + s2.to_string();
    auto again = Engine::load(path);
    if (!again.ok() || (*again)->info().metadata.count("padding") != 1)
      return "new engine did not load";
    return "";
  });
  EXPECT_EQ(r.failure, "") << "(mode: " << r.mode << ")";
  std::printf("[ full disk simulated with %s ]\n", r.mode.c_str());
}

TEST(FullDiskTest, RuntimeCacheSaveFailsCleanlyAndKeepsTheOldFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = dir.file("runtime.kcache");

  ChildResult r = run_in_child(dir.path(), [&](FullDisk& disk) -> std::string {
    auto cache = RuntimeCache::open(path);
    if (!cache.ok()) return "open failed: " + cache.status().to_string();
    RuntimeCache& c = **cache;
    for (int i = 0; i < 4; ++i) {
      Status s = c.insert(testing_cache::test_key("old", i), testing_cache::test_blob("old", i, 1000),
                          testing_cache::test_meta("old", i));
      if (!s.ok()) return "insert failed: " + s.to_string();
    }
    if (Status s = c.save(); !s.ok()) return "first save failed: " + s.to_string();
    auto before = platform::read_file(path);
    if (!before.ok()) return "cannot read the saved cache";
    constexpr size_t kBig = 600 * 1024;  // fits the tmpfs only once the filler is gone
    Status s = c.insert(testing_cache::test_key("new", 0), testing_cache::test_blob("new", 0, kBig),
                        testing_cache::test_meta("new", 0));
    if (!s.ok()) return "insert failed: " + s.to_string();
    if (std::string e = disk.fill(kBig); !e.empty()) return e;
    s = c.save();
    if (std::string e = expect_io_error(s, path, disk); !e.empty()) return e;
    auto after = platform::read_file(path);
    if (!after.ok() || *after != *before) return "old cache file changed";
    for (const std::string& name : disk.entries()) {
      if (name != "runtime.kcache" && name != "runtime.kcache.lock")
        return "stray file left behind: " + name;
    }
    auto report = RuntimeCache::verify_file(path);
    if (!report.ok() || !report->ok() || report->valid_records != 4)
      return "old cache file no longer verifies";
    disk.drain();
    if (Status s2 = c.save(); !s2.ok()) return "save after freeing space failed: " + s2.to_string();
    testing_cache::FileContent content = testing_cache::read_cache_file(path);
    if (content.blobs.size() != 5) return "saved cache lacks entries";
    return "";
  });
  EXPECT_EQ(r.failure, "") << "(mode: " << r.mode << ")";
  std::printf("[ full disk simulated with %s ]\n", r.mode.c_str());
}

}  // namespace
}  // namespace kiln
