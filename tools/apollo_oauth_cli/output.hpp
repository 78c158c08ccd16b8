// What apollo-oauth prints: results on stdout (text, or one JSON object per line with --json),
// failures on stderr with the server's diagnostics. Nothing here ever receives a secret's value:
// callers pass secret_string only where a command's purpose is to print it (`token`).
#pragma once

#include "exit_codes.hpp"

#include <apollo_oauth/error.hpp>

#include <boost/json/object.hpp>

#include <string>

namespace apollo_oauth::cli {

class reporter {
public:
    reporter(std::string command, bool json) : command_(std::move(command)), json_(json) {}

    bool json() const noexcept { return json_; }

    /// One JSON object on one line on stdout, flushed (a script may be waiting for it).
    void print_json(const boost::json::object& object) const;

    /// Progress for a person ("Waiting for ..."): stderr, so that stdout stays parseable. Printed
    /// with --json too, as text: a script reads stdout only.
    void note(const std::string& text) const;

    /// Reports a failure on stderr and returns the exit code for it: `what` failed with `ec`, and
    /// `diag` holds what the server said (RFC 6749 error, error_description, HTTP status).
    int fail(const std::string& what, error_code ec, const diagnostics& diag = {}) const;

    /// A failure without an error_code.
    int fail(const std::string& message, exit_code code) const;

private:
    int emit(const std::string& message, exit_code code, const std::string& error,
             const diagnostics& diag) const;

    std::string command_;
    bool json_;
};

/// A JSON array of strings.
boost::json::array to_json_array(const std::vector<std::string>& items);

}  // namespace apollo_oauth::cli
