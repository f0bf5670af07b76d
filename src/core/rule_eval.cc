#include "core/rule_eval.h"

namespace halo::core {
namespace {

bool compare(ResourceState actual, CompareOp op, ResourceState expected) {
  return (actual == expected) == (op == CompareOp::Eq);
}

bool evaluateCompare(const Expr& e, const ResourceView& view) {
  const ResourceRef& r = e.resource;
  if (r.kind == IdKind::Name) {
    // Absent compares as unknown (see the header).
    const ResourceState s = view.state(r.side, r.cls, r.id).value_or(ResourceState::Unknown);
    return compare(s, e.op, e.state);
  }
  const auto all = view.resourcesOfClass(r.side, r.cls);
  if (all.empty()) {
    return false;
  }
  const bool want_all = r.kind == IdKind::All;
  for (const auto& [id, s] : all) {
    const bool match = compare(s, e.op, e.state);
    if (want_all && !match) {
      return false;
    }
    if (!want_all && match) {
      return true;
    }
  }
  return want_all;
}

}  // namespace

void MapResourceView::set(Side side, const std::string& name, ResourceState state) {
  (side == Side::Local ? local_ : remote_)[name] = state;
}

void MapResourceView::erase(Side side, const std::string& name) {
  (side == Side::Local ? local_ : remote_).erase(name);
}

std::optional<ResourceState> MapResourceView::state(Side side, std::string_view cls,
                                                    std::string_view id) const {
  const Table& t = table(side);
  auto it = t.find(std::string(cls) + "." + std::string(id));
  if (it == t.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::vector<std::pair<std::string, ResourceState>> MapResourceView::resourcesOfClass(
    Side side, std::string_view cls) const {
  const std::string prefix = std::string(cls) + ".";
  std::vector<std::pair<std::string, ResourceState>> out;
  const Table& t = table(side);
  for (auto it = t.lower_bound(prefix); it != t.end() && it->first.starts_with(prefix); ++it) {
    out.emplace_back(it->first.substr(prefix.size()), it->second);
  }
  return out;
}

bool evaluate(const Expr& e, const ResourceView& view) {
  switch (e.kind) {
    case Expr::Kind::Or: return evaluate(*e.lhs, view) || evaluate(*e.rhs, view);
    case Expr::Kind::And: return evaluate(*e.lhs, view) && evaluate(*e.rhs, view);
    case Expr::Kind::Not: return !evaluate(*e.lhs, view);
    case Expr::Kind::Compare: return evaluateCompare(e, view);
    case Expr::Kind::Cluster:
      return compare(view.clusterUp() ? ResourceState::Up : ResourceState::Down, e.op, e.state);
  }
  return false;
}

bool readsInitResource(const Expr& e, const ResourceView& view) {
  switch (e.kind) {
    case Expr::Kind::Or:
    case Expr::Kind::And: return readsInitResource(*e.lhs, view) || readsInitResource(*e.rhs, view);
    case Expr::Kind::Not: return readsInitResource(*e.lhs, view);
    case Expr::Kind::Cluster: return false;
    case Expr::Kind::Compare: break;
  }
  const ResourceRef& r = e.resource;
  if (r.kind == IdKind::Name) {
    return view.state(r.side, r.cls, r.id) == ResourceState::Init;
  }
  for (const auto& [id, s] : view.resourcesOfClass(r.side, r.cls)) {
    if (s == ResourceState::Init) {
      return true;
    }
  }
  return false;
}

}  // namespace halo::core
