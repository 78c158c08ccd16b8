#include "tally.hpp"

namespace apollo_oauth::soak {

void tally::add_call(error_code ec, unsigned status) {
    if (ec) {
        add(std::string(ec.category().name()) + ": " + ec.message());
    } else {
        add("http " + std::to_string(status));
    }
}

void tally::add(const std::string& kind, std::uint64_t n) {
    const std::lock_guard lock(mutex_);
    counts_[kind] += n;
}

std::map<std::string, std::uint64_t> tally::snapshot() const {
    const std::lock_guard lock(mutex_);
    return counts_;
}

}  // namespace apollo_oauth::soak
