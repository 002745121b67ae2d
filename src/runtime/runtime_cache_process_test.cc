// The runtime cache across processes: concurrent saves keep the union, a SIGKILL in the middle of
// a save never tears the file, and the exit hook saves.
//
// Children are this test binary re-executed with KILN_CACHE_TEST_CHILD set: a static initializer
// below does the child's work and exits before gtest starts (exec rather than a bare fork, so the
// sanitizers and any threads of the parent stay out of the child).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

#include "kiln/runtime_cache.h"
#include "runtime/runtime_cache_impl.h"
#include "runtime/runtime_cache_test_util.h"

extern char** environ;

namespace kiln {
namespace {

using testing_cache::read_cache_file;
using testing_cache::TempDir;
using testing_cache::test_blob;
using testing_cache::test_key;
using testing_cache::test_meta;

constexpr const char* kChildEnv = "KILN_CACHE_TEST_CHILD";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

// Child specs, '|'-separated:
//   insert|PATH|TAG|COUNT|SIZE|SAVES   insert COUNT entries, saving SAVES times along the way
//   exit|PATH|TAG|COUNT                insert COUNT entries, then exit() without saving
//   slow|PATH|TAG|COUNT|SIZE|MARKER    insert, then save, creating MARKER once the lock is held
int run_child(const std::string& spec) {
  std::vector<std::string> f = split(spec, '|');
  if (f.size() < 4) return 10;
  const std::string& mode = f[0];
  const std::string& tag = f[2];
  int count = std::atoi(f[3].c_str());
  size_t size = f.size() > 4 ? static_cast<size_t>(std::atol(f[4].c_str())) : 32;
  Result<std::shared_ptr<RuntimeCache>> opened = RuntimeCache::open(f[1]);
  if (!opened.ok()) return 11;
  std::shared_ptr<RuntimeCache> cache = *opened;
  int saves = mode == "insert" ? std::atoi(f[5].c_str()) : 0;
  for (int i = 0; i < count; ++i) {
    if (!cache->insert(test_key(tag, i), test_blob(tag, i, size), test_meta(tag, i)).ok()) {
      return 12;
    }
    if (saves > 0 && (i + 1) % std::max(1, count / saves) == 0 && !cache->save().ok()) return 13;
  }
  if (mode == "exit") std::exit(0);  // the atexit hook saves
  if (mode == "slow") {
    std::string marker = f[5];
    internal::set_cache_save_hook_for_testing([marker](std::string_view stage) {
      if (stage == "locked") {
        int fd = ::open(marker.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) ::close(fd);
      }
    });
  }
  if (!cache->save().ok()) return 14;
  return 0;
}

// Runs before main() in a child; never returns there.
[[maybe_unused]] const bool kIsChild = [] {
  const char* spec = std::getenv(kChildEnv);
  if (spec == nullptr) return false;
  ::_exit(run_child(spec));
}();

pid_t spawn_child(const std::string& spec) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back(std::string(kChildEnv) + "=" + spec);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  char* argv[] = {exe.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data());
  EXPECT_EQ(rc, 0) << "posix_spawn: " << rc;
  return rc == 0 ? pid : -1;
}

// The child's exit code, or 128 + signal.
int wait_child(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int temp_files_beside(const std::string& path) {
  int n = 0;
  std::filesystem::path p(path);
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path())) {
    if (e.path().filename().string().starts_with(p.filename().string() + ".tmp.")) ++n;
  }
  return n;
}

// How many of family `tag`'s entries the file holds intact; a wrong blob fails the test.
int count_family(const testing_cache::FileContent& f, const std::string& tag, int count,
                 size_t size) {
  int n = 0;
  for (int i = 0; i < count; ++i) {
    auto it = f.blobs.find(test_key(tag, i));
    if (it == f.blobs.end()) continue;
    EXPECT_EQ(it->second, test_blob(tag, i, size)) << tag << " " << i;
    ++n;
  }
  return n;
}

