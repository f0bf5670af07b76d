#include "sys/zip_archive.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "sys/test_temp_dir.h"

namespace halo {
namespace {

using testutil::readFile;
using testutil::TempDir;
using testutil::writeFile;

struct Item {
  std::string name;
  std::string data;
  std::optional<uint32_t> unix_mode;  // full st_mode; none: a DOS entry without modes
  bool store = false;                 // no compression, so tests can find and flip data bytes
};

// Builds a zip with libzip, as other tools would, setting exactly the attributes given.
void buildZip(const std::string& path, const std::vector<Item>& items) {
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  for (const Item& it : items) {
    zip_int64_t idx;
    if (!it.name.empty() && it.name.back() == '/') {
      idx = zip_dir_add(za, it.name.c_str(), 0);
    } else {
      zip_source_t* src = zip_source_buffer(za, it.data.data(), it.data.size(), 0);
      idx = zip_file_add(za, it.name.c_str(), src, 0);
    }
    ASSERT_GE(idx, 0) << it.name << ": " << zip_strerror(za);
    const auto i = static_cast<zip_uint64_t>(idx);
    if (it.unix_mode) {
      zip_file_set_external_attributes(za, i, 0, ZIP_OPSYS_UNIX, *it.unix_mode << 16);
    } else {
      zip_file_set_external_attributes(za, i, 0, ZIP_OPSYS_DOS, 0);
    }
    if (it.store) {
      zip_set_file_compression(za, i, ZIP_CM_STORE, 0);
    }
  }
  ASSERT_EQ(zip_close(za), 0) << zip_strerror(za);
}

mode_t permOf(const std::string& path) {
  struct stat sb;
  if (::stat(path.c_str(), &sb) != 0) {
    return 0;
  }
  return sb.st_mode & 07777;
}

bool isEmptyDir(const std::string& path) { return std::filesystem::is_empty(path); }

class ZipArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directory(dest()); }
  std::string dest() const { return dir_.file("dest"); }
  std::string pkg() const { return dir_.file("web.safe"); }
  // Expects rejection with a message containing `needle`, and nothing extracted.
  void expectRejected(const std::vector<Item>& items, const std::string& needle) {
    buildZip(pkg(), items);
    Status s = extractPackage(pkg(), dest());
    EXPECT_EQ(s.code(), StatusCode::InvalidArgument) << s.toString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
    EXPECT_TRUE(isEmptyDir(dest()));
  }

  TempDir dir_;
};

const Item kUserConfig{"conf/userconfig.xml", "<safe/>", 0100644};

TEST_F(ZipArchiveTest, ExtractsConfBinWebAndIgnoresObsoleteFiles) {
  buildZip(pkg(), {
                      {"manifest.xml", "<application_module/>", 0100644},
                      {"conf/", "", 040755},
                      kUserConfig,
                      {"conf/userconfig.xml.template", "old", 0100644},
                      {"bin/start_prim", "#!/bin/sh\n", 0100755},
                      {"bin/stop_prim", "#!/bin/sh\n", 0100640},
                      {"bin/lib/helper.sh", "x", 0100666},
                      {"web/index.html", "<html/>", 0100644},
                  });
  ASSERT_TRUE(extractPackage(pkg(), dest()).ok());
  EXPECT_EQ(readFile(dest() + "/conf/userconfig.xml"), "<safe/>");
  EXPECT_EQ(readFile(dest() + "/bin/start_prim"), "#!/bin/sh\n");
  EXPECT_EQ(readFile(dest() + "/web/index.html"), "<html/>");
  EXPECT_EQ(permOf(dest() + "/bin/start_prim"), 0755u);
  EXPECT_EQ(permOf(dest() + "/bin/stop_prim"), 0740u);     // owner-executable added
  EXPECT_EQ(permOf(dest() + "/bin/lib/helper.sh"), 0744u);  // group/other write dropped
  EXPECT_EQ(permOf(dest() + "/conf/userconfig.xml"), 0644u);
  EXPECT_FALSE(std::filesystem::exists(dest() + "/manifest.xml"));
  EXPECT_FALSE(std::filesystem::exists(dest() + "/conf/userconfig.xml.template"));
}

TEST_F(ZipArchiveTest, PackagesWithoutUnixModesGetExecutableScripts) {
  buildZip(pkg(), {{"conf/userconfig.xml", "<safe/>", std::nullopt},
                   {"bin/start_prim", "x", std::nullopt}});
  ASSERT_TRUE(extractPackage(pkg(), dest()).ok());
  EXPECT_EQ(permOf(dest() + "/bin/start_prim"), 0755u);
  EXPECT_EQ(permOf(dest() + "/conf/userconfig.xml"), 0644u);
}

