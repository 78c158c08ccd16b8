// The soak's verdict: named checks, a table for people and one JSON line for tools.
#pragma once

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace apollo_oauth::soak {

struct check {
    std::string name;
    bool passed = false;
    std::string detail;
};

/// Prints `figures` (one level of nesting: sections of name/value) as a table, then the checks,
/// then `figures` with the checks as a single JSON line. Returns true when every check passed.
bool print_report(boost::json::object figures, const std::vector<check>& checks);

}  // namespace apollo_oauth::soak
