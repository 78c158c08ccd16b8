#include "sessions.hpp"

#include <apollo_oauth/secret.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

namespace web_app {
namespace {

constexpr std::size_t max_authorizations_per_session = 32;  // a tab left open, clicked many times
// Accounts one session keeps, the oldest connected dropped first: one customer's browser connects
// a few Apollo accounts, not hundreds. With the session cap, it bounds all sessions' accounts.
constexpr std::size_t max_accounts_per_session = 16;
// Idle sessions one call drops at most. Unbounded, the first request after a flood had gone idle
// dropped all of it (up to --max-sessions) under the mutex. Each request makes at most one
// session, so dropping up to 64 per request still clears any backlog; meanwhile an idle session
// not dropped yet is refused when it is looked up, and goes first at the session cap.
constexpr std::size_t max_idle_drops_per_call = 64;
// Sessions without authorizations the budget drops at most per call. The heaviest address may
// weigh by its empty sessions (one that started many authorizations and let them expire):
// dropping those frees no authorization, only lightens it, and unbounded one request dropped
// them all under the mutex. Past 64 the authorization is kept over the budget: by one per
// request at most, while each such request drops 64 (at most --max-sessions / 64 in all).
constexpr std::size_t max_empty_drops_per_call = 64;
// Sessions whose expired authorizations the budget forgets at most per call (each frees one at
// least). A request adds one authorization and the budget frees only what it must, so this bounds
// only the catching up after the budget was exceeded (see max_empty_drops_per_call), at 64 times
// a session's 32 under the mutex, like the other bounds.
constexpr std::size_t max_expired_sweeps_per_call = 64;

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

std::pair<std::string, bool> session_store::remember(std::string_view session,
                                                     const boost::asio::ip::address& client,
                                                     apollo_oauth::pending_authorization pending) {
    const std::string key = client_key(client);
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();  // read under the lock: the lists stay sorted
    session_record* record = find(session, now);
    const bool created = record == nullptr;
    if (created) {
        record = &create(key, now);
    } else {
        forget_expired_authorizations(*record, std::chrono::system_clock::now());
    }
    if (record->authorizations.size() >= max_authorizations_per_session) {
        forget_oldest_authorization(*record);
    }
    make_room_for_authorization(*record);
    std::string state = pending.state;
    const auto expires_at = pending.expires_at;
    // Indexed once it is in the list: were the index's entry made first and the list's growth to
    // throw, the entry would point at nothing the budget could ever forget.
    auto& added = record->authorizations.emplace_back(
        remembered_authorization{std::move(state), expires_at, std::move(pending), {}});
    try {
        added.in_expiry = by_expiry_.emplace(expires_at, record);
    } catch (...) {
        record->authorizations.pop_back();
        throw;
    }
    set_weight(*record->client, record->client->second.weight + 1);
    return {**record->in_recency, created};
}

claimed_authorization session_store::claim(std::string_view session, std::string_view state) {
    const std::lock_guard lock(mutex_);
    session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return {callback_claim::no_session};
    }
    claimed_authorization out{callback_claim::foreign};
    if (remembered_authorization* found = find_state(*record, state); found != nullptr) {
        if (found->pending) {
            out = {callback_claim::accepted, std::move(*found->pending), {record->serial, record->rotations}};
            found->pending.reset();
        } else {
            out.outcome = callback_claim::replayed;
        }
    }
    // After the lookup: a callback that comes after its authorization expired is told so
    // (verify_callback: state_expired), not refused as another browser's.
    forget_expired_authorizations(*record, std::chrono::system_clock::now());
    return out;
}

adopted session_store::adopt(const session_ref& session, connected_account account,
                             std::vector<std::string> scopes) {
    const std::lock_guard lock(mutex_);
    session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return {};  // dropped while the code was exchanged: the browser must connect again
    }
    if (record->rotations != session.rotations) {
        // Another login of this session ended first and replaced the id. Joined now, the account
        // would be the session's under the id whoever finished that login holds; answered with
        // that id, this callback would hand it to whoever knew the old one.
        std::string token = random_id();
        if (record->to_join.size() >= max_authorizations_per_session) {
            record->to_join.pop_front();
        }
        record->to_join.emplace_back(token, joined_account{std::move(account), std::move(scopes)});
        return {adoption::to_confirm, std::move(token)};
    }
    std::string id = unused_id();  // first: what follows cannot fail halfway
    add_account(*record, std::move(account));
    rename(*record, id);
    ++record->rotations;
    return {adoption::rotated, std::move(id)};
}

std::optional<joined_account> session_store::join(std::string_view session, std::string_view token) {
    const std::lock_guard lock(mutex_);
    session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return std::nullopt;
    }
    auto& held = record->to_join;
    const auto it = std::find_if(held.begin(), held.end(), [&](const auto& waiting) {
        return apollo_oauth::constant_time_equal(waiting.first, token);
    });
    if (it == held.end()) {
        return std::nullopt;
    }
    joined_account out = it->second;  // a copy: add_account may throw, and the account stays waiting
    add_account(*record, out.account);
    held.erase(it);
    return out;
}