TEST_F(ZipArchiveTest, AcceptsZipsMadeByTheZipCommand) {
  const std::string src = dir_.file("src");
  writeFile(src + "/conf/userconfig.xml", "<safe/>");
  writeFile(src + "/bin/start_prim", "#!/bin/sh\n");
  writeFile(src + "/bin/stop_prim", "#!/bin/sh\n");
  ::chmod((src + "/bin/start_prim").c_str(), 0750);
  ::chmod((src + "/bin/stop_prim").c_str(), 0644);
  ASSERT_EQ(std::system(("cd " + src + " && zip -qr " + pkg() + " conf bin").c_str()), 0);
  ASSERT_TRUE(extractPackage(pkg(), dest()).ok()) << extractPackage(pkg(), dest()).toString();
  EXPECT_EQ(readFile(dest() + "/conf/userconfig.xml"), "<safe/>");
  EXPECT_EQ(permOf(dest() + "/bin/start_prim"), 0750u);
  EXPECT_EQ(permOf(dest() + "/bin/stop_prim"), 0744u);
}

TEST_F(ZipArchiveTest, RejectsSymlinkMadeByTheZipCommand) {
  const std::string src = dir_.file("src");
  writeFile(src + "/conf/userconfig.xml", "<safe/>");
  std::filesystem::create_directories(src + "/bin");
  ASSERT_EQ(::symlink("/etc/shadow", (src + "/bin/start_prim").c_str()), 0);
  ASSERT_EQ(std::system(("cd " + src + " && zip -qry " + pkg() + " conf bin").c_str()), 0);
  Status s = extractPackage(pkg(), dest());
  EXPECT_NE(s.message().find("'bin/start_prim' is a symbolic link"), std::string::npos)
      << s.toString();
  EXPECT_TRUE(isEmptyDir(dest()));
}

TEST_F(ZipArchiveTest, RejectsNonZipAndTruncatedFiles) {
  writeFile(pkg(), "this is not a zip file at all");
  Status s = extractPackage(pkg(), dest());
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_EQ(s.message().rfind(pkg() + ": not a module package (not a zip archive: ", 0), 0u)
      << s.toString();

  buildZip(pkg(), {kUserConfig, {"bin/start_prim", std::string(4000, 'a'), 0100755}});
  std::filesystem::resize_file(pkg(), std::filesystem::file_size(pkg()) / 2);
  s = extractPackage(pkg(), dest());
  EXPECT_NE(s.message().find("not a zip archive"), std::string::npos) << s.toString();

  EXPECT_EQ(extractPackage(dir_.file("none.safe"), dest()).code(), StatusCode::NotFound);
  EXPECT_TRUE(isEmptyDir(dest()));
}

TEST_F(ZipArchiveTest, RejectsMissingUserConfig) {
  expectRejected({{"bin/start_prim", "x", 0100755}}, "no conf/userconfig.xml");
}

TEST_F(ZipArchiveTest, RejectsUnsafeOrForeignPaths) {
  expectRejected({kUserConfig, {"../evil", "x", 0100644}}, "'..' path component");
  expectRejected({kUserConfig, {"bin/../../evil", "x", 0100644}}, "'..' path component");
  expectRejected({kUserConfig, {"/etc/cron.d/evil", "x", 0100644}}, "absolute path");
  expectRejected({kUserConfig, {"bin\\evil", "x", 0100644}}, "backslash");
  expectRejected({kUserConfig, {"etc/passwd", "x", 0100644}}, "outside conf/, bin/ and web/");
  expectRejected({kUserConfig, {"bin", "x", 0100644}}, "directory bin/ is expected");
}

TEST_F(ZipArchiveTest, RejectsLinksAndDevices) {
  expectRejected({kUserConfig, {"bin/start_prim", "/etc/shadow", 0120777}},
                 "'bin/start_prim' is a symbolic link");
  expectRejected({kUserConfig, {"bin/tty", "", 020666}}, "is a character device");
  expectRejected({kUserConfig, {"conf/", "", 0100644}}, "type and name disagree");
}

TEST_F(ZipArchiveTest, RejectsFileAndDirectoryWithTheSameName) {
  expectRejected({kUserConfig, {"bin/x", "a", 0100644}, {"bin/x/y", "b", 0100644}},
                 "'bin/x' is both a file and a directory");
}

