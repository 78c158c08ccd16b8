// Command-line parsing for apollo-oauth: `--name value`, `--name=value`, flags, positionals.
//
// Hand-written rather than Boost.Program_options because the tool needs exact control over two
// things: no option is ever guessed from a prefix (Program_options would take `--client-secret`
// as an abbreviation of `--client-secret-file`), and no error message ever echoes an option's
// value (a mistyped secret-bearing flag must not land in a terminal log).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace apollo_oauth::cli {

/// A mistake on the command line: reported with the command's usage, exit code 2.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct option_spec {
    std::string name{};        ///< without the leading "--"
    std::string value_name{};  ///< empty for a flag
    std::string help{};
    bool repeatable = false;
};

struct command_spec {
    std::string name{};
    std::string positionals{};  ///< usage text of the positional arguments, e.g. "METHOD PATH"
    std::size_t min_positionals = 0;
    std::size_t max_positionals = 0;
    std::string summary{};
    std::string description{};  ///< printed by --help after the usage line
    std::vector<option_spec> options{};
    std::string exit_codes{};  ///< printed by --help
};

class parsed_arguments {
public:
    bool has(const std::string& name) const { return values_.count(name) != 0; }
    std::optional<std::string> get(const std::string& name) const;
    std::vector<std::string> all(const std::string& name) const;
    const std::vector<std::string>& positionals() const noexcept { return positionals_; }
    bool help_requested() const noexcept { return help_; }

private:
    friend parsed_arguments parse_arguments(const command_spec& spec, const std::vector<std::string>& args);
    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> positionals_;
    bool help_ = false;
};

/// Parses the arguments after the subcommand name. Throws usage_error.
parsed_arguments parse_arguments(const command_spec& spec, const std::vector<std::string>& args);

/// The value of option `name` as whole seconds, `fallback` when absent. Throws usage_error for
/// anything but digits, and for 0 unless `allow_zero`.
std::chrono::seconds seconds_option(const parsed_arguments& args, const std::string& name,
                                    std::chrono::seconds fallback, bool allow_zero);

/// The text of `apollo-oauth <command> --help`.
std::string help_text(const command_spec& spec);

/// Throws usage_error when `--client-secret` appears anywhere: a secret on the command line is
/// visible to every local user (ps, /proc) and stays in shell history.
void reject_secret_on_command_line(const std::vector<std::string>& args);

}  // namespace apollo_oauth::cli
