// async_get of a valid token allocates nothing on the caller's thread, for an account id of
// Apollo's length (24 characters, past std::string's 15-byte inline buffer): the operation keeps
// its copy of the id in an account_id (inline up to 32 bytes), where a std::string parameter
// allocated and freed a copy on every get. Counted with the replaced operator new
// (allocation_counter.cpp), after a warm-up that fills Asio's per-thread recycling caches. And the
// gets one handler makes complete in one operation.
#include <apollo_oauth/account_id.hpp>
#include <apollo_oauth/token_cache.hpp>
#include <apollo_oauth/token_store.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "allocation_counter.hpp"

namespace asio = boost::asio;
using namespace apollo_oauth;
using apollo_oauth::test::allocations_on_this_thread;

namespace {

boost::test_tools::assertion_result counting(boost::unit_test::test_unit_id) {
    return apollo_oauth::test::allocation_counter_active();
}

/// The cache never refreshes here: every get is of a valid token.
class no_refresher final : public token_refresher {
public:
    void async_refresh(secret_string, std::vector<std::string>, diagnostics*,
                       refresh_handler handler) override {
        BOOST_FAIL("a valid token was refreshed");
        std::move(handler)(make_error_code(errc::invalid_grant), token_set{});
    }
};

const std::string apollo_id = "5f0c1e2d3b4a591000000042";
#ifdef __GLIBCXX__
static_assert(sizeof(std::string) == 32, "libstdc++: an id past 15 bytes allocates in a std::string");
#endif

struct cache_with_one_account {
    asio::io_context ioc;
    token_cache cache{ioc.get_executor(), std::make_shared<no_refresher>(),
                      make_memory_token_store(ioc.get_executor())};

    cache_with_one_account() { store(apollo_id); }

    void store(const std::string& id) {
        token_set t;
        t.access_token = secret_string{std::string(43, 'a')};
        t.refresh_token = secret_string{std::string(43, 'r')};
        t.token_type = "Bearer";
        t.expires_in = std::chrono::hours(1);
        t.created_at = std::chrono::system_clock::now();
        t.expires_at = t.created_at + t.expires_in;
        ioc.restart();
        asio::co_spawn(ioc, cache.async_store(id, std::move(t), asio::use_awaitable), asio::detached);
        ioc.run();
    }

