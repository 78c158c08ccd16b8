#include "report.hpp"

#include <boost/json/serialize.hpp>

#include <cstdio>
#include <iostream>

namespace apollo_oauth::soak {
namespace {

void print_row(const std::string& name, const boost::json::value& value) {
    if (value.is_double()) {
        std::printf("  %-44s %.*f\n", name.c_str(), value.as_double() < 10 ? 3 : 1, value.as_double());
        return;
    }
    const std::string text =
        value.is_string() ? std::string(value.as_string()) : boost::json::serialize(value);
    std::printf("  %-44s %s\n", name.c_str(), text.c_str());
}

}  // namespace

bool print_report(boost::json::object figures, const std::vector<check>& checks) {
    for (const auto& [section, values] : figures) {
        std::printf("%s\n", std::string(section).c_str());
        if (values.is_object()) {
            for (const auto& [name, value] : values.as_object()) {
                print_row(std::string(name), value);
            }
        } else {
            print_row("", values);
        }
    }
    bool all_passed = true;
    boost::json::object verdicts;
    std::printf("checks\n");
    for (const auto& c : checks) {
        std::printf("  %-4s %-40s %s\n", c.passed ? "ok" : "FAIL", c.name.c_str(), c.detail.c_str());
        verdicts[c.name] = c.passed;
        all_passed = all_passed && c.passed;
    }
    figures["checks"] = std::move(verdicts);
    figures["passed"] = all_passed;
    std::printf("%s\n", all_passed ? "soak: PASSED" : "soak: FAILED");
    std::cout << boost::json::serialize(figures) << std::endl;
    return all_passed;
}

}  // namespace apollo_oauth::soak
