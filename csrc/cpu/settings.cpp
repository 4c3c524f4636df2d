#include "settings.h"

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

namespace cwrnn {
namespace {

// Sizes are reported as int64 (memory_stats), so a size in MiB may be at most this.
constexpr uint64_t kMaxMiB = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) >> 20;

// The bytes of a size given in MiB: only decimal digits, no sign, space, exponent or suffix.
size_t mebibytes(const char* name, size_t default_mib) {
  const char* text = std::getenv(name);
  if (text == nullptr) return default_mib << 20;
  const std::string value(text);
  TORCH_CHECK(!value.empty() && value.find_first_not_of("0123456789") == std::string::npos, "cwrnn_ext: ",
              name, "='", value, "' is not valid: expected a whole number of MiB, 0 or more (e.g. ", name,
              "=", default_mib, ")");
  uint64_t mib = 0;
  for (const char digit : value) {
    TORCH_CHECK(mib <= (kMaxMiB - (digit - '0')) / 10, "cwrnn_ext: ", name, "='", value,
                "' is not valid: at most ", kMaxMiB, " MiB");
    mib = mib * 10 + static_cast<uint64_t>(digit - '0');
  }
  return static_cast<size_t>(mib) << 20;
}

bool flag(const char* name, bool default_on) {
  const char* text = std::getenv(name);
  if (text == nullptr) return default_on;
  const std::string value(text);
  TORCH_CHECK(value == "0" || value == "1", "cwrnn_ext: ", name, "='", value,
              "' is not valid: expected 0 or 1");
  return value == "1";
}

}  // namespace

const Settings& settings() {
  // A throwing initialiser leaves the static unset: the next call parses (and raises) again.
  static const Settings parsed{
      mebibytes("CWRNN_OUTPUT_CACHE_MB", 64),
      mebibytes("CWRNN_WORKSPACE_CACHE_MB", 64),
      flag("CWRNN_HUGE_PAGES", true),
  };
  return parsed;
}

}  // namespace cwrnn
