#include "bench_support.hpp"

#include <apollo_oauth/private_files.hpp>

#include <boost/json/serialize.hpp>

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace apollo_oauth::bench {

private_temp_file::private_temp_file(const secret_string& contents) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/apollo-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {  // mode 0700
        throw std::runtime_error("cannot make a private directory in " + pattern);
    }
    directory_ = pattern;
    if (pattern.find('\'') != std::string::npos) {  // a shell command names it in single quotes
        std::filesystem::remove(directory_);
        throw std::runtime_error("TMPDIR with a single quote: " + pattern);
    }
    if (const auto ec = replace_private_file(directory_, "secrets", contents.reveal())) {
        std::filesystem::remove_all(directory_);
        throw std::runtime_error("cannot write a private file in " + directory_.string() + ": " +
                                 ec.message());
    }
}

private_temp_file::~private_temp_file() {
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
}

double median(std::vector<double> values) {
    return quantile(std::move(values), 0.5);
}

double quantile(std::vector<double> values, double q) {
    if (values.empty()) {
        return 0;
    }
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
    const auto index = std::min(values.size() - 1, rank == 0 ? 0 : rank - 1);
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
    return values[index];
}

options options::parse(int argc, char** argv) {
    options opts;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                throw std::invalid_argument(arg + " needs a value");
            }
            return argv[++i];
        };
        if (arg == "--rounds") {
            opts.rounds = std::max(1, std::stoi(value()));
        } else if (arg == "--json") {
            opts.json_path = value();
        } else if (arg == "--quick") {
            opts.quick = true;
        } else if (arg.rfind("--", 0) == 0) {
            opts.extra.emplace_back(arg.substr(2), value());
        } else {
            throw std::invalid_argument("unexpected argument: " + arg);
        }
    }
    return opts;
}

long long options::integer(const std::string& name, long long fallback) const {
    for (const auto& [key, value] : extra) {
        if (key == name) {
            return std::stoll(value);
        }
    }
    return fallback;
}

std::string options::text(const std::string& name, const std::string& fallback) const {
    for (const auto& [key, value] : extra) {
        if (key == name) {
            return value;
        }
    }
    return fallback;
}

report::report(std::string benchmark) : benchmark_(std::move(benchmark)) {
    std::cout << "== " << benchmark_ << '\n';
}

void report::row(const std::string& key, const std::string& text, boost::json::object fields) {
    std::cout << "  " << text << '\n' << std::flush;
    rows_[key] = std::move(fields);
}

void report::target(const std::string& name, double measured, const std::string& relation, double bound) {
    all_met_ = record(name, kind::performance, measured, relation, bound) && all_met_;
}

void report::check(const std::string& name, double measured, const std::string& relation, double bound) {
    all_right_ = record(name, kind::count, measured, relation, bound) && all_right_;
}

bool report::record(const std::string& name, kind k, double measured, const std::string& relation,
                    double bound) {
    const bool held = relation == "<=" ? measured <= bound : measured >= bound;
    const char* verdict = k == kind::count ? (held ? "check  RIGHT " : "check  WRONG ")
                                           : (held ? "target MET  " : "target MISSED");
    std::cout << "  " << verdict << ' ' << name << ": " << fixed(measured, 3) << ' ' << relation << ' '
              << fixed(bound, 3) << '\n';
    targets_.push_back(boost::json::object{{"name", name},
                                           {"kind", k == kind::count ? "count" : "performance"},
                                           {"measured", measured},
                                           {"relation", relation},
                                           {"bound", bound},
                                           {"met", held}});
    return held;
}

int report::finish(const options& opts) {
    boost::json::object doc{{"benchmark", benchmark_},
                            {"rounds", opts.rounds},
                            {"quick", opts.quick},
                            {"results", rows_},
                            {"targets", targets_}};
    if (!opts.json_path.empty()) {
        std::ofstream out(opts.json_path);
        out << boost::json::serialize(doc) << '\n';
        if (!out) {
            throw std::runtime_error("cannot write " + opts.json_path);
        }
    }
    std::cout << std::flush;
    return !all_right_ ? 3 : all_met_ ? 0 : 1;
}

std::string fixed(double value, int decimals) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(decimals);
    os << value;
    return os.str();
}

emulator_setup::emulator_setup(emulator::server_config config) : server(std::move(config)) {}

client_config emulator_setup::config() const {
    return emulator::client_config_for(server);
}

token_set emulator_setup::obtain_tokens(asio::io_context& ioc, client& c) {
    authorization_flow flow{c.config()};
    auto url = flow.make_authorization_url({.any_browser = true});
    if (!url) {
        throw std::runtime_error("authorization URL: " + url.error().message());
    }
    auto grant = flow.verify_callback(server.consent(url->url));
    if (!grant) {
        throw std::runtime_error("callback: " + grant.error().message());
    }
    return run_coroutine(ioc, [&]() -> asio::awaitable<token_set> {
        co_return co_await c.async_exchange_code(std::move(*grant), asio::use_awaitable);
    });
}

}  // namespace apollo_oauth::bench
