// What apollo-oauth prints.
#include "output.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <iostream>

namespace apollo_oauth::cli {
namespace {

std::string hint_for(exit_code code) {
    switch (code) {
        case exit_reauthorize:
            return "authorize the account again: `apollo-oauth login`, or `apollo-oauth authorize-url` then "
                   "`apollo-oauth exchange`";
        case exit_authorization:
            return "start again with `apollo-oauth authorize-url` or `apollo-oauth login`";
        default:
            return {};
    }
}

// "apollo_oauth:6": stable for scripts, unlike the message.
std::string error_name(error_code ec) {
    return std::string(ec.category().name()) + ":" + std::to_string(ec.value());
}

bool is_connect_failure(error_code ec) {
    namespace error = boost::asio::error;
    return ec == error::connection_refused || ec == error::host_unreachable ||
           ec == error::network_unreachable || ec == error::host_not_found ||
           ec == error::host_not_found_try_again || ec == error::no_data || ec == error::no_recovery;
}

bool is_tls_failure(error_code ec) {
    return ec.category() == boost::asio::error::get_ssl_category() ||
           ec.category() == boost::asio::ssl::error::get_stream_category();
}

// "the token endpoint at 127.0.0.1:8443 or the API at api.apollo.io:443"; each host:port once.
std::string name_peers(const std::vector<peer>& peers) {
    std::string text;
    std::vector<std::string> seen;
    for (const auto& p : peers) {
        const auto url = boost::urls::parse_absolute_uri(p.url);
        std::string host = url ? std::string(url->encoded_host_and_port()) : p.url;
        if (url && !url->has_port()) {
            host += ":443";
        }
        if (std::find(seen.begin(), seen.end(), host) != seen.end()) {
            continue;
        }
        text += (seen.empty() ? "" : " or ") + p.role + " at " + host;
        seen.push_back(std::move(host));
    }
    return text.empty() ? "the server" : text;
}

}  // namespace

std::string explain_failure(error_code ec, const diagnostics& diag, const failure_context& where) {
    if (diag.error == "insufficient_scope") {
        return "the token lacks a scope the resource requires (RFC 6750 insufficient_scope" +
               (diag.scope.empty() ? std::string(")") : "; the server wants scope \"" + diag.scope + "\")");
    }
    if (is_connect_failure(ec)) {
        return "could not connect to " + name_peers(where.peers) + " (" + ec.message() + ")";
    }
    if (is_tls_failure(ec)) {
        return "the TLS handshake with " + name_peers(where.peers) + " failed (" + ec.message() +
               "); its certificate was checked against the system's trust store " +
               (where.ca_file.empty() ? std::string("only (no --ca-file or APOLLO_CA_FILE)")
                                      : "and the CA file " + where.ca_file);
    }
    return ec.message();
}

void reporter::print_json(const boost::json::object& object) const {
    std::cout << boost::json::serialize(object) << std::endl;
}

void reporter::note(const std::string& text) const {
    std::cerr << text << std::endl;
}

int reporter::fail(const std::string& what, error_code ec, const diagnostics& diag,
                   const failure_context& where) const {
    const auto code = exit_code_for(ec);
    return emit(what + ": " + explain_failure(ec, diag, where), code, error_name(ec), diag, hint_for(code));
}

int reporter::fail(exit_code code, const std::string& what, error_code ec) const {
    return emit(what + ": " + explain_failure(ec, {}, {}), code, error_name(ec), {}, hint_for(code));
}

int reporter::fail_with_hint(const std::string& what, error_code ec, const std::string& hint) const {
    return emit(what + ": " + explain_failure(ec, {}, {}), exit_code_for(ec), error_name(ec), {}, hint);
}

int reporter::fail(const std::string& message, exit_code code, const diagnostics& diag) const {
    return emit(message, code, {}, diag, hint_for(code));
}

int reporter::emit(const std::string& message, exit_code code, const std::string& error,
                   const diagnostics& diag, const std::string& hint) const {
    if (json_) {
        boost::json::object out;
        if (!command_.empty()) {
            out["command"] = command_;
        }
        out["message"] = message;
        out["exit_code"] = static_cast<int>(code);
        if (!error.empty()) {
            out["error_code"] = error;
        }
        if (diag.http_status != 0 || !diag.error.empty()) {
            boost::json::object server;
            if (diag.http_status != 0) {
                server["http_status"] = diag.http_status;
            }
            if (!diag.error.empty()) {
                server["error"] = diag.error;
            }
            if (!diag.error_description.empty()) {
                server["error_description"] = diag.error_description;
            }
            if (!diag.error_uri.empty()) {
                server["error_uri"] = diag.error_uri;
            }
            if (!diag.scope.empty()) {
                server["scope"] = diag.scope;
            }
            if (diag.retry_after) {
                server["retry_after"] = diag.retry_after->count();
            }
            out["server"] = std::move(server);
        }
        if (!hint.empty()) {
            out["hint"] = hint;
        }
        std::cerr << boost::json::serialize(boost::json::object{{"error", std::move(out)}}) << std::endl;
        return code;
    }
    std::cerr << "apollo-oauth" << (command_.empty() ? "" : " ") << command_ << ": " << message;
    if (diag.http_status != 0 || !diag.error.empty()) {
        std::cerr << " (server said: " << diag << ")";
    }
    std::cerr << "\n";
    if (!hint.empty()) {
        std::cerr << "hint: " << hint << "\n";
    }
    std::cerr.flush();
    return code;
}

boost::json::array to_json_array(const std::vector<std::string>& items) {
    boost::json::array out;
    for (const auto& item : items) {
        out.emplace_back(item);
    }
    return out;
}

}  // namespace apollo_oauth::cli
