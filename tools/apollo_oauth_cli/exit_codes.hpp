// apollo-oauth's exit codes, one meaning each, so scripts can branch on them.
#pragma once

#include <apollo_oauth/error.hpp>

#include <string>

namespace apollo_oauth::cli {

enum exit_code : int {
    exit_ok = 0,
    exit_failure = 1,        ///< network, TLS, file or other local failure; stdout not written
    exit_usage = 2,          ///< bad command line or configuration (missing client id or secret, ...)
    exit_authorization = 3,  ///< the browser step failed: state mismatch/expired, access_denied, no pending
    exit_server_refused =
        4,                 ///< the OAuth server or API refused (invalid_grant, invalid_client, 401, 429, ...)
    exit_reauthorize = 5,  ///< no usable grant for the account: run `apollo-oauth login` again
    exit_timeout = 6,      ///< login timed out or was cancelled; a signal cut a command short
    exit_http_status = 7,  ///< `request`: the API answered with a status other than 2xx
    /// `request`: the API call completed (its response printed), but tokens the server rotated
    /// meanwhile could not be stored
    exit_unstored_pair = 8,
};

/// Thrown once a command's outcome has been reported (a signal cut it short): the process exits
/// with `code`, nothing more said.
struct reported_exit {
    exit_code code;
};

/// The exit code that describes `ec`.
exit_code exit_code_for(error_code ec);

/// The table printed in every command's --help (the same as docs/cli.md).
std::string exit_code_table(bool with_http_status);

}  // namespace apollo_oauth::cli
