// What apollo-oauth prints.
#include "output.hpp"

#include <boost/json/serialize.hpp>

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

}  // namespace

void reporter::print_json(const boost::json::object& object) const {
    std::cout << boost::json::serialize(object) << std::endl;
}

void reporter::note(const std::string& text) const {
    std::cerr << text << std::endl;
}

int reporter::fail(const std::string& what, error_code ec, const diagnostics& diag) const {
    return emit(what + ": " + ec.message(), exit_code_for(ec), error_name(ec), diag);
}

int reporter::fail(const std::string& message, exit_code code) const {
    return emit(message, code, {}, {});
}

int reporter::emit(const std::string& message, exit_code code, const std::string& error,
                   const diagnostics& diag) const {
    const std::string hint = hint_for(code);
    if (json_) {
        boost::json::object out{
            {"command", command_}, {"message", message}, {"exit_code", static_cast<int>(code)}};
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
    std::cerr << "apollo-oauth " << command_ << ": " << message;
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
