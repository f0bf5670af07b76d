// Runs every file of test/corpus/config: valid/*.xml must parse, invalid/NAME.xml must fail with
// exactly the message in invalid/NAME.expected. Adding a file adds a case.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/cluster_config.h"
#include "config/module_config.h"
#include "config/validate.h"

namespace halo::config {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(HALO_SOURCE_DIR) / "test" / "corpus" / "config";

// The environment every corpus file is parsed with (see valid/macros_env.xml).
Environment corpusEnvironment() {
  return {{"HALO_TEST_HOME", "/opt/halo-test"}, {"SERVICES", "from-environment"}};
}

std::string readText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> xmlFiles(const std::string& sub) {
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(kCorpus / sub)) {
    if (e.path().extension() == ".xml") {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool startsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// cluster*.xml are cluster files; against_*.xml are modules checked against
// valid/cluster_two_lans.xml; everything else is a module file.
Status parseCorpusFile(const std::string& text, const std::string& name) {
  if (startsWith(name, "cluster")) {
    return parseClusterConfig(text, name).status();
  }
  Result<ModuleConfig> m = parseModuleConfig(text, name, corpusEnvironment());
  if (!m.ok() || !startsWith(name, "against_")) {
    return m.status();
  }
  Result<ClusterConfig> c = parseClusterConfigFile((kCorpus / "valid" / "cluster_two_lans.xml"));
  if (!c.ok()) {
    return c.status();
  }
  return validateAgainstCluster(*m, *c);
}

std::string testName(const testing::TestParamInfo<std::string>& info) {
  std::string n = fs::path(info.param).stem().string();
  std::replace_if(
      n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
  return n;
}

class ValidCorpus : public testing::TestWithParam<std::string> {};

TEST_P(ValidCorpus, Parses) {
  const std::string text = readText(kCorpus / "valid" / GetParam());
  Status s = parseCorpusFile(text, GetParam());
  EXPECT_TRUE(s.ok()) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Config, ValidCorpus, testing::ValuesIn(xmlFiles("valid")), testName);

class InvalidCorpus : public testing::TestWithParam<std::string> {};

TEST_P(InvalidCorpus, FailsWithExpectedMessage) {
  const fs::path xml = kCorpus / "invalid" / GetParam();
  fs::path expected_path = xml;
  expected_path.replace_extension(".expected");
  ASSERT_TRUE(fs::exists(expected_path)) << "missing " << expected_path;
  std::string expected = readText(expected_path);
  while (!expected.empty() && (expected.back() == '\n' || expected.back() == '\r')) {
    expected.pop_back();
  }
  Status s = parseCorpusFile(readText(xml), GetParam());
  ASSERT_FALSE(s.ok()) << GetParam() << " parsed without error";
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s.message(), expected);
}

INSTANTIATE_TEST_SUITE_P(Config, InvalidCorpus, testing::ValuesIn(xmlFiles("invalid")), testName);

TEST(ConfigCorpus, HasEnoughCases) {
  EXPECT_GE(xmlFiles("valid").size(), 7u);
  EXPECT_GE(xmlFiles("invalid").size(), 30u);
  // An .expected file without its .xml would silently test nothing.
  for (const fs::directory_entry& e : fs::directory_iterator(kCorpus / "invalid")) {
    if (e.path().extension() == ".expected") {
      fs::path xml = e.path();
      EXPECT_TRUE(fs::exists(xml.replace_extension(".xml"))) << e.path();
    }
  }
}

// Every prefix of every corpus file (every 7th byte) must give a result, never a crash, and an
// error must still name the file.
TEST(ConfigCorpus, TruncatedFilesFailCleanly) {
  for (const char* sub : {"valid", "invalid"}) {
    for (const std::string& name : xmlFiles(sub)) {
      const std::string text = readText(kCorpus / sub / name);
      for (size_t len = 0; len < text.size(); len += 7) {
        Status s = parseCorpusFile(text.substr(0, len), name);
        if (!s.ok()) {
          EXPECT_TRUE(startsWith(s.message(), name + ":")) << s.message();
        }
      }
    }
  }
}

}  // namespace
}  // namespace halo::config
