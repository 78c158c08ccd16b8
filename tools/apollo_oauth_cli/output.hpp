// What apollo-oauth prints: results on stdout (text, or one JSON object per line with --json),
// failures on stderr with the server's diagnostics. Nothing here ever receives a secret's value:
// callers pass secret_string only where a command's purpose is to print it (`token`).
#pragma once

#include "exit_codes.hpp"

#include <apollo_oauth/error.hpp>

#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth::cli {

/// A server a step talks to, named when a connection or TLS handshake with it fails.
struct peer {
    std::string role;  ///< "the token endpoint"
    std::string url;
};

/// Where a failed step was talking, and whom it trusted: the words for a failure that happened
/// before any server could answer.
struct failure_context {
    std::vector<peer> peers;  ///< when a step may talk to more than one (a refresh, then the API)
    std::string ca_file;      ///< the extra trust anchors besides the system's, empty for none
};

/// The failure of a run whose result never reached stdout (a full disk, a closed stdout): exit 1.
inline constexpr std::string_view stdout_write_failure = "writing the result to standard output failed";

/// What went wrong, for a person: the server's RFC 6750 error by its name (insufficient_scope,
/// with the scope it wants), a refused or unreachable connection or a failed TLS handshake with
/// the host and the CA file used, else ec.message().
std::string explain_failure(error_code ec, const diagnostics& diag, const failure_context& where);

class reporter {
public:
    /// `command`: the subcommand's name, or empty for a failure before one was chosen.
    reporter(std::string command, bool json) : command_(std::move(command)), json_(json) {}

    bool json() const noexcept { return json_; }
    const std::string& command() const noexcept { return command_; }

    /// One JSON object on one line on stdout, flushed (a script may be waiting for it).
    void print_json(const boost::json::object& object) const;

    /// Progress for a person ("Waiting for ..."): stderr, so that stdout stays parseable. Printed
    /// with --json too, as text: a script reads stdout only.
    void note(const std::string& text) const;

    /// Reports a failure on stderr and returns the exit code for it: `what` failed with `ec`, and
    /// `diag` holds what the server said (RFC 6749 error, error_description, HTTP status).
    /// `where` names the servers the step talked to (see explain_failure).
    int fail(const std::string& what, error_code ec, const diagnostics& diag = {},
             const failure_context& where = {}) const;

    /// As above, with the exit code `code` rather than the one that describes `ec`.
    int fail(exit_code code, const std::string& what, error_code ec) const;

    /// As the first, with `hint` (what to do about it: a file to move aside) rather than the exit
    /// code's general one.
    int fail_with_hint(const std::string& what, error_code ec, const std::string& hint) const;

    /// A failure without an error_code; `diag` as above (an API's non-2xx answer).
    int fail(const std::string& message, exit_code code, const diagnostics& diag = {}) const;

private:
    int emit(const std::string& message, exit_code code, const std::string& error, const diagnostics& diag,
             const std::string& hint) const;

    std::string command_;
    bool json_;
};

/// A JSON array of strings.
boost::json::array to_json_array(const std::vector<std::string>& items);

}  // namespace apollo_oauth::cli
