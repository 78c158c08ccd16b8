// The client secret read from a file (APOLLO_CLIENT_SECRET_FILE), by the apollo-oauth tool's rule.
#pragma once

#include <string>

namespace web_app {

/// The content of the file at `path`, trailing spaces, tabs, CRs and LFs trimmed (the rule of
/// tools/apollo_oauth_cli/settings.cpp: a file saved with a final newline, or with CRLF, holds the
/// same secret). Warns on stderr when the file's mode gives its group or others any access. Throws
/// std::runtime_error naming `source` (the variable that named the file) when it cannot be read or
/// holds nothing; no message quotes the file's content.
std::string read_secret_file(const std::string& path, const std::string& source);

}  // namespace web_app