TEST_F(ZipArchiveTest, EnforcesLimits) {
  buildZip(pkg(), {kUserConfig, {"bin/big", std::string(5000, 'z'), 0100644}});
  PackageLimits limits;
  limits.max_total_bytes = 4096;
  Status s = extractPackage(pkg(), dest(), limits);
  EXPECT_NE(s.message().find("uncompressed size exceeds"), std::string::npos) << s.toString();

  std::vector<Item> many{kUserConfig};
  for (int i = 0; i < 10000; ++i) {
    many.push_back({"web/f" + std::to_string(i), "", 0100644});
  }
  expectRejected(many, "10001 entries, more than the limit of 10000");
}

// Finds `needle` in the file and flips a byte in it.
void flipByteOf(const std::string& path, const std::string& needle) {
  std::string bytes = readFile(path);
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + needle.size() / 2] ^= 0x20;
  writeFile(path, bytes);
}

TEST_F(ZipArchiveTest, ReportsCrcErrorNamingTheEntryAndExtractsNothing) {
  buildZip(pkg(), {kUserConfig,
                   {"bin/start_prim", "#!/bin/sh\necho PAYLOAD_TO_CORRUPT\n", 0100755, true}});
  flipByteOf(pkg(), "PAYLOAD_TO_CORRUPT");
  Status s = extractPackage(pkg(), dest());
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("corrupt module package: entry 'bin/start_prim': CRC error"),
            std::string::npos)
      << s.toString();
  EXPECT_TRUE(isEmptyDir(dest()));
}

TEST_F(ZipArchiveTest, ReportsCorruptCompressedData) {
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    text += "line " + std::to_string(i * 7919 % 10007) + "\n";
  }
  buildZip(pkg(), {{"bin/start_prim", text, 0100755}, kUserConfig});
  // Flip a byte in the middle of the first entry's deflated data.
  std::string bytes = readFile(pkg());
  ASSERT_EQ(bytes.compare(0, 4, "PK\3\4"), 0);
  auto le = [&](size_t off, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; --i) {
      v = (v << 8) | static_cast<unsigned char>(bytes[off + i]);
    }
    return v;
  };
  const size_t data = 30 + le(26, 2) + le(28, 2);
  bytes[data + le(18, 4) / 2] ^= 0x55;
  writeFile(pkg(), bytes);
  Status s = extractPackage(pkg(), dest());
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("corrupt module package: entry 'bin/start_prim': "),
            std::string::npos)
      << s.toString();
  EXPECT_TRUE(isEmptyDir(dest()));
}

TEST_F(ZipArchiveTest, WritePackageRoundTripsAndIsReadableByUnzip) {
  const std::string mod = dir_.file("modules/web");
  writeFile(mod + "/conf/userconfig.xml", "<safe/>");
  writeFile(mod + "/bin/start_prim", "#!/bin/sh\n");
  writeFile(mod + "/bin/sub/helper", "h");
  writeFile(mod + "/web/index.html", "<html/>");
  writeFile(mod + "/other/ignored", "not packaged");
  ::chmod((mod + "/bin/start_prim").c_str(), 0750);
  ::chmod((mod + "/bin/sub/helper").c_str(), 0700);
  const std::string out = dir_.file("out/web.safe");
  std::filesystem::create_directories(dir_.file("out"));
  ASSERT_TRUE(writePackage(mod, out).ok()) << writePackage(mod, out).toString();
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  EXPECT_EQ(std::system(("unzip -tq " + out + " >/dev/null").c_str()), 0);

  ASSERT_TRUE(extractPackage(out, dest()).ok());
  EXPECT_EQ(readFile(dest() + "/conf/userconfig.xml"), "<safe/>");
  EXPECT_EQ(readFile(dest() + "/web/index.html"), "<html/>");
  EXPECT_EQ(permOf(dest() + "/bin/start_prim"), 0750u);
  EXPECT_EQ(permOf(dest() + "/bin/sub/helper"), 0700u);
  EXPECT_FALSE(std::filesystem::exists(dest() + "/other"));
}

TEST_F(ZipArchiveTest, WritePackageNeedsUserConfigAndKeepsOldFileOnFailure) {
  const std::string mod = dir_.file("modules/web");
  writeFile(mod + "/bin/start_prim", "x");
  const std::string out = dir_.file("web.safe");
  writeFile(out, "previous");
  Status s = writePackage(mod, out);
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_NE(s.message().find("no conf/userconfig.xml"), std::string::npos) << s.toString();
  EXPECT_EQ(readFile(out), "previous");
}

}  // namespace
}  // namespace halo
