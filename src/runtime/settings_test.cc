// Setting values: names, parsing, merging, the cache setting and context keys.
#include <gtest/gtest.h>

#include <memory>
#include <unordered_set>

#include "kiln/runtime.h"

namespace kiln {
namespace {

// RuntimeCache is only declared so far; a handle is compared and counted, never dereferenced.
std::shared_ptr<RuntimeCache> fake_cache_handle(const std::shared_ptr<int>& owner) {
  return std::shared_ptr<RuntimeCache>(owner, reinterpret_cast<RuntimeCache*>(owner.get()));
}

TEST(RuntimeSettingsNamesTest, EveryValueRoundTripsThroughItsName) {
  for (auto s : {CudaGraphStrategy::kDisabled, CudaGraphStrategy::kWholeGraphCapture}) {
    Result<CudaGraphStrategy> parsed = parse_cuda_graph_strategy(to_string(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
    EXPECT_EQ(*parsed, s);
  }
  for (auto s : {KernelSpecializationStrategy::kLazy, KernelSpecializationStrategy::kEager,
                 KernelSpecializationStrategy::kNone}) {
    Result<KernelSpecializationStrategy> parsed =
        parse_kernel_specialization_strategy(to_string(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(to_string(CudaGraphStrategy::kWholeGraphCapture), "whole_graph_capture");
  EXPECT_EQ(to_string(CudaGraphStrategy::kDisabled), "disabled");
  EXPECT_EQ(to_string(KernelSpecializationStrategy::kLazy), "lazy");
  EXPECT_EQ(to_string(KernelSpecializationStrategy::kEager), "eager");
  EXPECT_EQ(to_string(KernelSpecializationStrategy::kNone), "none");
}

TEST(RuntimeSettingsNamesTest, SourcesHaveTheirUserNames) {
  EXPECT_EQ(to_string(SettingSource::kCall), "call");
  EXPECT_EQ(to_string(SettingSource::kEngine), "engine");
  EXPECT_EQ(to_string(SettingSource::kScope), "scope");
  EXPECT_EQ(to_string(SettingSource::kProcessDefault), "default");
  EXPECT_EQ(to_string(SettingSource::kEnvironment), "environment");
  EXPECT_EQ(to_string(SettingSource::kBuiltin), "builtin");
}

TEST(RuntimeSettingsNamesTest, UnknownCudaGraphStrategyListsTheValidNames) {
  Result<CudaGraphStrategy> r = parse_cuda_graph_strategy("whole");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture");
  // Names are exact: no case folding, no surrounding space, no empty name.
  EXPECT_FALSE(parse_cuda_graph_strategy("Disabled").ok());
  EXPECT_FALSE(parse_cuda_graph_strategy(" disabled").ok());
  EXPECT_FALSE(parse_cuda_graph_strategy("").ok());
}

TEST(RuntimeSettingsNamesTest, UnknownKernelSpecializationListsTheValidNames) {
  Result<KernelSpecializationStrategy> r = parse_kernel_specialization_strategy("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "invalid dynamic_shapes_kernel_specialization_strategy 'x'; expected lazy|eager|none");
  EXPECT_FALSE(parse_kernel_specialization_strategy("LAZY").ok());
}

TEST(RuntimeSettingsNamesTest, MultiDeviceSafeModeAcceptsOnlyBooleanSpellings) {
  EXPECT_TRUE(*parse_multi_device_safe_mode("1"));
  EXPECT_TRUE(*parse_multi_device_safe_mode("true"));
  EXPECT_FALSE(*parse_multi_device_safe_mode("0"));
  EXPECT_FALSE(*parse_multi_device_safe_mode("false"));
  Result<bool> r = parse_multi_device_safe_mode("yes");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "invalid multi_device_safe_mode 'yes'; expected 1|0|true|false");
}

TEST(RuntimeSettingsNamesTest, RuntimeCacheTextIsAPathOrNone) {
  Result<RuntimeCacheSetting> none = parse_runtime_cache("none");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->kind(), RuntimeCacheSetting::Kind::kNone);
  Result<RuntimeCacheSetting> path = parse_runtime_cache("/tmp/k.kcache");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->kind(), RuntimeCacheSetting::Kind::kPath);
  EXPECT_EQ(path->path(), "/tmp/k.kcache");
  Result<RuntimeCacheSetting> empty = parse_runtime_cache("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), "invalid runtime_cache ''; expected a file path or none");
}

TEST(RuntimeCacheSettingTest, EqualPathsShareOneInternedString) {
  RuntimeCacheSetting a = RuntimeCacheSetting::path(std::string("/x/") + "cache");
  RuntimeCacheSetting b = RuntimeCacheSetting::path("/x/cache");
  RuntimeCacheSetting c = RuntimeCacheSetting::path("/y/cache");
  EXPECT_EQ(&a.path(), &b.path());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, RuntimeCacheSetting::none());
  EXPECT_NE(RuntimeCacheSetting(), RuntimeCacheSetting::none());
  EXPECT_FALSE(RuntimeCacheSetting().is_set());
  EXPECT_TRUE(RuntimeCacheSetting::none().is_set());
  EXPECT_EQ(a.to_string(), "/x/cache");
  EXPECT_EQ(RuntimeCacheSetting::none().to_string(), "none");
  EXPECT_EQ(RuntimeCacheSetting().to_string(), "unset");
}

TEST(RuntimeCacheSettingTest, HandlesCompareByObjectAndNullMeansNone) {
  auto owner1 = std::make_shared<int>(1);
  auto owner2 = std::make_shared<int>(2);
  RuntimeCacheSetting h1 = RuntimeCacheSetting::handle(fake_cache_handle(owner1));
  RuntimeCacheSetting h1b = RuntimeCacheSetting::handle(fake_cache_handle(owner1));
  RuntimeCacheSetting h2 = RuntimeCacheSetting::handle(fake_cache_handle(owner2));
  EXPECT_EQ(h1.kind(), RuntimeCacheSetting::Kind::kHandle);
  EXPECT_EQ(h1, h1b);
  EXPECT_NE(h1, h2);
  EXPECT_EQ(h1.path(), "");
  EXPECT_EQ(h1.to_string().rfind("handle@", 0), 0u);
  EXPECT_EQ(RuntimeCacheSetting::handle(nullptr), RuntimeCacheSetting::none());
  // The setting holds the handle.
  long before = owner1.use_count();
  {
    RuntimeCacheSetting copy = h1;
    EXPECT_EQ(owner1.use_count(), before + 1);
  }
  EXPECT_EQ(owner1.use_count(), before);
}

TEST(RuntimeSettingsTest, MergeTakesOnlyTheFieldsTheHigherLayerSets) {
  RuntimeSettings low;
  low.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  low.kernel_specialization = KernelSpecializationStrategy::kEager;
  low.runtime_cache = RuntimeCacheSetting::path("/low");
  low.multi_device_safe_mode = true;

  RuntimeSettings high;
  EXPECT_TRUE(high.empty());
  EXPECT_EQ(high.to_string(), "{}");
  high.kernel_specialization = KernelSpecializationStrategy::kNone;
  high.multi_device_safe_mode = false;  // set to false is still set
  EXPECT_FALSE(high.empty());

  RuntimeSettings merged = low;
  merged.merge(high);
  EXPECT_EQ(merged.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
  EXPECT_EQ(merged.kernel_specialization, KernelSpecializationStrategy::kNone);
  EXPECT_EQ(merged.runtime_cache, RuntimeCacheSetting::path("/low"));
  EXPECT_EQ(merged.multi_device_safe_mode, false);
  EXPECT_EQ(merged.to_string(),
            "cuda_graph_strategy=whole_graph_capture, "
            "dynamic_shapes_kernel_specialization_strategy=none, runtime_cache=/low, "
            "multi_device_safe_mode=false");

  RuntimeSettings cache_only;
  cache_only.runtime_cache = RuntimeCacheSetting::none();
  merged.merge(cache_only);
  EXPECT_EQ(merged.runtime_cache, RuntimeCacheSetting::none());
  EXPECT_EQ(merged.cuda_graph_strategy, CudaGraphStrategy::kWholeGraphCapture);
}

TEST(RuntimeSettingsKeyTest, EveryExecutionRelevantFieldChangesTheKey) {
  ResolvedSettings base;
  base.runtime_cache = RuntimeCacheSetting::path("/k");
  std::unordered_set<RuntimeSettingsKey> keys;
  keys.insert(base.context_key());

  ResolvedSettings v = base;
  v.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  keys.insert(v.context_key());
  v = base;
  v.kernel_specialization = KernelSpecializationStrategy::kEager;
  keys.insert(v.context_key());
  v = base;
  v.kernel_specialization = KernelSpecializationStrategy::kNone;
  keys.insert(v.context_key());
  v = base;
  v.multi_device_safe_mode = true;
  keys.insert(v.context_key());
  v = base;
  v.runtime_cache = RuntimeCacheSetting::path("/other");
  keys.insert(v.context_key());
  v = base;
  v.runtime_cache = RuntimeCacheSetting::none();
  keys.insert(v.context_key());
  auto owner = std::make_shared<int>(0);
  v = base;
  v.runtime_cache = RuntimeCacheSetting::handle(fake_cache_handle(owner));
  keys.insert(v.context_key());
  EXPECT_EQ(keys.size(), 8u);
}

TEST(RuntimeSettingsKeyTest, SourcesDoNotChangeTheKey) {
  ResolvedSettings a;
  a.runtime_cache = RuntimeCacheSetting::path("/k");
  ResolvedSettings b = a;
  b.runtime_cache = RuntimeCacheSetting::path(std::string("/") + "k");
  b.sources.cuda_graph_strategy = SettingSource::kCall;
  b.sources.runtime_cache = SettingSource::kScope;
  EXPECT_NE(a, b);
  EXPECT_EQ(a.context_key(), b.context_key());
  EXPECT_EQ(a.context_key().hash(), b.context_key().hash());
  EXPECT_EQ(std::hash<RuntimeSettingsKey>()(a.context_key()), a.context_key().hash());
}

TEST(ResolvedSettingsTest, ToStringNamesEveryValueAndItsSource) {
  ResolvedSettings r;
  r.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  r.sources.cuda_graph_strategy = SettingSource::kCall;
  r.runtime_cache = RuntimeCacheSetting::path("/c");
  r.sources.runtime_cache = SettingSource::kEnvironment;
  EXPECT_EQ(r.to_string(),
            "cuda_graph_strategy=whole_graph_capture (call), "
            "dynamic_shapes_kernel_specialization_strategy=lazy (builtin), "
            "runtime_cache=/c (environment), multi_device_safe_mode=false (builtin)");
}

}  // namespace
}  // namespace kiln
