#include "sessions.hpp"

#include <apollo_oauth/secret.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace web_app {
namespace {

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

session_store::session_store(session_limits limits) : limits_(limits) {}

std::pair<std::string, bool> session_store::remember_state(std::string_view session, std::string state) {
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();  // read under the lock: recency_ stays sorted
    session_record* record = find(session, now);
    const bool created = record == nullptr;
    if (created) {
        record = &create(now);
    }
    if (record->states.size() >= max_states_per_session) {
        record->states.pop_front();
    }
    record->states.push_back({std::move(state)});
    return {**record->in_recency, created};
}

callback_claim session_store::claim_state(std::string_view session, std::string_view state) {
    const std::lock_guard lock(mutex_);
    session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return callback_claim::no_session;
    }
    auto& states = record->states;
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

session_store::session_record* session_store::find(std::string_view session,
                                                   std::chrono::steady_clock::time_point now) {
    drop_idle(now);
    if (session.empty()) {
        return nullptr;
    }
    const auto it = sessions_.find(std::string(session));
    if (it == sessions_.end()) {
        return nullptr;
    }
    it->second.last_seen = now;
    recency_.splice(recency_.end(), recency_, it->second.in_recency);
    return &it->second;
}

session_store::session_record& session_store::create(std::chrono::steady_clock::time_point now) {
    while (!sessions_.empty() && sessions_.size() >= limits_.max_sessions) {
        drop(sessions_.find(*recency_.front()));
    }
    for (;;) {
        // 256 random bits do not collide; if they ever did, the first session keeps its id.
        const auto [it, inserted] = sessions_.try_emplace(random_id());
        if (inserted) {
            it->second.last_seen = now;
            it->second.in_recency = recency_.insert(recency_.end(), &it->first);
            return it->second;
        }
    }
}

void session_store::drop_idle(std::chrono::steady_clock::time_point now) {
    while (!recency_.empty()) {
        const auto it = sessions_.find(*recency_.front());
        if (now - it->second.last_seen <= limits_.idle_timeout) {
            break;
        }
        drop(it);
    }
}

void session_store::drop(session_map::iterator it) {
    recency_.erase(it->second.in_recency);
    sessions_.erase(it);
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