std::vector<connected_account> session_store::accounts(std::string_view session) {
    const std::lock_guard lock(mutex_);
    const session_record* record = find(session, std::chrono::steady_clock::now());
    return record != nullptr ? record->accounts : std::vector<connected_account>();
}

account_access session_store::access(std::string_view session, std::string_view account) {
    const std::lock_guard lock(mutex_);
    const session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return account_access::no_session;
    }
    const bool owned = std::any_of(record->accounts.begin(), record->accounts.end(),
                                   [&](const connected_account& a) { return a.id == account; });
    return owned ? account_access::owned : account_access::not_owned;
}

void session_store::give_back(const session_ref& session, apollo_oauth::pending_authorization pending) {
    const std::lock_guard lock(mutex_);
    session_record* record = find(session, std::chrono::steady_clock::now());
    if (record == nullptr) {
        return;  // dropped meanwhile
    }
    if (remembered_authorization* found = find_state(*record, pending.state); found && !found->pending) {
        found->pending = std::move(pending);
    }
}

std::size_t session_store::size() const {
    const std::lock_guard lock(mutex_);
    return sessions_.size();
}

std::size_t session_store::authorizations() const {
    const std::lock_guard lock(mutex_);
    return by_expiry_.size();
}

std::size_t session_store::connected_accounts() const {
    const std::lock_guard lock(mutex_);
    return accounts_held_;
}

session_store::session_record* session_store::find(std::string_view session,
                                                   std::chrono::steady_clock::time_point now) {
    drop_idle(now);
    if (session.empty()) {
        return nullptr;
    }
    const auto it = sessions_.find(std::string(session));
    return it != sessions_.end() ? seen(it, now) : nullptr;
}

session_store::session_record* session_store::find(const session_ref& session,
                                                   std::chrono::steady_clock::time_point now) {
    drop_idle(now);
    const auto indexed = by_serial_.find(session.serial);
    if (indexed == by_serial_.end() || indexed->second == nullptr) {
        return nullptr;
    }
    return seen(sessions_.find(**indexed->second->in_recency), now);
}

// The session `it` names, marked as seen now; nullptr (and dropped) when idle.
session_store::session_record* session_store::seen(session_map::iterator it,
                                                   std::chrono::steady_clock::time_point now) {
    if (is_idle(it->second, now)) {
        drop(it);
        return nullptr;
    }
    session_record& record = it->second;
    record.last_seen = now;
    recency_.splice(recency_.end(), recency_, record.in_recency);
    auto& own = record.client->second.sessions;
    own.splice(own.end(), own, record.in_client);
    return &record;
}

session_store::remembered_authorization* session_store::find_state(session_record& record,
                                                                   std::string_view state) {
    for (auto& a : record.authorizations) {
        if (apollo_oauth::constant_time_equal(a.state, state)) {
            return &a;
        }
    }
    return nullptr;
}

session_store::session_record& session_store::create(const std::string& client,
                                                     std::chrono::steady_clock::time_point now) {
    while (!sessions_.empty() && sessions_.size() >= limits_.max_sessions) {
        const auto oldest = sessions_.find(*recency_.front());
        if (is_idle(oldest->second, now)) {
            drop(oldest);
            continue;
        }
        const auto& heaviest = *clients_by_weight_.rbegin()->second;
        drop(sessions_.find(*heaviest.second.sessions.front()));
    }
    // Indexed first (pointing at nothing until the record is made), and unindexed if what follows
    // throws: an entry is never left behind.
    const auto indexed = by_serial_.try_emplace(serials_ + 1, nullptr).first;
    ++serials_;
    try {
        const auto [owner_it, arrived] = clients_.try_emplace(client);
        auto& owner = *owner_it;
        if (arrived) {
            owner.second.seniority = std::numeric_limits<std::uint64_t>::max() - arrivals_++;
        }
        for (;;) {
            // 256 random bits do not collide; if they ever did, the first session keeps its id.
            const auto [it, inserted] = sessions_.try_emplace(random_id());
            if (!inserted) {
                continue;
            }
            session_record& record = it->second;
            record.last_seen = now;
            record.in_recency = recency_.insert(recency_.end(), &it->first);
            record.client = &owner;
            record.in_client = owner.second.sessions.insert(owner.second.sessions.end(), &it->first);
            record.serial = indexed->first;
            indexed->second = &record;
            set_weight(owner, owner.second.weight + 1);
            return record;
        }
    } catch (...) {
        by_serial_.erase(indexed);
        throw;
    }
}

