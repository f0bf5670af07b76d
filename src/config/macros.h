#pragma once
// <macro name value/> substitution (reference 3.2.2): "%NAME%" is replaced by the macro's value or,
// when no macro has that name, by the environment variable NAME; "%%" is a literal percent.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace halo::config {

// Environment variables visible to macro expansion; passed explicitly so parsing stays pure.
using Environment = std::map<std::string, std::string>;

// A copy of the process environment (environ).
// The process environment; HALO_ROOT is always defined (empty when unset: the root is /).
Environment processEnvironment();

// True for a macro, variable or environment name: [A-Za-z_][A-Za-z0-9_]*.
bool isIdentifier(std::string_view name);

class MacroExpander {
 public:
  // `macros` win over `env` on a name conflict, as in SafeKit.
  MacroExpander(const std::vector<std::pair<std::string, std::string>>& macros,
                const Environment& env);

  // Replaces every %NAME% (NAME an identifier) and %% in one pass; substituted values are not
  // scanned again, so a value containing '%' cannot recurse. A '%' that starts neither form is
  // kept as is. An unknown NAME fails with the message "undefined macro %NAME%".
  Result<std::string> expand(std::string_view text) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace halo::config
