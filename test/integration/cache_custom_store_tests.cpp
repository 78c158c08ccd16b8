// Caches over a custom store that implements only async_load and async_save (load_save_store),
// against the emulator over loopback TLS: token_store's default coordination keeps the caches of
// one process that share the store object to one refresh per rotation. Apollo (and the emulator)
// rotates the refresh token on every refresh and revokes the grant when a spent one comes back, so
// a second refresh with the same token locks the customer out.
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "cache_fixture.hpp"
#include "load_save_store.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
using apollo_oauth::test::herd;
using apollo_oauth::test::load_save_store;
using apollo_oauth::test::served;
using apollo_oauth::test::until;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using kind = emulator::fault::kind;

namespace {

struct custom_store_fixture : cache_fixture {
    std::shared_ptr<load_save_store> custom = std::make_shared<load_save_store>(ioc.get_executor());
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(cache_custom_store, custom_store_fixture)

// A server reload: a new token_cache is built over the existing store object while the old
// cache's refresh is on the wire (held there by the emulator's latency fault, after the endpoint
// rotated). The new cache must wait for that refresh and adopt its pair. The defaults used to
// grant it the lease at once: it sent refresh token 1 again, the emulator revoked the grant, and
// the customer had to authorize again.
BOOST_AUTO_TEST_CASE(a_cache_recreated_during_a_refresh_adopts_the_old_caches_pair) {
    client c{ioc.get_executor(), config()};
    const auto [original, old_ec, token, new_cache] = reload_during_a_refresh(c, custom, cache_settings());
    BOOST_TEST(old_ec == errc::shutting_down);
    BOOST_TEST(token.generation == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);  // nobody presented the spent token again
    BOOST_TEST(new_cache->metrics().refreshes == 0u);
    BOOST_TEST(new_cache->metrics().adopted == 1u);
    BOOST_TEST(custom->stored_generation("acme") == 2u);
}

// Two caches over one such store, 2,000 callers on two threads, every pair expired: one refresh.
BOOST_AUTO_TEST_CASE(two_caches_over_one_load_save_store_refresh_once) {
    client c{ioc.get_executor(), config()};
    token_cache first{c, custom, cache_settings()};
    token_cache second{c, custom, cache_settings()};
    const auto original = seed(c, first, "acme");
    expire_everything();
    served s;
    herd(ioc, {&first, &second}, "acme", 2'000, 2, s);
    BOOST_TEST(s.ok.load() == 2'000);
    BOOST_TEST(s.failed.load() == 0);
    BOOST_TEST(s.generations.size() == 1u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
    const auto grant = server.grant_stats_of(std::string{original.refresh_token.reveal()});
    BOOST_TEST(grant.refreshes == 1u);
    BOOST_TEST(grant.reuses == 0u);
    const auto a = first.metrics();
    const auto b = second.metrics();
    BOOST_TEST(a.refreshes + b.refreshes == 1u);
    BOOST_TEST(a.rotations + b.rotations == 1u);
    BOOST_TEST(a.adopted + b.adopted == 1u);  // the other cache took the stored pair
    BOOST_TEST(a.waiting_now == 0u);
    BOOST_TEST(b.waiting_now == 0u);
    BOOST_TEST(custom->stored_generation("acme") == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
