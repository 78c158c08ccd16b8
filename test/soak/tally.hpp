// Outcome counts by kind ("http 200", "apollo_oauth: unexpected HTTP status", ...), thread-safe.
#pragma once

#include <apollo_oauth/error.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace apollo_oauth::soak {

class tally {
public:
    /// Counts an API call: its error kind, or its HTTP status when it completed.
    void add_call(error_code ec, unsigned status);
    void add(const std::string& kind, std::uint64_t n = 1);
    std::map<std::string, std::uint64_t> snapshot() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::uint64_t> counts_;
};

}  // namespace apollo_oauth::soak
