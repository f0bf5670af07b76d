#pragma once
// ModuleFixture: one node (namespace + HALO_ROOT + halod) per test, and helpers to build,
// install, configure and start modules derived from the web template.

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/test_node.h"

namespace halo::test {

class ModuleFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = TestNode::create("node");
    ASSERT_NE(node_, nullptr) << "cannot create a network namespace (run as root)";
    std::string why;
    ASSERT_TRUE(node_->startDaemon(&why)) << why;
  }

  // Copies the web template to a scratch directory, lets `edit` change it, packages it.
  std::string makeModule(const std::string& name,
                         const std::function<void(const std::string& dir)>& edit = nullptr) {
    const std::string dir = node_->root() + "/src-" + name;
    std::filesystem::copy(sourcePath("share/halo/templates/web"), dir,
                          std::filesystem::copy_options::recursive);
    if (edit) {
      edit(dir);
    }
    return node_->package(dir, name);
  }

  // The web template's configuration with `inner` added inside <service> and `service_attrs`
  // on it (e.g. maxloop="2").
  static std::string webConfig(const std::string& inner, const std::string& service_attrs = "") {
    return "<safe>\n"
           "  <macro name=\"WEB_ADDR\" value=\"127.0.0.1\"/>\n"
           "  <macro name=\"WEB_PORT\" value=\"8080\"/>\n"
           "  <service mode=\"light\" " + service_attrs + ">\n"
           "    <user nicestoptimeout=\"20s\" forcestoptimeout=\"20s\">\n"
           "      <var name=\"WEB_ADDR\" value=\"%WEB_ADDR%\"/>\n"
           "      <var name=\"WEB_PORT\" value=\"%WEB_PORT%\"/>\n"
           "    </user>\n" + inner +
           "\n  </service>\n</safe>\n";
  }

  std::string makeModuleWithConfig(const std::string& name, const std::string& config) {
    return makeModule(name, [&](const std::string& dir) {
      std::ofstream(dir + "/conf/userconfig.xml") << config;
    });
  }

  void installAndConfigure(const std::string& name, const std::string& safe) {
    auto r = node_->halo({"module", "install", "-m", name, safe});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = node_->halo({"config", "-m", name});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  void startAndWaitUp(const std::string& name) {
    auto r = node_->halo({"start", "-m", name});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = node_->halo({"waitstate", "-m", name, "UP", "-t", "30"});
    ASSERT_EQ(r.exit_code, 0) << r.output << node_->halo({"log", "-A", "-m", name}).output;
  }

  bool logHas(const std::string& module, const std::string& text) const {
    return node_->halo({"log", "-A", "-s", "2000", "-m", module}).output.find(text) !=
           std::string::npos;
  }

  static void writeScript(const std::string& path, const std::string& body) {
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
  }

  std::unique_ptr<TestNode> node_;
};

}  // namespace halo::test
