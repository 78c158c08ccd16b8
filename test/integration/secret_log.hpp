// Every secret the integration suite used, written out at exit so that the `secret_scan` test can
// search everything the suite printed for them. Tests print what a user would see (error
// messages, diagnostics, token sets) through note(), so the scan covers it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth::test::secret_log {

/// Remembers secrets to look for (client secrets, codes, tokens).
void record_all(const std::vector<std::string>& secrets);

/// Prints one line to stdout, as a log line of the suite.
void note(std::string_view line);

}  // namespace apollo_oauth::test::secret_log
