#include "cli_common.h"

#include <gtest/gtest.h>

namespace kiln::cli {
namespace {

TEST(CliCommonTest, ExitCodesFollowTheStatusCode) {
  EXPECT_EQ(exit_code_for(Status()), 0);
  EXPECT_EQ(exit_code_for(mismatch("x")), 1);
  EXPECT_EQ(exit_code_for(invalid_argument("x")), 2);
  EXPECT_EQ(exit_code_for(not_found("x")), 2);
  EXPECT_EQ(exit_code_for(invalid_data("x")), 2);
  EXPECT_EQ(exit_code_for(io_error("x")), 2);
  EXPECT_EQ(exit_code_for(unsupported("x")), 3);
  EXPECT_EQ(exit_code_for(internal_error("x")), 2);
  EXPECT_EQ(exit_code_for(unavailable("x")), 2);
}

TEST(CliCommonTest, ParsesDims) {
  EXPECT_EQ(*parse_dims("1x3x224x224"), (Dims{1, 3, 224, 224}));
  EXPECT_EQ(*parse_dims("7"), (Dims{7}));
  EXPECT_EQ(*parse_dims("0x4"), (Dims{0, 4}));
  for (const char* bad :
       {"", "x", "1x", "x1", "1xx2", "-1x2", "1.5", "a", "1X2", "99999999999999999999"})
    EXPECT_EQ(parse_dims(bad).status().code(), StatusCode::kInvalidArgument) << bad;
}

TEST(CliCommonTest, ParsesFullShapeProfiles) {
  auto p = parse_shape_spec("x:1x3:8x3:32x3");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->input, "x");
  EXPECT_EQ(p->min, (Dims{1, 3}));
  EXPECT_EQ(p->opt, (Dims{8, 3}));
  EXPECT_EQ(p->max, (Dims{32, 3}));
}

TEST(CliCommonTest, SingleShapeMeansFixed) {
  auto p = parse_shape_spec("ids:2x128");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->input, "ids");
  EXPECT_EQ(p->min, (Dims{2, 128}));
  EXPECT_EQ(p->opt, p->min);
  EXPECT_EQ(p->max, p->min);
}

TEST(CliCommonTest, InputNamesMayContainColons) {
  auto p = parse_shape_spec("input:0:1x3:2x3:4x3");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->input, "input:0");
  EXPECT_EQ(p->max, (Dims{4, 3}));
  auto q = parse_shape_spec("scope/in:0:5x5");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->input, "scope/in:0");
  EXPECT_EQ(q->min, (Dims{5, 5}));
}

TEST(CliCommonTest, BadShapeProfilesAreRejected) {
  for (const char* bad :
       {"x", "x:", ":1x2", "x:1x2:3x4", "x:4x4:2x4:8x4", "x:1x2:1x2x3:1x2", "x:abc", ":1:2:3"})
    EXPECT_EQ(parse_shape_spec(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  auto r = parse_shape_spec("x:4:2:8");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("MIN <= OPT <= MAX"), std::string::npos);
}

TEST(CliCommonTest, ParsesKeyValue) {
  auto kv = parse_key_value("owner=team=a", "--metadata");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "owner");
  EXPECT_EQ(kv->second, "team=a");
  EXPECT_TRUE(parse_key_value("k=", "--metadata").ok());
  EXPECT_FALSE(parse_key_value("=v", "--metadata").ok());
  EXPECT_FALSE(parse_key_value("novalue", "--metadata").ok());
}

TEST(CliCommonTest, SafeFileNames) {
  EXPECT_EQ(safe_file_name("logits"), "logits");
  EXPECT_EQ(safe_file_name("model/out:0"), "model_out_0");
  EXPECT_EQ(safe_file_name(".."), "_");
  EXPECT_EQ(safe_file_name(""), "_");
}

TEST(CliCommonTest, FormatsNumbers) {
  EXPECT_EQ(format_number(1.1920929e-07), "1.19e-07");
  EXPECT_EQ(format_number(0.5), "0.5");
  EXPECT_EQ(format_bytes(640), "640 B");
  EXPECT_EQ(format_bytes(3 << 20), "3.0 MiB");
}

}  // namespace
}  // namespace kiln::cli