// Keeps the authorizations of all sessions under max_authorizations, counting the one about to be
// added to `keep`. Over the budget, expired authorizations go first, earliest first: a session that
// never comes back (a visitor who closed the consent page) would otherwise keep them until it idles
// out, while live ones were pushed out. Then the heaviest client loses the oldest authorization of
// its least recently seen session (and that session, once empty): the flood of one address, however
// many sessions it spreads over, pushes out its own. Refusing /connect with a 503 instead would let
// that flood lock every other visitor out until its authorizations expire.
void session_store::make_room_for_authorization(const session_record& keep) {
    const auto now = std::chrono::system_clock::now();
    for (std::size_t swept = 0;
         by_expiry_.size() >= limits_.max_authorizations && swept < max_expired_sweeps_per_call &&
         !by_expiry_.empty() && by_expiry_.begin()->first <= now;
         ++swept) {
        forget_expired_authorizations(*by_expiry_.begin()->second, now);
    }
    std::size_t empty_dropped = 0;
    while (by_expiry_.size() >= limits_.max_authorizations) {
        const auto& heaviest = *clients_by_weight_.rbegin()->second;
        const auto victim = sessions_.find(*heaviest.second.sessions.front());
        if (!victim->second.authorizations.empty()) {
            forget_oldest_authorization(victim->second);
        } else if (&victim->second != &keep && empty_dropped < max_empty_drops_per_call) {
            drop(victim);
            ++empty_dropped;
        } else {
            break;  // over the budget by this one: the next requests drop the rest
        }
    }
}

// An authorization past its expiry can only be refused (state_expired): it goes as soon as its
// session is seen, out of the budget, rather than when the whole session idles out.
void session_store::forget_expired_authorizations(session_record& record,
                                                  std::chrono::system_clock::time_point now) {
    auto& held = record.authorizations;
    forget(record,
           std::stable_partition(held.begin(), held.end(), [&](const auto& a) { return a.expires_at > now; }),
           held.end());
}

void session_store::forget_oldest_authorization(session_record& record) {
    forget(record, record.authorizations.begin(), std::next(record.authorizations.begin()));
}

// The one place authorizations go: out of the expiry index (which also counts them all) and out of
// their client's weight, in step.
void session_store::forget(session_record& record, authorization_list::iterator first,
                           authorization_list::iterator last) {
    if (first == last) {
        return;
    }
    for (auto it = first; it != last; ++it) {
        by_expiry_.erase(it->in_expiry);
    }
    const auto count = static_cast<std::size_t>(last - first);
    record.authorizations.erase(first, last);
    set_weight(*record.client, record.client->second.weight - count);
}

// An account connected again moves to the end with its profile as it is now. The count follows
// each change as it is made: push_back may throw.
void session_store::add_account(session_record& record, connected_account account) {
    auto& held = record.accounts;
    accounts_held_ -= std::erase_if(held, [&](const connected_account& a) { return a.id == account.id; });
    if (held.size() >= max_accounts_per_session) {
        held.erase(held.begin());
        --accounts_held_;
    }
    held.push_back(std::move(account));
    ++accounts_held_;
}

std::string session_store::unused_id() const {
    std::string id;
    do {
        id = random_id();
    } while (sessions_.contains(id));
    return id;
}

// Gives the session the id `id` (from unused_id()), keeping its record where it is: the lists
// point at the map's key, and a node extracted and inserted again keeps its address (the key
// changes in place). Nothing here allocates, so nothing throws while the node is out of the map
// (it goes back into the map it left, which has room for it: no rehash).
void session_store::rename(session_record& record, std::string id) {
    auto node = sessions_.extract(sessions_.find(**record.in_recency));
    node.key() = std::move(id);
    sessions_.insert(std::move(node));
}

void session_store::drop_idle(std::chrono::steady_clock::time_point now) {
    for (std::size_t dropped = 0; dropped < max_idle_drops_per_call && !recency_.empty(); ++dropped) {
        const auto it = sessions_.find(*recency_.front());
        if (!is_idle(it->second, now)) {
            break;
        }
        drop(it);
    }
}

bool session_store::is_idle(const session_record& record, std::chrono::steady_clock::time_point now) const {
    return now - record.last_seen > limits_.idle_timeout;
}

void session_store::drop(session_map::iterator it) {
    session_record& record = it->second;
    forget(record, record.authorizations.begin(), record.authorizations.end());
    accounts_held_ -= record.accounts.size();
    auto& owner = *record.client;
    recency_.erase(record.in_recency);
    owner.second.sessions.erase(record.in_client);
    by_serial_.erase(record.serial);
    sessions_.erase(it);
    set_weight(owner, owner.second.weight - 1);
}

// Keeps clients_by_weight_ in step with a client's weight; a client left with none (no session)
// goes.
void session_store::set_weight(client_map::value_type& client, std::size_t weight) {
    if (client.second.weight > 0) {
        clients_by_weight_.erase({client.second.weight, client.second.seniority});
    }
    client.second.weight = weight;
    if (weight > 0) {
        clients_by_weight_.emplace(std::pair{weight, client.second.seniority}, &client);
    } else {
        clients_.erase(clients_.find(client.first));
    }
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
