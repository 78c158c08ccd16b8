// The connection pool's hand-over rules, driven directly: which connection a queued exchange is
// given. The retry of an idempotent request whose reused connection turned out closed asks for a
// fresh one (fresh_only); it must never be handed a used connection instead, and never wait for a
// release that cannot come. And how idle connections age out.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "http/connection_pool.hpp"

using namespace apollo_oauth;
namespace asio = boost::asio;

namespace {

struct one_slot_pool {
    asio::io_context ioc;
    std::shared_ptr<asio::ssl::context> tls =
        std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    http::connection_pool pool{ioc.get_executor(), tls, http::origin{"127.0.0.1", "443"},
                               pool_config{.max_connections_per_host = 1}};

    /// The pool's one connection, taken by an exchange, with an open socket: what release() needs
    /// to count it reusable (the pool keeps no unopened socket).
    std::shared_ptr<http::connection> take_used_connection() {
        auto no_handler = [](error_code, std::shared_ptr<http::connection>) {};
        auto conn = pool.acquire_or_queue(false, this, no_handler);
        BOOST_REQUIRE(conn);
        boost::beast::get_lowest_layer(conn->stream).socket().open(asio::ip::tcp::v4());
        conn->established = true;
        conn->requests = 1;
        return conn;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(connection_pool_handover)

// A retry queued behind a saturated pool: the connection the next exchange gives back has just
// been used, and may be closed by the server as the first one was. The retry gets a new one.
BOOST_AUTO_TEST_CASE(a_queued_retry_is_handed_a_new_connection_not_a_used_one) {
    one_slot_pool p;
    const auto used = p.take_used_connection();
    std::shared_ptr<http::connection> handed;
    int calls = 0;
    auto retry = [&](error_code ec, std::shared_ptr<http::connection> conn) {
        BOOST_TEST(!ec);
        handed = std::move(conn);
        ++calls;
    };
    const int key = 0;
    BOOST_REQUIRE(!p.pool.acquire_or_queue(true, &key, retry));  // the one slot is taken: queued
    p.pool.release(used, /*reusable=*/true);
    p.ioc.run();
    BOOST_TEST(calls == 1);
    BOOST_REQUIRE(handed);
    BOOST_TEST(handed != used);
    BOOST_TEST(handed->requests == 0u);
    BOOST_TEST(!handed->established);
}

// The same wait, but nothing is in use: every slot is an idle connection. No release will come, so
// an idle one gives its slot up at once.
BOOST_AUTO_TEST_CASE(a_retry_finding_every_slot_idle_gets_a_new_connection_at_once) {
    one_slot_pool p;
    const auto used = p.take_used_connection();
    p.pool.release(used, /*reusable=*/true);  // no waiter: it goes to the idle list
    auto never = [](error_code, std::shared_ptr<http::connection>) {
        BOOST_FAIL("queued: no release would ever complete it");
    };
    const int key = 0;
    const auto conn = p.pool.acquire_or_queue(true, &key, never);
    BOOST_REQUIRE(conn);
    BOOST_TEST(conn != used);
    BOOST_TEST(conn->requests == 0u);
}

// An ordinary waiter still takes the used connection: only a retry insists on a new one.
BOOST_AUTO_TEST_CASE(an_ordinary_waiter_is_handed_the_used_connection) {
    one_slot_pool p;
    const auto used = p.take_used_connection();
    std::shared_ptr<http::connection> handed;
    auto waiter = [&](error_code ec, std::shared_ptr<http::connection> conn) {
        BOOST_TEST(!ec);
        handed = std::move(conn);
    };
    const int key = 0;
    BOOST_REQUIRE(!p.pool.acquire_or_queue(false, &key, waiter));
    p.pool.release(used, /*reusable=*/true);
    p.ioc.run();
    BOOST_TEST(handed == used);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// The pool's clock, driven by the tests: an idle connection ages without a wait.
std::chrono::steady_clock::time_point fake_now{std::chrono::hours(1)};
std::chrono::steady_clock::time_point fake_clock() {
    return fake_now;
}

// A pool whose connections are connected to a loopback listener that never answers nor closes:
// idle, each is as usable as a live keep-alive connection (still_usable() peeks at its socket).
struct aging_pool {
    asio::io_context ioc;
    asio::ip::tcp::acceptor listener{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
    std::vector<asio::ip::tcp::socket> server_ends;
    std::shared_ptr<asio::ssl::context> tls =
        std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    http::connection_pool pool{
        ioc.get_executor(), tls, http::origin{"127.0.0.1", "443"},
        pool_config{.max_connections_per_host = 4, .idle_timeout = std::chrono::milliseconds(50)},
        &fake_clock};

    /// What an exchange does: takes a connection (an idle one, or a new one it then connects).
    std::shared_ptr<http::connection> take() {
        auto no_handler = [](error_code, std::shared_ptr<http::connection>) {};
        auto conn = pool.acquire_or_queue(false, this, no_handler);
        BOOST_REQUIRE(conn);
        if (!conn->established) {
            boost::beast::get_lowest_layer(conn->stream).socket().connect(listener.local_endpoint());
            server_ends.push_back(listener.accept());
            conn->established = true;
        }
        ++conn->requests;
        return conn;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(connection_pool_idle)

// After a burst, the request that follows reuses the connection idle the shortest time, and so on:
// the others are never reached. Once past idle_timeout they are closed all the same, at the next
// acquire, oldest first; they used to stay open (in CLOSE_WAIT once the server gave up on them).
BOOST_AUTO_TEST_CASE(a_connection_idle_past_the_timeout_is_closed_though_never_reached) {
    aging_pool p;
    auto first = p.take();  // two concurrent requests: two connections
    auto second = p.take();
    BOOST_TEST(p.pool.open_connections() == 2u);
    const std::weak_ptr<http::connection> older = first;
    p.pool.release(std::move(first), /*reusable=*/true);
    fake_now += std::chrono::milliseconds(30);
    p.pool.release(std::move(second), /*reusable=*/true);
    // Sequential requests, 20 ms apart: each reuses the newer connection, while the older one is
    // past idle_timeout from the first of them.
    for (int i = 0; i < 4; ++i) {
        fake_now += std::chrono::milliseconds(20);
        auto conn = p.take();
        BOOST_TEST(conn->requests == static_cast<unsigned>(i + 2));  // the newer one, reused
        BOOST_TEST(p.pool.open_connections() == 1u);                 // closed by the acquire
        p.pool.release(std::move(conn), /*reusable=*/true);
    }
    BOOST_TEST(p.pool.open_connections() == 1u);
    BOOST_TEST(older.expired());  // freed: its socket is closed
}

// A release closes them too: here no request comes after the burst, only its last response.
BOOST_AUTO_TEST_CASE(a_release_closes_connections_idle_past_the_timeout) {
    aging_pool p;
    auto first = p.take();
    auto second = p.take();
    auto third = p.take();
    const std::weak_ptr<http::connection> oldest = first;
    const std::weak_ptr<http::connection> newer = second;
    p.pool.release(std::move(first), /*reusable=*/true);
    fake_now += std::chrono::milliseconds(30);
    p.pool.release(std::move(second), /*reusable=*/true);
    fake_now += std::chrono::milliseconds(30);  // the first is past idle_timeout, the second not
    p.pool.release(std::move(third), /*reusable=*/true);
    BOOST_TEST(p.pool.open_connections() == 2u);
    BOOST_TEST(oldest.expired());
    BOOST_TEST(!newer.expired());
}

BOOST_AUTO_TEST_SUITE_END()
