// token_store_writer: drives a file token store from a separate process, for the tests that kill
// it mid-save or race several of them.
//
//   token_store_writer <directory> <accounts>
//       Rotates the records of accounts "account-0".."account-<n-1>" forever, continuing from the
//       stored generations, with tokens of several KB. Prints "begin <account> <g>" before and
//       "done <account> <g>" after saving generation g (flushed each time).
//   token_store_writer --race <directory> <account> <last generation> <name>
//       Loads the record and saves the next generation, until the stored one reaches <last
//       generation>; prints "won <g>" for each save it won.
//   token_store_writer --hold-lease <directory> <account> <holder> [<ttl ms>]
//       Takes the account's lease, marks its request sent (which renews the lease for <ttl ms>,
//       default ten minutes), prints "held", and waits to be killed (the lease tests' dead or
//       lapsed holder).
//   token_store_writer --acquire <directory> <account> <holder> <known generation>
//       Asks once for the account's lease (for 30 s), prints what it was answered (granted, busy,
//       newer or reauthorization_required) and exits, which frees a lease granted.
// Exits 2 on a corrupt record, 3 on any other unexpected error.
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace {

using apollo_oauth::error_code;
using apollo_oauth::stored_tokens;
using apollo_oauth::token_store;

struct sync_store {
    boost::asio::io_context ioc;
    std::shared_ptr<token_store> store;

    explicit sync_store(const char* directory)
        : store(apollo_oauth::make_file_token_store(ioc.get_executor(), directory)) {}

    std::uint64_t generation(const std::string& account) {
        error_code result;
        std::uint64_t g = 0;
        store->async_load(account, [&](error_code ec, std::optional<stored_tokens> r) {
            result = ec;
            g = r ? r->generation : 0;
        });
        run();
        if (result) {
            std::fprintf(stderr, "load failed: %s\n", result.message().c_str());
            std::exit(result == apollo_oauth::errc::corrupt_record ? 2 : 3);
        }
        return g;
    }

    /// async_acquire, run to its answer.
    std::pair<error_code, apollo_oauth::lease_outcome> acquire(const std::string& account,
                                                               const std::string& holder, std::uint64_t known,
                                                               std::chrono::milliseconds ttl) {
        std::pair<error_code, apollo_oauth::lease_outcome> answer;
        store->async_acquire(account, holder, known, ttl, [&](error_code ec, apollo_oauth::lease_outcome o) {
            answer = {ec, std::move(o)};
        });
        run();
        return answer;
    }

    error_code save(const std::string& account, stored_tokens record, std::uint64_t expected) {
        error_code result;
        store->async_save(account, std::move(record), expected, [&](error_code ec) { result = ec; });
        run();
        return result;
    }

    void run() {
        ioc.restart();
        ioc.run();
    }
};

// The account and generation open each token, so a test can tell records apart by content too.
std::string token(std::mt19937_64& rng, const std::string& prefix) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::uniform_int_distribution<std::size_t> length(2000, 4000), pick(0, sizeof alphabet - 2);
    std::string t = prefix;
    for (std::size_t n = length(rng); t.size() < n;) {
        t += alphabet[pick(rng)];
    }
    return t;
}

stored_tokens make_record(std::mt19937_64& rng, const std::string& tag, std::uint64_t g) {
    stored_tokens r;
    r.generation = g;
    const std::string prefix = tag + "-g" + std::to_string(g) + "-";
    r.tokens.access_token = apollo_oauth::secret_string(token(rng, "access-" + prefix));
    r.tokens.refresh_token = apollo_oauth::secret_string(token(rng, "refresh-" + prefix));
    r.tokens.token_type = "Bearer";
    r.tokens.scopes = {"read_user_profile", "app_scopes"};
    r.tokens.expires_in = std::chrono::seconds(2592000);
    r.tokens.created_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000 + g));
    r.tokens.expires_at = r.tokens.created_at + r.tokens.expires_in;
    return r;
}

