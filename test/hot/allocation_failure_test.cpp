// A get that goes to the account's machine (its token has expired) with each allocation of that
// step made to fail in turn: whatever fails, the caller is answered (the refreshed token, or
// operation_aborted), never destroyed uncalled (a coroutine suspended in async_get would never
// resume), and the account still serves the next get. Counted and failed with the replaced
// operator new (allocation_counter.cpp), so only where it is in use (not the sanitizer builds).
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "allocation_counter.hpp"

namespace asio = boost::asio;
using namespace apollo_oauth;
using apollo_oauth::test::allocations_on_this_thread;
using apollo_oauth::test::failing_allocations;

namespace {

boost::test_tools::assertion_result counting(boost::unit_test::test_unit_id) {
    return apollo_oauth::test::allocation_counter_active();
}

token_set pair_expiring_at(std::chrono::system_clock::time_point expires_at, char fill) {
    token_set t;
    t.access_token = secret_string{std::string(43, fill)};
    t.refresh_token = secret_string{std::string(43, static_cast<char>(fill + 1))};
    t.token_type = "Bearer";
    t.expires_in = std::chrono::hours(1);
    t.created_at = expires_at - t.expires_in;
    t.expires_at = expires_at;
    return t;
}

/// Answers every refresh with a new pair, through the io_context (never inline).
class answering_refresher final : public token_refresher {
public:
    explicit answering_refresher(asio::io_context& ioc) : ioc_(ioc) {}
    void async_refresh(secret_string, std::vector<std::string>, diagnostics*,
                       refresh_handler handler) override {
        asio::post(ioc_, [h = std::move(handler)]() mutable {
            std::move(h)(error_code{},
                         pair_expiring_at(std::chrono::system_clock::now() + std::chrono::hours(1), 'n'));
        });
    }

private:
    asio::io_context& ioc_;
};

const std::string apollo_id = "5f0c1e2d3b4a591000000042";

/// Runs `ioc`'s handlers until `done()` or until nothing is left to run. A bad_alloc a handler let
/// out (the cache passes the first one on, after every action it had) leaves run_one; the loop
/// goes on. The bound is a guard against a hang (a caller never answered keeps its io_context's
/// work), which then fails the test's checks; it is not a wait.
template <class Done>
void run_handlers_until(asio::io_context& ioc, Done done) {
    ioc.restart();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < give_up) {
        try {
            if (ioc.run_one_for(std::chrono::milliseconds(100)) == 0 && ioc.stopped()) {
                return;
            }
        } catch (const std::bad_alloc&) {
        }
    }
}

/// Runs `ioc`'s next handler with its allocation number `allowed` failing (std::bad_alloc), the
/// others succeeding. True when that allocation was made (the handler made more than `allowed`).
bool run_one_failing_allocation(asio::io_context& ioc, std::size_t allowed) {
    const auto before = allocations_on_this_thread();
    const failing_allocations no_memory(allowed, 1);
    try {
        ioc.run_one();
    } catch (const std::bad_alloc&) {
    }
    return allocations_on_this_thread() - before > allowed;
}

/// The cache's steady clock, moved by the test past a backoff.
struct movable_steady_clock {
    std::shared_ptr<std::chrono::steady_clock::duration> ahead =
        std::make_shared<std::chrono::steady_clock::duration>();
    std::chrono::steady_clock::time_point operator()() const {
        return std::chrono::steady_clock::now() + *ahead;
    }
};

cache_config with_clock(const movable_steady_clock& clock) {
    cache_config config;
    config.steady_clock = clock;
    return config;
}

/// A cache holding one pair for apollo_id, over the memory store.
struct cache_with_one_account {
    asio::io_context ioc;
    movable_steady_clock steady;
    token_cache cache{ioc.get_executor(), std::make_shared<answering_refresher>(ioc),
                      make_memory_token_store(ioc.get_executor()), with_clock(steady)};

    explicit cache_with_one_account(token_set pair) {
        asio::co_spawn(ioc, cache.async_store(apollo_id, std::move(pair), asio::use_awaitable),
                       asio::detached);
        ioc.run();
        ioc.restart();
    }
};

token_set expired_pair() {
    return pair_expiring_at(std::chrono::system_clock::now() - std::chrono::hours(1), 'a');
}

