#include "sessions.hpp"

#include <apollo_oauth/secret.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace web_app {
namespace {

constexpr auto session_idle_limit = std::chrono::hours(12);
constexpr std::size_t max_states_per_session = 32;  // a tab left open, clicked many times

// base64url without padding (RFC 4648 §5), of bytes from OpenSSL's CSPRNG.
std::string random_id() {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed");
    }
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned bits = 0;
    unsigned buffer = 0;
    for (const unsigned char b : bytes) {
        buffer = (buffer << 8) | b;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(buffer >> bits) & 0x3f];
        }
    }
    if (bits > 0) {
        out += alphabet[(buffer << (6 - bits)) & 0x3f];
    }
    return out;
}

}  // namespace

std::string session_store::create() {
    std::string id = random_id();
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock(mutex_);
    drop_idle(now);
    sessions_[id].last_seen = now;
    return id;
}

bool session_store::exists(std::string_view session) const {
    const std::lock_guard lock(mutex_);
    return sessions_.contains(std::string(session));
}

void session_store::remember_state(std::string_view session, std::string state) {
    const std::lock_guard lock(mutex_);
    auto& record = sessions_[std::string(session)];
    record.last_seen = std::chrono::steady_clock::now();
    if (record.states.size() >= max_states_per_session) {
        record.states.pop_front();
    }
    record.states.push_back({std::move(state)});
}

callback_claim session_store::claim_state(std::string_view session, std::string_view state) {
    const std::lock_guard lock(mutex_);
    const auto it = sessions_.find(std::string(session));
    if (session.empty() || it == sessions_.end()) {
        return callback_claim::no_session;
    }
    it->second.last_seen = std::chrono::steady_clock::now();
    auto& states = it->second.states;
    const auto found = std::find_if(states.begin(), states.end(), [state](const remembered_state& r) {
        return apollo_oauth::constant_time_equal(r.state, state);
    });
    if (found == states.end()) {
        return callback_claim::foreign;
    }
    if (found->used) {
        return callback_claim::replayed;
    }
    found->used = true;
    return callback_claim::accepted;
}

std::size_t session_store::size() const {
    const std::lock_guard lock(mutex_);
    return sessions_.size();
}

void session_store::drop_idle(std::chrono::steady_clock::time_point now) {
    std::erase_if(sessions_, [now](const auto& s) { return now - s.second.last_seen > session_idle_limit; });
}

// Written by hand: Boost 1.81 parses no Cookie header. "name=value" pairs separated by "; ".
std::string cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        const auto end = header.find(';');
        std::string_view pair = header.substr(0, end);
        header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
        while (!pair.empty() && pair.front() == ' ') {
            pair.remove_prefix(1);
        }
        if (const auto eq = pair.find('='); eq != std::string_view::npos && pair.substr(0, eq) == name) {
            return std::string(pair.substr(eq + 1));
        }
    }
    return {};
}

}  // namespace web_app
