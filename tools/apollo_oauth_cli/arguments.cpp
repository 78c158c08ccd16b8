// Command-line parsing for apollo-oauth.
#include "arguments.hpp"

#include <algorithm>
#include <sstream>

namespace apollo_oauth::cli {
namespace {

const option_spec* find_option(const command_spec& spec, const std::string& name) {
    const auto it = std::find_if(spec.options.begin(), spec.options.end(),
                                 [&](const option_spec& o) { return o.name == name; });
    return it == spec.options.end() ? nullptr : &*it;
}

std::string see_help(const command_spec& spec) {
    return " (see `apollo-oauth " + spec.name + " --help`)";
}

}  // namespace

std::optional<std::string> parsed_arguments::get(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end() || it->second.empty()) {
        return std::nullopt;
    }
    return it->second.back();
}

std::vector<std::string> parsed_arguments::all(const std::string& name) const {
    const auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

void reject_secret_on_command_line(const std::vector<std::string>& args) {
    for (const auto& arg : args) {
        if (arg == "--") {
            return;
        }
        if (arg == "--client-secret" || arg.rfind("--client-secret=", 0) == 0) {
            throw usage_error(
                "--client-secret is not accepted: a secret on the command line is visible to other "
                "local users (ps, /proc) and stays in shell history. Set APOLLO_CLIENT_SECRET, or "
                "pass --client-secret-file FILE (a file readable only by you).");
        }
    }
}

parsed_arguments parse_arguments(const command_spec& spec, const std::vector<std::string>& args) {
    parsed_arguments out;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (options_done || arg.size() < 2 || arg[0] != '-' || arg == "-") {
            out.positionals_.push_back(arg);
            continue;
        }
        if (arg == "--") {
            options_done = true;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            out.help_ = true;
            continue;
        }
        if (arg.rfind("--", 0) != 0) {
            throw usage_error("unknown option " + arg.substr(0, 2) + see_help(spec));
        }
        const auto equals = arg.find('=');
        // Only the name is ever quoted back: the value may be something that must not be echoed.
        const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
        const option_spec* option = find_option(spec, name);
        if (!option) {
            throw usage_error("unknown option --" + name + " for `" + spec.name + "`" + see_help(spec));
        }
        std::string value;
        if (option->value_name.empty()) {
            if (equals != std::string::npos) {
                throw usage_error("--" + name + " takes no value" + see_help(spec));
            }
        } else if (equals != std::string::npos) {
            value = arg.substr(equals + 1);
        } else if (i + 1 < args.size()) {
            value = args[++i];
        } else {
            throw usage_error("--" + name + " needs a value (" + option->value_name + ")" + see_help(spec));
        }
        auto& slot = out.values_[name];
        if (!slot.empty() && !option->repeatable) {
            throw usage_error("--" + name + " given twice" + see_help(spec));
        }
        slot.push_back(std::move(value));
    }
    if (out.help_) {
        return out;
    }
    if (out.positionals_.size() < spec.min_positionals || out.positionals_.size() > spec.max_positionals) {
        throw usage_error(spec.max_positionals == 0
                              ? "`" + spec.name + "` takes no positional arguments" + see_help(spec)
                              : "usage: apollo-oauth " + spec.name + " " + spec.positionals + " [options]" +
                                    see_help(spec));
    }
    return out;
}

std::chrono::seconds seconds_option(const parsed_arguments& args, const std::string& name,
                                    std::chrono::seconds fallback, bool allow_zero) {
    const auto text = args.get(name);
    if (!text) {
        return fallback;
    }
    const bool digits =
        !text->empty() && text->size() < 10 &&
        std::all_of(text->begin(), text->end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
    const long value = digits ? std::stol(*text) : -1;
    if (value < 0 || (value == 0 && !allow_zero)) {
        throw usage_error("--" + name + " needs a " + (allow_zero ? "" : "positive ") + "number of seconds");
    }
    return std::chrono::seconds(value);
}

std::string help_text(const command_spec& spec) {
    std::ostringstream out;
    out << "usage: apollo-oauth " << spec.name;
    if (!spec.positionals.empty()) {
        out << " " << spec.positionals;
    }
    out << " [options]\n\n" << spec.summary << "\n";
    if (!spec.description.empty()) {
        out << "\n" << spec.description << "\n";
    }
    out << "\nOptions:\n";
    std::size_t width = 0;
    std::vector<std::string> heads;
    for (const auto& o : spec.options) {
        heads.push_back("--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name));
        width = std::max(width, heads.back().size());
    }
    heads.push_back("-h, --help");
    for (std::size_t i = 0; i < heads.size(); ++i) {
        const std::string help = i < spec.options.size() ? spec.options[i].help : "this text";
        out << "  " << heads[i] << std::string(width + 2 - std::min(width, heads[i].size()), ' ') << help
            << (i < spec.options.size() && spec.options[i].repeatable ? " (repeatable)" : "") << "\n";
    }
    if (!spec.exit_codes.empty()) {
        out << "\nExit codes:\n" << spec.exit_codes;
    }
    return out.str();
}

}  // namespace apollo_oauth::cli
