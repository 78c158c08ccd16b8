// apollo-oauth's exit codes.
#include "exit_codes.hpp"

#include <boost/asio/error.hpp>

namespace apollo_oauth::cli {

exit_code exit_code_for(error_code ec) {
    if (!ec) {
        return exit_ok;
    }
    if (ec == boost::asio::error::operation_aborted) {
        return exit_timeout;
    }
    if (ec.category() != category()) {
        return exit_failure;
    }
    switch (static_cast<errc>(ec.value())) {
        case errc::access_denied:
        case errc::invalid_callback:
        case errc::missing_state:
        case errc::unknown_state:
        case errc::state_expired:
        case errc::state_reused:
        case errc::missing_code:
        case errc::redirect_uri_not_registered:
            return exit_authorization;
        case errc::invalid_configuration:
        case errc::insecure_redirect_uri:
        case errc::invalid_url:
        case errc::invalid_argument:
        case errc::session_required:
            return exit_usage;
        case errc::reauthorization_required:
        case errc::unknown_account:
            return exit_reauthorize;
        case errc::store_failure:
        case errc::generation_conflict:
        case errc::corrupt_record:
        case errc::shutting_down:
        case errc::lease_lost:                // another process took the refresh over: run again
        case errc::coordination_unavailable:  // the shared store (Redis) cannot be reached
            return exit_failure;
        default:
            return exit_server_refused;
    }
}

std::string exit_code_table(bool with_http_status) {
    std::string table =
        "  0  success\n"
        "  1  failure: network, TLS, the token store (files or Redis), or another local problem;\n"
        "     also a result that could not be written to stdout\n"
        "  2  usage: bad option or configuration (missing client id, redirect URI or secret)\n"
        "  3  authorization failed: no pending authorization, state mismatch or expired, access_denied\n"
        "  4  refused by the server: an OAuth error (invalid_grant, invalid_client, invalid_scope, ...),\n"
        "     401 or 429\n"
        "  5  re-authorization needed: no tokens for the account, or the grant was revoked\n"
        "  6  timed out or cancelled (a signal; a second one exits at once with 1)\n";
    if (with_http_status) {
        table +=
            "  7  the API answered with a non-2xx status (the response is still printed)\n"
            "  8  the request completed (its response is printed), but the tokens the server rotated\n"
            "     meanwhile could not be stored: do not send it again; authorize again if need be\n";
    }
    return table;
}

}  // namespace apollo_oauth::cli
