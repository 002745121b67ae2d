#include "platform/file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "platform/file_lock.h"

namespace kiln::platform {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = fs::temp_directory_path().string() + "/kiln_platform_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

TEST(FileTest, AtomicWriteCreatesAndReplacesContent) {
  TempDir dir;
  std::string p = dir.file("a.bin");
  ASSERT_TRUE(write_file_atomic(p, bytes_of("first version, longer")).ok());
  auto r = read_file(p);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, bytes_of("first version, longer"));
  ASSERT_TRUE(write_file_atomic(p, bytes_of("second")).ok());
  r = read_file(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, bytes_of("second"));
  // Empty content is a valid file too.
  ASSERT_TRUE(write_file_atomic(p, {}).ok());
  r = read_file(p);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"a.bin"});  // no temp files left behind
}

TEST(FileTest, AtomicWriteLeavesNoTempFilesOnFailure) {
  TempDir dir;
  // Renaming a file over a non-empty directory fails after the temp file was written.
  std::string target = dir.file("target");
  fs::create_directory(target);
  ASSERT_TRUE(write_file_atomic(target + "/keep", bytes_of("x")).ok());
  Status s = write_file_atomic(target, bytes_of("payload"));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(target), std::string::npos) << s.message();
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(target));
}

TEST(FileTest, AtomicWriteIntoMissingFolderIsNotFound) {
  TempDir dir;
  Status s = write_file_atomic(dir.file("no/such/dir/f"), bytes_of("x"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("no/such/dir"), std::string::npos) << s.message();
}

// A write cut short by the OS (here RLIMIT_FSIZE standing in for a full disk) leaves the old
// file intact and no temp file. Runs in a child so the limit does not leak into other tests.
TEST(FileTest, FailedWriteKeepsOldFileIntact) {
  TempDir dir;
  std::string p = dir.file("cache.bin");
  ASSERT_TRUE(write_file_atomic(p, bytes_of("old content")).ok());
  std::vector<uint8_t> big(1 << 20, 0xab);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    Status s = write_file_atomic(p, big);
    bool ok = !s.ok() && s.code() == StatusCode::kIoError &&
              s.message().find("cannot write") != std::string::npos;
    ::_exit(ok ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "child saw a wrong status from the failed write";
  auto r = read_file(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, bytes_of("old content"));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"cache.bin"});
}

TEST(FileTest, ReadMissingFileIsNotFoundNamingPath) {
  TempDir dir;
  std::string p = dir.file("missing.kiln");
  auto r = read_file(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(p), std::string::npos);
  EXPECT_NE(r.status().message().find("No such file"), std::string::npos) << r.status().message();
}

TEST(FileTest, ReadDirectoryIsIoError) {
  TempDir dir;
  auto r = read_file(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
}

TEST(FileTest, ReadsLargeFileCompletely) {
  TempDir dir;
  std::vector<uint8_t> big(3 * 65536 + 17);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_TRUE(write_file_atomic(dir.file("big"), big).ok());
  auto r = read_file(dir.file("big"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, big);
}

TEST(MappedFileTest, MapsContents) {
  TempDir dir;
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ (i >> 8));
  ASSERT_TRUE(write_file_atomic(dir.file("m"), data).ok());
  auto m = MappedFile::open(dir.file("m"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ((*m)->size(), data.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->data()) % 4096, 0u);  // page aligned
  EXPECT_TRUE(std::equal(data.begin(), data.end(), (*m)->data()));
  // Moving transfers the mapping.
  MappedFile moved = std::move(**m);
  EXPECT_EQ((*m)->data(), nullptr);
  EXPECT_EQ(moved.size(), data.size());
  EXPECT_EQ(moved.data()[123], data[123]);
}

TEST(MappedFileTest, MappingSurvivesAtomicReplace) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.file("m"), bytes_of("original")).ok());
  auto m = MappedFile::open(dir.file("m"));
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(write_file_atomic(dir.file("m"), bytes_of("REPLACED")).ok());
  EXPECT_EQ(std::string((*m)->bytes().begin(), (*m)->bytes().end()), "original");
}

TEST(MappedFileTest, EmptyFileMapsToEmpty) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.file("e"), {}).ok());
  auto m = MappedFile::open(dir.file("e"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ((*m)->size(), 0u);
  EXPECT_EQ((*m)->data(), nullptr);
}

TEST(MappedFileTest, MissingFileAndDirectoryAreErrors) {
  TempDir dir;
  auto m = MappedFile::open(dir.file("nope"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find(dir.file("nope")), std::string::npos);
  auto d = MappedFile::open(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kIoError);
}

TEST(FileLockTest, SecondHolderIsExcludedUntilRelease) {
  TempDir dir;
  std::string lp = sidecar_lock_path(dir.file("cache"));
  EXPECT_EQ(lp, dir.file("cache.lock"));
  auto a = FileLock::acquire(lp);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(a->held());
  auto b = FileLock::try_acquire(lp);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  a->release();
  EXPECT_FALSE(a->held());
  auto c = FileLock::try_acquire(lp);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_TRUE(fs::exists(lp));  // the lock file stays
}

TEST(FileLockTest, BlockingAcquireWaitsForHolder) {
  TempDir dir;
  std::string lp = dir.file("x.lock");
  auto first = FileLock::acquire(lp);
  ASSERT_TRUE(first.ok());
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto second = FileLock::acquire(lp);
    got = second.ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got.load());            // still blocked
  FileLock moved = std::move(*first);  // moving keeps the lock held
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(got.load());
  moved.release();
  waiter.join();
  EXPECT_TRUE(got.load());
}

TEST(FileLockTest, MissingFolderIsNotFound) {
  TempDir dir;
  auto l = FileLock::acquire(dir.file("no/such.lock"));
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), StatusCode::kNotFound);
}

// Lazily zeroed memory reads as zeros and keeps what is written, page after page.
TEST(FileTest, LazilyZeroedMemoryIsZeroAndWritable) {
  const size_t n = (size_t{3} << 20) + 5;
  std::shared_ptr<void> mem = lazily_zeroed(n);
  ASSERT_TRUE(mem);
  auto* p = static_cast<unsigned char*>(mem.get());
  for (size_t i = 0; i < n; i += 4093) EXPECT_EQ(p[i], 0u) << i;
  EXPECT_EQ(p[n - 1], 0u);
  for (size_t i = 0; i < n; i += 4093) p[i] = static_cast<unsigned char>(i % 251 + 1);
  for (size_t i = 0; i < n; i += 4093) EXPECT_EQ(p[i], static_cast<unsigned char>(i % 251 + 1)) << i;
  EXPECT_TRUE(lazily_zeroed(0)) << "an empty request still maps a page";
}

}  // namespace
}  // namespace kiln::platform