    /// Runs `body` to completion on the fixture's io_context.
    template <class Body>
    void run(Body body) {
        ioc.restart();
        asio::co_spawn(ioc, body(), [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
        ioc.run();
    }

    /// Allocations on this thread over `gets` gets (after as many to warm up), made by `get`, a
    /// coroutine body returning the token's length; every get must serve the 43-byte token.
    template <class Get>
    std::size_t allocations_over(std::size_t gets, Get get) {
        std::size_t served = 0, during = 0;
        ioc.restart();
        asio::co_spawn(
            ioc,
            [&]() -> asio::awaitable<void> {
                for (std::size_t i = 0; i < gets; ++i) {
                    served += co_await get() == 43 ? 1 : 0;
                }
                const auto before = allocations_on_this_thread();
                for (std::size_t i = 0; i < gets; ++i) {
                    served += co_await get() == 43 ? 1 : 0;
                }
                during = allocations_on_this_thread() - before;
            },
            asio::detached);
        ioc.run();
        BOOST_TEST(served == 2 * gets);
        return during;
    }
};

}  // namespace

// No memory for a new account's slot when its first get reaches the cache's strand: the caller is
// told operation_aborted (the bad_alloc leaves run()); it used to be destroyed uncalled, its
// coroutine suspended for good (those parked in its lot were told).
BOOST_FIXTURE_TEST_CASE(no_memory_for_a_new_accounts_slot_answers_its_first_caller, cache_with_one_account,
                        *boost::unit_test::precondition(counting)) {
    const std::string unknown = "5f0c1e2d3b4a591000000099";
    std::optional<error_code> first;
    cache.async_get(unknown, [&](error_code ec, access_token) { first = ec; });
    ioc.restart();
    {
        const apollo_oauth::test::failing_allocations no_memory;
        BOOST_CHECK_THROW(ioc.run_one(), std::bad_alloc);
    }
    ioc.run();
    BOOST_TEST_REQUIRE(first.has_value());
    BOOST_TEST(*first == asio::error::operation_aborted);
}

BOOST_FIXTURE_TEST_SUITE(async_get_allocations, cache_with_one_account)

BOOST_AUTO_TEST_CASE(a_get_of_an_apollo_length_id_allocates_nothing,
                     *boost::unit_test::precondition(counting)) {
    // As the README calls it: an lvalue std::string, use_awaitable.
    BOOST_TEST(allocations_over(1000, [&]() -> asio::awaitable<std::size_t> {
                   const auto token = co_await cache.async_get(apollo_id, asio::use_awaitable);
                   co_return token.value.reveal().size();
               }) == 0u);
}

BOOST_AUTO_TEST_CASE(a_get_of_a_string_view_or_a_literal_allocates_nothing,
                     *boost::unit_test::precondition(counting)) {
    const std::string_view id = apollo_id;
    BOOST_TEST(allocations_over(1000, [&]() -> asio::awaitable<std::size_t> {
                   const auto token = co_await cache.async_get(id, asio::use_awaitable);
                   co_return token.value.reveal().size();
               }) == 0u);
    BOOST_TEST(allocations_over(1000, [&]() -> asio::awaitable<std::size_t> {
                   const auto token =
                       co_await cache.async_get("5f0c1e2d3b4a591000000042", asio::use_awaitable);
                   co_return token.value.reveal().size();
               }) == 0u);
}

// The forms an operation can be launched in pass the id as an rvalue, or (a named deferred
// operation launched as an lvalue, or twice, or a const one) as a const lvalue: both compile and
// serve, on the hot path and on the slow one.
BOOST_AUTO_TEST_CASE(a_named_deferred_get_is_launched_twice_and_a_const_one_with_a_callback) {
    std::size_t served = 0;
    run([&]() -> asio::awaitable<void> {
        auto get = cache.async_get(apollo_id, asio::as_tuple(asio::deferred));
        for (int i = 0; i < 2; ++i) {
            auto [ec, token] =
                co_await get(asio::use_awaitable);  // an lvalue: the initiation is given a const id
            served += !ec && token.value.reveal().size() == 43 ? 1 : 0;
        }
        auto unknown = cache.async_get("an unknown account, longer than thirty-two bytes",
                                       asio::as_tuple(asio::deferred));
        auto [missing, none] = co_await unknown(asio::use_awaitable);  // the slow path, from a const id
        BOOST_TEST((missing == errc::unknown_account));
    });
    const auto get = cache.async_get(apollo_id);
    get([&](error_code ec, access_token token) {
        served += !ec && token.value.reveal().size() == 43 ? 1 : 0;
    });
    ioc.restart();
    ioc.run();
    BOOST_TEST(served == 3u);
}

// Ids longer than the inline buffer take the std::string form through every move of the
// operation: a miss, a hit, and the diagnostics overload (which always reaches the machine).
BOOST_AUTO_TEST_CASE(ids_longer_than_the_inline_buffer_go_through_every_path) {
    for (const std::size_t n : {std::size_t{33}, std::size_t{40}, std::size_t{100}}) {
        const std::string id(n, 'L');
        run([&]() -> asio::awaitable<void> {
            auto [missing, none] = co_await cache.async_get(id, asio::as_tuple(asio::use_awaitable));
            BOOST_TEST((missing == errc::unknown_account));
        });
        store(id);
        std::size_t served = 0;
        run([&]() -> asio::awaitable<void> {
            const auto hit = co_await cache.async_get(id, asio::use_awaitable);
            served += hit.value.reveal().size() == 43 ? 1 : 0;
            const auto moved = co_await cache.async_get(std::string(id), asio::use_awaitable);
            served += moved.value.reveal().size() == 43 ? 1 : 0;
            diagnostics diag;
            const auto answered = co_await cache.async_get(id, diag, asio::use_awaitable);
            served += answered.value.reveal().size() == 43 ? 1 : 0;
        });
        BOOST_TEST(served == 3u);
    }
}

// A coroutine's completion joins a batch in a block of the thread's node cache (128 bytes), and
// only a completion that moves without throwing is batched: one that grew past the block would
// send every join to the shared pool (a mutex per get), one whose move may throw would not batch.
namespace coroutine_handlers {
using plain = asio::detail::awaitable_async_op_handler<void(error_code, access_token), asio::any_io_executor>;
using tupled = asio::detail::as_tuple_handler<asio::detail::awaitable_async_op_handler<
    void(std::tuple<error_code, access_token>), asio::any_io_executor>>;
template <class H>
using node = detail::completion_node<detail::hot_completion<H>, detail::thread_node_allocator<void>>;
static_assert(sizeof(node<plain>) <= detail::thread_node_cache::block_size);
static_assert(sizeof(node<tupled>) <= detail::thread_node_cache::block_size);
static_assert(std::is_nothrow_move_constructible_v<detail::hot_completion<plain>>);
static_assert(std::is_nothrow_move_constructible_v<detail::hot_completion<tupled>>);
}  // namespace coroutine_handlers

namespace {
/// Parks coroutines and resumes them all from one handler (a herd let in at once).
class gate {
public:
    auto wait() {
        return asio::async_initiate<decltype(asio::use_awaitable), void()>(
            [this](auto handler) { parked_.emplace_back(std::move(handler)); }, asio::use_awaitable);
    }
    void open(asio::io_context& ioc) {
        asio::post(ioc, [this] {
            for (auto& h : std::exchange(parked_, {})) {
                std::move(h)();
            }
        });
    }
    std::size_t parked() const { return parked_.size(); }

private:
    std::vector<asio::any_completion_handler<void()>> parked_;
};
}  // namespace

/// Spawns `herd` coroutines on the fixture's io_context that wait at `let_in`, then get `gets`
/// times, counting the 43-byte tokens served in `served`; runs until all of them wait.
template <class Counter>
void park_herd(cache_with_one_account& f, gate& let_in, std::size_t herd, int gets, Counter& served) {
    f.ioc.restart();
    for (std::size_t i = 0; i < herd; ++i) {
        asio::co_spawn(
            f.ioc,
            [&f, &let_in, &served, gets]() -> asio::awaitable<void> {
                co_await let_in.wait();
                for (int round = 0; round < gets; ++round) {
                    const auto token = co_await f.cache.async_get(apollo_id, asio::use_awaitable);
                    served += token.value.reveal().size() == 43 ? 1 : 0;
                }
            },
            asio::detached);
    }
    f.ioc.poll();
    BOOST_TEST_REQUIRE(let_in.parked() == herd);
}

// The gets that one handler resumes complete in one queued operation after it, not one each
// (include/apollo_oauth/detail/completion_batch.hpp): on two threads, one each reached the
// scheduler's shared queue and the coroutine frames went back and forth between the threads.
BOOST_AUTO_TEST_CASE(the_gets_one_handler_resumes_complete_in_one_operation) {
    constexpr std::size_t herd = 500;
    gate let_in;
    std::size_t served = 0;
    park_herd(*this, let_in, herd, 1, served);
    let_in.open(ioc);
    BOOST_TEST(ioc.poll_one() == 1u);  // the gate's handler: every caller gets, none is served inline
    BOOST_TEST(served == 0u);
    BOOST_TEST(ioc.poll_one() == 1u);  // one operation serves them all
    BOOST_TEST(served == herd);
}

// The same herd on two threads, three gets each: every get is served, whichever thread runs each
// batch. (Joins racing a close on another thread: completion_batch_test's two-chain case.)
BOOST_AUTO_TEST_CASE(a_herd_let_in_on_two_threads_is_served_every_time) {
    constexpr std::size_t herd = 2000;
    gate let_in;
    std::atomic<std::size_t> served{0};
    park_herd(*this, let_in, herd, 3, served);
    let_in.open(ioc);
    {
        std::jthread second([&] { ioc.run(); });
        ioc.run();
    }
    BOOST_TEST(served == 3 * herd);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// A string type of an application's own that converts to std::string_view (as
/// boost::core::string_view does): an id is made from it in one conversion.
struct own_string {
    std::string text;
    operator std::string_view() const noexcept { return text; }  // NOLINT(google-explicit-constructor)
};

}  // namespace

BOOST_AUTO_TEST_SUITE(account_ids)

BOOST_AUTO_TEST_CASE(other_string_types_that_convert_to_a_string_view_make_an_id) {
    const own_string id{apollo_id};
    const auto take = [](account_id a) { return std::string(a.view()); };
    BOOST_TEST(take(id) == apollo_id);
    static_assert(!std::is_convertible_v<std::nullptr_t, account_id>);
}

BOOST_AUTO_TEST_CASE(ids_up_to_the_inline_capacity_are_kept_inline_and_longer_ones_moved) {
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{24}, std::size_t{32},
                                std::size_t{33}, std::size_t{100}}) {
        const std::string id(n, 'q');
        BOOST_TEST(account_id(id).view() == id);
        BOOST_TEST(account_id(std::string_view(id)).view() == id);
        BOOST_TEST(account_id(id.c_str()).view() == id);
        BOOST_TEST(account_id(id).to_string() == id);
        // A copy of a copy, and a moved one, read the same.
        const account_id copied{id};
        account_id moved{copied};
        BOOST_TEST(account_id(std::move(moved)).view() == id);
        if (apollo_oauth::test::allocation_counter_active()) {  // a sanitizer may bring its own operator new
            BOOST_TEST(apollo_oauth::test::allocations_during([&] { account_id a{id}; }) ==
                       (n > 32 ? 1u : 0u));
        }
    }
    // Assignment between every pair of short and long ids (each side's storage swapped for the
    // other's kind), and to itself.
    const std::string kinds[] = {"", "5f0c1e2d3b4a591000000042", std::string(40, 'x'), std::string(90, 'y')};
    for (const auto& from : kinds) {
        for (const auto& to : kinds) {
            account_id a{to};
            const account_id b{from};
            a = b;
            BOOST_TEST(a.view() == from);
            account_id c{to};
            c = account_id{from};
            BOOST_TEST(c.view() == from);
        }
        account_id self{from};
        auto& alias = self;
        self = alias;
        BOOST_TEST(self.view() == from);
    }
    // A long id given up by its owner keeps that owner's buffer: no copy.
    std::string long_id(100, 'l');
    const auto* buffer = long_id.data();
    account_id taken{std::move(long_id)};
    BOOST_TEST(taken.view().data() == buffer);
    BOOST_TEST(std::move(taken).to_string().data() == buffer);
}

BOOST_AUTO_TEST_SUITE_END()