[[noreturn]] void rotate_forever(const char* directory, int accounts) {
    sync_store s(directory);
    std::mt19937_64 rng(std::random_device{}());
    std::vector<std::string> names;
    std::vector<std::uint64_t> generations;
    for (int i = 0; i < accounts; ++i) {
        names.push_back("account-" + std::to_string(i));
        generations.push_back(s.generation(names.back()));
    }
    for (;;) {
        for (std::size_t i = 0; i < names.size(); ++i) {
            const std::uint64_t g = generations[i] + 1;
            std::printf("begin %s %llu\n", names[i].c_str(), static_cast<unsigned long long>(g));
            std::fflush(stdout);
            if (const error_code ec = s.save(names[i], make_record(rng, names[i], g), generations[i])) {
                std::fprintf(stderr, "save failed: %s\n", ec.message().c_str());
                std::exit(3);
            }
            std::printf("done %s %llu\n", names[i].c_str(), static_cast<unsigned long long>(g));
            std::fflush(stdout);
            generations[i] = g;
        }
    }
}

int race(const char* directory, const std::string& account, std::uint64_t last, const std::string& name) {
    sync_store s(directory);
    std::mt19937_64 rng(std::random_device{}());
    // A racer that just won takes the lock again at once, and the others poll it: one may miss it
    // for the lock's whole bound (store_failure), and tries again, as the cache does; a failure
    // that persists is a real one.
    int lock_bounds_missed = 0;
    for (std::uint64_t g = s.generation(account); g < last; g = s.generation(account)) {
        const error_code ec = s.save(account, make_record(rng, name, g + 1), g);
        if (!ec) {
            std::printf("won %llu\n", static_cast<unsigned long long>(g + 1));
            std::fflush(stdout);
        } else if (ec == apollo_oauth::errc::store_failure && ++lock_bounds_missed < 10) {
            continue;
        } else if (ec != apollo_oauth::errc::generation_conflict) {
            std::fprintf(stderr, "save failed: %s\n", ec.message().c_str());
            return 3;
        }
    }
    return 0;
}

}  // namespace

int hold_lease(const char* directory, const std::string& account, const std::string& holder,
               std::chrono::milliseconds ttl) {
    sync_store s{directory};
    const std::uint64_t known = s.generation(account);
    // Acquired for ten minutes so that it cannot lapse before the mark; the mark sets `ttl`.
    const auto [acquired, lease] = s.acquire(account, holder, known, std::chrono::minutes(10));
    if (acquired || lease.what != apollo_oauth::lease_outcome::kind::granted) {
        return 3;
    }
    const std::uint64_t generation = lease.record ? lease.record->generation : 0;
    error_code result;
    s.store->async_mark_sent(account, holder, generation, ttl, [&](error_code ec) { result = ec; });
    s.run();
    if (result) {
        return 3;
    }
    std::printf("held\n");
    std::fflush(stdout);
    for (;;) {
        ::pause();
    }
}

int acquire_once(const char* directory, const std::string& account, const std::string& holder,
                 std::uint64_t known) {
    sync_store s{directory};
    const auto [result, lease] = s.acquire(account, holder, known, std::chrono::seconds(30));
    if (result) {
        std::fprintf(stderr, "acquire failed: %s\n", result.message().c_str());
        return 3;
    }
    using kind = apollo_oauth::lease_outcome::kind;
    const char* what = lease.what == kind::granted ? "granted"
                       : lease.what == kind::busy  ? "busy"
                       : lease.what == kind::newer ? "newer"
                                                   : "reauthorization_required";
    std::printf("%s\n", what);
    std::fflush(stdout);
    return 0;
}

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 5 && args[0] == "--acquire") {
        return acquire_once(argv[2], args[2], args[3], std::strtoull(argv[5], nullptr, 10));
    }
    if ((args.size() == 4 || args.size() == 5) && args[0] == "--hold-lease") {
        const auto ttl = args.size() == 5 ? std::chrono::milliseconds(std::strtoll(argv[5], nullptr, 10))
                                          : std::chrono::milliseconds(std::chrono::minutes(10));
        return hold_lease(argv[2], args[2], args[3], ttl);
    }
    if (args.size() == 2) {
        rotate_forever(argv[1], std::atoi(argv[2]));
    }
    if (args.size() == 5 && args[0] == "--race") {
        return race(argv[2], args[2], std::strtoull(argv[4], nullptr, 10), args[4]);
    }
    std::fprintf(stderr,
                 "usage: token_store_writer <directory> <accounts>\n"
                 "       token_store_writer --race <directory> <account> <last generation> <name>\n"
                 "       token_store_writer --hold-lease <directory> <account> <holder> [<ttl ms>]\n"
                 "       token_store_writer --acquire <directory> <account> <holder> <known generation>\n");
    return 64;
}