/// A valid pair whose access token is longer than the snapshot's inline words (a JWT, say): a
/// reader's copy of it allocates, and so does the machine's.
token_set pair_with_access_token(const std::string& access_token) {
    auto pair = pair_expiring_at(std::chrono::system_clock::now() + std::chrono::hours(1), 'a');
    pair.access_token = secret_string{access_token};
    return pair;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_get_reaching_the_machine_is_answered_whichever_allocation_fails,
                     *boost::unit_test::precondition(counting)) {
    std::size_t steps_with_a_failure = 0;
    for (std::size_t allowed = 0;; ++allowed) {
        BOOST_TEST_CONTEXT("the first " << allowed << " allocations succeed") {
            cache_with_one_account f{expired_pair()};
            std::size_t calls = 0;
            std::optional<error_code> first;
            f.cache.async_get(apollo_id, [&](error_code ec, access_token) {
                ++calls;
                first = ec;
            });
            // A second caller parks behind the first (in the account's parking lot, which the
            // first opened): it gets what the first gets.
            std::size_t behind_calls = 0;
            f.cache.async_get(apollo_id, [&](error_code, access_token) { ++behind_calls; });
            // The get is on its way to the account's strand: its step there is the next handler,
            // and allocation number `allowed` of that step fails.
            const bool injected = run_one_failing_allocation(f.ioc, allowed);
            run_handlers_until(f.ioc, [&] { return calls > 0 && behind_calls > 0; });
            BOOST_TEST_REQUIRE(calls == 1u);
            BOOST_TEST_REQUIRE(behind_calls == 1u);
            BOOST_TEST_MESSAGE("answered: " << first->message());

            // The account is not left stuck: past the backoff a failure may have begun (a store
            // call that could not be made is answered as the store failing), the next get is served.
            *f.steady.ahead += std::chrono::minutes(2);
            std::optional<error_code> next;
            std::size_t next_length = 0;
            f.cache.async_get(apollo_id, [&](error_code ec, access_token token) {
                next = ec;
                next_length = token.value.reveal().size();
            });
            run_handlers_until(f.ioc, [&] { return next.has_value(); });
            BOOST_TEST_REQUIRE(next.has_value());
            BOOST_TEST(!*next);
            BOOST_TEST(next_length == 43u);
            BOOST_TEST(calls == 1u);  // answered once
            BOOST_TEST(behind_calls == 1u);
            BOOST_TEST(f.cache.metrics().waiting_now == 0u);  // nobody counted as waiting who is not
            if (!injected) {
                break;  // every allocation of the step succeeded: the sweep has covered them all
            }
            ++steps_with_a_failure;
        }
    }
    BOOST_TEST(steps_with_a_failure > 0u);
}

// The account's machine serves a get itself when the snapshot missed although the token is valid
// (here: no memory for the reader's copy of a long token). Should its own copy fail too, the
// caller is told operation_aborted, and so is the caller parked behind it in the lot it opened:
// nothing else would ever close that lot (no refresh is in flight), and every later get that
// misses would park there.
BOOST_AUTO_TEST_CASE(a_lot_whose_opener_the_machine_could_not_serve_is_answered,
                     *boost::unit_test::precondition(counting)) {
    std::size_t steps_with_a_failure = 0;
    for (std::size_t allowed = 0;; ++allowed) {
        BOOST_TEST_CONTEXT("the first " << allowed << " allocations of the machine's step succeed") {
            const std::string long_token(200, 'j');
            cache_with_one_account f{pair_with_access_token(long_token)};
            std::size_t calls = 0, behind_calls = 0;
            {
                // Each reader's copy of the token is its first allocation: both miss.
                const failing_allocations no_memory(0, 1);
                f.cache.async_get(apollo_id, [&](error_code, access_token) { ++calls; });
            }
            {
                const failing_allocations no_memory(0, 1);
                f.cache.async_get(apollo_id, [&](error_code, access_token) { ++behind_calls; });
            }
            BOOST_TEST_REQUIRE(f.cache.metrics().waiters == 1u);  // the second parked in the lot
            const bool injected = run_one_failing_allocation(f.ioc, allowed);
            run_handlers_until(f.ioc, [&] { return calls > 0 && behind_calls > 0; });
            BOOST_TEST(calls == 1u);
            BOOST_TEST(behind_calls == 1u);

            // The lot is closed: the next caller that misses goes to the machine and is served.
            std::optional<error_code> next;
            std::string served;
            {
                const failing_allocations no_memory(0, 1);
                f.cache.async_get(apollo_id, [&](error_code ec, access_token t) {
                    next = ec;
                    served = std::string{t.value.reveal()};
                });
            }
            run_handlers_until(f.ioc, [&] { return next.has_value(); });
            BOOST_TEST_REQUIRE(next.has_value());
            BOOST_TEST(!*next);
            BOOST_TEST(served == long_token);
            if (!injected) {
                break;
            }
            ++steps_with_a_failure;
        }
    }
    BOOST_TEST(steps_with_a_failure > 0u);
}

// async_store of a pair for an account the cache has not seen, with each allocation of its step on
// the account's strand made to fail in turn (the event, the new account's slot, the call's place
// in its queue, then the machine's own): the caller is answered exactly once, success or
// operation_aborted; it used to be destroyed uncalled when the slot or its place could not be
// allocated, its coroutine suspended in async_store for good. The next store of the account is
// then taken and answered.
BOOST_AUTO_TEST_CASE(a_store_of_a_new_account_is_answered_whichever_allocation_fails,
                     *boost::unit_test::precondition(counting)) {
    std::size_t steps_with_a_failure = 0;
    for (std::size_t allowed = 0;; ++allowed) {
        BOOST_TEST_CONTEXT("the first " << allowed << " allocations of the store's step succeed") {
            asio::io_context ioc;
            token_cache cache{ioc.get_executor(), std::make_shared<answering_refresher>(ioc),
                              make_memory_token_store(ioc.get_executor())};
            std::size_t calls = 0;
            cache.async_store(apollo_id, expired_pair(), [&](error_code) { ++calls; });
            // The store's step on the account's strand is the next handler.
            const bool injected = run_one_failing_allocation(ioc, allowed);
            run_handlers_until(ioc, [&] { return calls > 0; });
            BOOST_TEST_REQUIRE(calls == 1u);

            std::optional<error_code> next;
            cache.async_store(apollo_id, expired_pair(), [&](error_code ec) { next = ec; });
            run_handlers_until(ioc, [&] { return next.has_value(); });
            BOOST_TEST_REQUIRE(next.has_value());
            BOOST_TEST(!*next);
            BOOST_TEST(calls == 1u);  // answered once
            if (!injected) {
                break;
            }
            ++steps_with_a_failure;
        }
    }
    BOOST_TEST(steps_with_a_failure > 0u);
}