TEST(RuntimeCacheProcessTest, FourProcessesSavingAtOnceKeepTheUnion) {
  TempDir dir;
  std::string path = dir.file("shared.kcache");
  constexpr int kCount = 40;
  std::vector<pid_t> kids;
  for (int p = 0; p < 4; ++p) {
    kids.push_back(spawn_child("insert|" + path + "|p" + std::to_string(p) + "|" +
                               std::to_string(kCount) + "|2048|8"));
  }
  for (pid_t pid : kids) EXPECT_EQ(wait_child(pid), 0);
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(f.blobs.size(), 4u * kCount);
  for (int p = 0; p < 4; ++p)
    EXPECT_EQ(count_family(f, "p" + std::to_string(p), kCount, 2048), kCount);
  Result<CacheVerifyReport> report = RuntimeCache::verify_file(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->valid_records, 4u * kCount);
  EXPECT_EQ(temp_files_beside(path), 0);
}

TEST(RuntimeCacheProcessTest, ExitHookSavesUnsavedEntries) {
  TempDir dir;
  std::string path = dir.file("exit.kcache");
  EXPECT_EQ(wait_child(spawn_child("exit|" + path + "|x|5")), 0);
  testing_cache::FileContent f = read_cache_file(path);
  EXPECT_EQ(count_family(f, "x", 5, 32), 5);
}

// SIGKILL at random points of a save, over and over: the file is always a complete old or new
// version (verify passes, each child's entries are all there or all absent, nothing saved earlier
// is lost), and a killed lock holder never blocks the next save.
TEST(RuntimeCacheProcessTest, SigkillMidSaveNeverTearsTheFile) {
  TempDir dir;
  std::string path = dir.file("killed.kcache");
  std::string marker = dir.file("locked");
  constexpr int kCount = 16;
  constexpr size_t kSize = 64 << 10;  // 1 MiB per child: a save takes a few milliseconds
  auto slow_spec = [&](const std::string& tag) {
    return "slow|" + path + "|" + tag + "|" + std::to_string(kCount) + "|" + std::to_string(kSize) +
           "|" + marker;
  };
  auto wait_for_marker = [&]() {
    for (int i = 0; i < 200000 && !std::filesystem::exists(marker); ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return std::filesystem::exists(marker);
  };

  // Calibrate: how long a save takes from holding the lock to the end of the process.
  pid_t pid = spawn_child(slow_spec("base"));
  ASSERT_TRUE(wait_for_marker());
  auto locked_at = std::chrono::steady_clock::now();
  ASSERT_EQ(wait_child(pid), 0);
  double save_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - locked_at)
          .count();
  std::filesystem::remove(marker);
  ASSERT_EQ(count_family(read_cache_file(path), "base", kCount, kSize), kCount);

  std::mt19937 rng(42);
  std::vector<std::string> saved = {"base"};
  int killed_before_done = 0, torn_temp_left = 0;
  for (int iter = 0; iter < 24; ++iter) {
    std::string tag = "k" + std::to_string(iter);
    pid = spawn_child(slow_spec(tag));
    ASSERT_TRUE(wait_for_marker()) << "child " << iter << " never took the lock";
    auto delay = std::chrono::microseconds(
        static_cast<int64_t>(std::uniform_real_distribution<double>(0, 1.3 * save_us)(rng)));
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    int code = wait_child(pid);
    ASSERT_TRUE(code == 0 || code == 128 + SIGKILL) << "child exit " << code;
    std::filesystem::remove(marker);
    torn_temp_left += temp_files_beside(path) > 0;

    testing_cache::FileContent f = read_cache_file(path);
    ASSERT_EQ(f.scan.state, internal::CacheFileState::kOk) << "iteration " << iter;
    ASSERT_EQ(f.scan.problem_count, 0u) << "torn file at iteration " << iter;
    for (const std::string& t : saved) ASSERT_EQ(count_family(f, t, kCount, kSize), kCount) << t;
    int mine = count_family(f, tag, kCount, kSize);
    ASSERT_TRUE(mine == 0 || mine == kCount) << "half a save in the file: " << mine;
    if (mine == kCount) saved.push_back(tag);
    if (mine == 0) ++killed_before_done;
  }
  EXPECT_GT(killed_before_done, 0) << "no kill landed before a save finished";
  std::printf(
      "[          ] save %.0f us; %d of 24 kills landed before the rename, %d left a "
      "temp file\n",
      save_us, killed_before_done, torn_temp_left);

  // The next save is not blocked by a killed lock holder, and sweeps the dead saves' temp files.
  ASSERT_EQ(wait_child(spawn_child("insert|" + path + "|after|3|100|1")), 0);
  EXPECT_EQ(temp_files_beside(path), 0);
  Result<CacheVerifyReport> report = RuntimeCache::verify_file(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

}  // namespace
}  // namespace kiln
