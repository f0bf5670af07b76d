#pragma once
// MirrorFixture: two Halo nodes (n1 198.18.1.1, n2 198.18.1.2) in their own namespaces, joined by
// a bridge in a third (the switch, 198.18.1.254, which also plays the client and the witness),
// running the mirror template `web` with its VIP 198.18.1.100.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "harness/test_node.h"

namespace halo::test {

inline constexpr const char* kVip = "198.18.1.100";
inline constexpr const char* kModule = "web";

class MirrorFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    lan_ = TestLan::create("sw");
    ASSERT_NE(lan_, nullptr) << "cannot create a network namespace (run as root)";
    ASSERT_TRUE(lan_->addAddress("198.18.1.254/24"));
    n1_ = TestNode::create("n1");
    n2_ = TestNode::create("n2");
    ASSERT_TRUE(n1_ && n2_);
    ASSERT_TRUE(lan_->attach(*n1_, "eth0", "198.18.1.1/24"));
    ASSERT_TRUE(lan_->attach(*n2_, "eth0", "198.18.1.2/24"));
    for (TestNode* n : {n1_.get(), n2_.get()}) {
      std::string why;
      ASSERT_TRUE(n->startDaemon(&why)) << why;
      const std::string cluster = n->root() + "/cluster.xml";
      std::ofstream(cluster) << "<cluster><lans><lan name=\"default\">\n"
                                "  <node name=\"n1\" addr=\"198.18.1.1\"/>\n"
                                "  <node name=\"n2\" addr=\"198.18.1.2\"/>\n"
                                "</lan></lans></cluster>\n";
      auto r = n->halo({"cluster", "config", cluster});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }

  void TearDown() override {
    if (HasFailure()) {
      for (TestNode* n : {n1_.get(), n2_.get()}) {
        if (n != nullptr) {
          std::cerr << "---- log of " << n->netns() << "\n"
                    << n->halo({"log", "-A", "-s", "300", "-m", kModule}).output;
        }
      }
    }
  }

  // Installs the mirror template on both nodes; `edit` may change the copy (configuration,
  // scripts) first. Both nodes share one module key.
  void install(const std::function<void(const std::string& dir)>& edit = nullptr) {
    const std::string dir = n1_->root() + "/src-web";
    std::filesystem::copy(sourcePath("share/halo/templates/mirror"), dir,
                          std::filesystem::copy_options::recursive);
    if (edit) {
      edit(dir);
    }
    const std::string safe = n1_->package(dir, kModule);
    for (TestNode* n : {n1_.get(), n2_.get()}) {
      auto r = n->halo({"module", "install", "-m", kModule, safe});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    auto r = n1_->halo({"module", "genkey", "-m", kModule});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string key = "/etc/halo/modules/web/conf/modulekey.dat";
    std::filesystem::copy_file(n1_->root() + key, n2_->root() + key,
                               std::filesystem::copy_options::overwrite_existing);
    for (TestNode* n : {n1_.get(), n2_.get()}) {
      r = n->halo({"config", "-m", kModule});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }

  // Replaces the heart element of the template's configuration.
  static void setConfig(const std::string& dir, const std::string& from, const std::string& to) {
    const std::string path = dir + "/conf/userconfig.xml";
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(path) << text;
  }

  // The usual start: n1 primary with its data as the reference (`prim`), n2 joins as secondary.
  void startPair() {
    auto r = n1_->halo({"prim", "-m", kModule});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    waitState(*n1_, "ALONE");
    r = n2_->halo({"start", "-m", kModule});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    waitState(*n2_, "SECOND");
    waitState(*n1_, "PRIM");
  }

  void waitState(const TestNode& n, const std::string& state, int seconds = 30) {
    auto r = n.halo({"waitstate", "-m", kModule, state, "-t", std::to_string(seconds)});
    ASSERT_EQ(r.exit_code, 0) << n.netns() << " not " << state << ": " << r.output;
  }

  std::string state(const TestNode& n) const { return n.halo({"state", "-m", kModule}).output; }

  // What the VIP answers, seen from the switch: the page names the primary's addresses.
  std::string viaVip() const {
    auto r =
        lan_->exec({"curl", "-sS", "--max-time", "2", std::string("http://") + kVip + ":8080/"});
    return r.exit_code == 0 ? r.output : "";
  }

  bool vipServedBy(const std::string& node_addr, std::chrono::seconds limit) const {
    // The page reads "... primary node <its addresses>": match one address exactly.
    return eventually(
        [&] {
          const std::string page = viaVip() + "\n";
          return page.find(" " + node_addr + " ") != std::string::npos ||
                 page.find(" " + node_addr + "\n") != std::string::npos;
        },
        limit);
  }

  bool logHas(const TestNode& n, const std::string& text) const {
    return n.halo({"log", "-A", "-s", "3000", "-m", kModule}).output.find(text) !=
           std::string::npos;
  }

  std::unique_ptr<TestLan> lan_;
  std::unique_ptr<TestNode> n1_;
  std::unique_ptr<TestNode> n2_;
};

}  // namespace halo::test
