// What the soak observed, and the checks it passes or fails.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "options.hpp"
#include "phases.hpp"
#include "report.hpp"
#include "rss_monitor.hpp"

namespace apollo_oauth::soak {

struct observations {
    const options& opts;
    std::string started_at;  ///< UTC, ISO 8601
    bool sanitized_build = false;
    seed_result seeded;
    double seed_seconds = 0;
    load_result load;
    std::map<std::string, std::uint64_t> outcomes;  ///< API calls by kind
    std::uint64_t cache_rotations = 0;              ///< on_rotation during the load
    std::uint64_t emulator_refreshes = 0;           ///< successful refreshes during the load
    std::uint64_t refresh_requests = 0;             ///< refresh requests during the load
    std::uint64_t max_refreshes_in_flight = 0;
    std::uint64_t reauthorizations = 0;  ///< on_reauthorization_required
    std::uint64_t store_failures = 0;
    std::size_t refreshes_left = 0;  ///< cache.refreshes_in_flight() after the drain
    verify_result verified;
    double warmup = 0;
    rss_fit memory;
};

/// The figures, by section, for print_report.
boost::json::object figures_of(const observations& o);
/// Every check with its verdict and a short explanation.
std::vector<check> checks_of(const observations& o);

}  // namespace apollo_oauth::soak
