// Invariant checks for the fuzz targets: a broken invariant aborts, which libFuzzer (and the
// replay test) report as a crash with the input that caused it.
#pragma once

#include <apollo_oauth/error.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

namespace apollo_oauth::fuzz {

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
}

inline void check(bool ok, const char* what) {
    if (!ok) {
        fail(what);
    }
}

/// Long enough to be a real secret rather than a chance match of a few characters.
inline bool is_distinctive(std::string_view secret) {
    return secret.size() >= 8;
}

/// Everything a caller could show of a failure: the error's message and the diagnostics.
inline std::string visible_text(error_code ec, const diagnostics& diag) {
    std::ostringstream os;
    os << ec.message() << ' ' << diag << ' ' << diag.error << ' ' << diag.error_description << ' '
       << diag.error_uri;
    return os.str();
}

/// Diagnostics keep at most 512 bytes of each server-supplied text.
inline void check_diagnostic_sizes(const diagnostics& diag) {
    check(diag.error.size() <= 512, "diag.error longer than 512 bytes");
    check(diag.error_description.size() <= 512, "diag.error_description longer than 512 bytes");
    check(diag.error_uri.size() <= 512, "diag.error_uri longer than 512 bytes");
}

}  // namespace apollo_oauth::fuzz
