// sansio::packed_rest: an idle account's rest in one exact-size block. Every field comes back as
// it went in (the twins in fsm_test.cpp also go through a packing, so every scenario there checks
// the machine rebuilt from an unpacked rest); the block is as small as its contents.
#include "sansio/packed_rest.hpp"

#include <boost/test/unit_test.hpp>

#include <limits>
#include <string>

using namespace apollo_oauth;
using namespace apollo_oauth::sansio;

namespace {

using std::chrono::system_clock;

/// Every field different from its default and from every other field.
account_rest every_field_set(std::string access, std::string refresh, std::vector<std::string> scopes) {
    account_rest r;
    r.current.generation = 7;
    r.current.state = record_state::reauthorization_required;
    r.current.tokens.access_token = secret_string(access);
    r.current.tokens.refresh_token = secret_string(refresh);
    r.current.tokens.token_type = "Bearer";
    r.current.tokens.scopes = std::move(scopes);
    r.current.tokens.expires_in = std::chrono::seconds(7200);
    r.current.tokens.created_at = system_clock::time_point(std::chrono::seconds(1'700'000'000));
    r.current.tokens.expires_at =
        system_clock::time_point(std::chrono::nanoseconds(1'700'007'200'123'456'789));
    r.stored_generation = 6;
    r.invalidated_generation = 5;
    r.refresh_base = 4;
    r.usable_until = system_clock::time_point(std::chrono::nanoseconds(1'700'007'140'000'000'001));
    r.refresh_at = system_clock::time_point(std::chrono::nanoseconds(1'700'005'400'000'000'002));
    r.save_attempts = 3;
    r.stopped = true;
    return r;
}

void check_same(const account_rest& a, const account_rest& b) {
    BOOST_TEST(a.current.generation == b.current.generation);
    BOOST_TEST((a.current.state == b.current.state));
    // Compared, never printed: a failure must not put a token in the log.
    BOOST_TEST((a.current.tokens.access_token.reveal() == b.current.tokens.access_token.reveal()));
    BOOST_TEST((a.current.tokens.refresh_token.reveal() == b.current.tokens.refresh_token.reveal()));
    BOOST_TEST(a.current.tokens.token_type == b.current.tokens.token_type);
    BOOST_TEST(a.current.tokens.scopes == b.current.tokens.scopes, boost::test_tools::per_element());
    BOOST_TEST(a.current.tokens.expires_in.count() == b.current.tokens.expires_in.count());
    BOOST_TEST((a.current.tokens.created_at == b.current.tokens.created_at));
    BOOST_TEST((a.current.tokens.expires_at == b.current.tokens.expires_at));
    BOOST_TEST(a.stored_generation == b.stored_generation);
    BOOST_TEST(a.invalidated_generation == b.invalidated_generation);
    BOOST_TEST(a.refresh_base == b.refresh_base);
    BOOST_TEST((a.usable_until == b.usable_until));
    BOOST_TEST((a.refresh_at == b.refresh_at));
    BOOST_TEST(a.save_attempts == b.save_attempts);
    BOOST_TEST(a.stopped == b.stopped);
}

const std::string apollo_access(43, 'a');
const std::string apollo_refresh(43, 'r');

}  // namespace

BOOST_AUTO_TEST_SUITE(packed_rest_block)

BOOST_AUTO_TEST_CASE(every_field_comes_back_as_it_was_packed) {
    const auto rest = every_field_set(apollo_access, apollo_refresh, {"read_user", "", "contacts:write"});
    const packed_rest packed{rest};
    BOOST_REQUIRE(static_cast<bool>(packed));
    check_same(packed.unpack(), rest);
    check_same(packed.unpack(), rest);  // unpacking leaves the block as it was
}

BOOST_AUTO_TEST_CASE(long_and_empty_tokens_and_no_scopes_come_back) {
    // Longer than a secret_string's inline buffer, and a code exchange's missing refresh token.
    const auto rest = every_field_set(std::string(1000, 'x'), "", {});
    check_same(packed_rest{rest}.unpack(), rest);
    const auto empty_type = [] {
        auto r = every_field_set("a", "r", {"s"});
        r.current.tokens.token_type.clear();
        return r;
    }();
    check_same(packed_rest{empty_type}.unpack(), empty_type);
}

BOOST_AUTO_TEST_CASE(numbers_at_their_limits_come_back) {
    // Varints of the widest values, and time points as far from the base as they can be (the
    // distances wrap around, and must come back all the same).
    auto rest = every_field_set("a", "r", {"s"});
    rest.current.generation = std::numeric_limits<std::uint64_t>::max();
    rest.stored_generation = 0;
    rest.invalidated_generation = std::uint64_t{1} << 63;
    rest.refresh_base = 127;  // the largest one-byte varint
    rest.save_attempts = std::numeric_limits<unsigned>::max();
    rest.current.tokens.expires_in =
        std::chrono::seconds(std::numeric_limits<std::chrono::seconds::rep>::min());
    rest.current.tokens.expires_at = system_clock::time_point::max();
    rest.current.tokens.created_at = system_clock::time_point::min();
    rest.usable_until = system_clock::time_point{};
    rest.refresh_at = system_clock::time_point::min();
    check_same(packed_rest{rest}.unpack(), rest);
    rest.current.tokens.expires_at = system_clock::time_point::min();
    rest.current.tokens.created_at = system_clock::time_point::max();
    rest.current.state = record_state::ok;
    rest.stopped = false;
    check_same(packed_rest{rest}.unpack(), rest);
    // And with what it serves left to a keeper (the expiry is then a distance from its
    // usable-until).
    rest.usable_until = system_clock::time_point::max();
    const auto keeper = served_of(rest);
    check_same(packed_rest(rest, &keeper).unpack(keeper), rest);
}

BOOST_AUTO_TEST_CASE(what_the_rest_serves_is_left_to_a_keeper_that_holds_exactly_that) {
    const auto rest = every_field_set(apollo_access, apollo_refresh, {"read_user"});
    const auto keeper = served_of(rest);
    const packed_rest holding{rest};
    const packed_rest without{rest, &keeper};
    BOOST_TEST(holding.holds_served_snapshot());
    BOOST_TEST(!without.holds_served_snapshot());
    BOOST_TEST(holding.size() > without.size() + apollo_access.size());
    check_same(without.unpack(keeper), rest);
    auto other = keeper;
    other.access_token = "ignored: the block has its own";
    other.generation = 1;
    check_same(holding.unpack(other), rest);

    // A keeper that differs in any one field holds something else: the block keeps its own.
    const auto differs = [&](auto change) {
        auto k = keeper;
        change(k);
        const packed_rest packed{rest, &k};
        BOOST_TEST(packed.holds_served_snapshot());
        check_same(packed.unpack(k), rest);
    };
    differs([](served_snapshot& k) { k.access_token = apollo_refresh; });  // same length
    differs([](served_snapshot& k) { k.access_token = k.access_token.substr(0, 42); });
    differs([](served_snapshot& k) { ++k.generation; });
    differs([](served_snapshot& k) { k.usable_until += std::chrono::nanoseconds(1); });
    differs([](served_snapshot& k) { k.refresh_at -= std::chrono::nanoseconds(1); });

    // An empty access token is held by the block too, told apart from one left to the keeper.
    const auto empty = every_field_set("", apollo_refresh, {});
    BOOST_TEST(packed_rest{empty}.holds_served_snapshot());
    check_same(packed_rest{empty}.unpack(keeper), empty);
}

BOOST_AUTO_TEST_CASE(token_types_other_than_bearer_come_back_as_they_were) {
    for (const std::string type : {"bearer", "Bearer ", "MAC", "Bearer"}) {
        auto rest = every_field_set("a", "r", {"s"});
        rest.current.tokens.token_type = type;
        check_same(packed_rest{rest}.unpack(), rest);
    }
}

BOOST_AUTO_TEST_CASE(an_apollo_pair_packs_into_its_refresh_token_and_a_few_bytes_more) {
    // As the client receives one: created when sent, expiring an hour later, usable until a
    // minute before that; what it serves is left to the keeper, as the cache packs it.
    auto rest = every_field_set(apollo_access, apollo_refresh, {});
    const auto sent = system_clock::time_point(std::chrono::nanoseconds(1'764'900'000'123'456'789));
    rest.current.tokens.expires_in = std::chrono::seconds(3600);
    rest.current.tokens.created_at = sent;
    rest.current.tokens.expires_at = sent + std::chrono::seconds(3600);
    rest.usable_until = rest.current.tokens.expires_at - std::chrono::seconds(60);
    rest.refresh_at = sent + std::chrono::nanoseconds(3'112'345'678'901);
    const auto keeper = served_of(rest);
    const packed_rest packed{rest, &keeper};
    // The expiry and creation as whole-second distances (2 + 1), the lifetime (2), three small
    // generations, the counters and flags (6), the refresh token's length, "Bearer" and no scopes
    // (3), and the keeper's mark (1): 15 bytes beside the refresh token, against 288 for an
    // account_rest.
    BOOST_TEST(packed.size() == apollo_refresh.size() + 15);
    check_same(packed.unpack(keeper), rest);
}

BOOST_AUTO_TEST_CASE(moving_and_resetting_leave_an_empty_block_behind) {
    packed_rest a{every_field_set("a", "r", {})};
    packed_rest b{std::move(a)};
    BOOST_TEST(!static_cast<bool>(a));  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    BOOST_TEST(a.size() == 0u);
    BOOST_TEST(static_cast<bool>(b));
    packed_rest c{every_field_set("c", "d", {})};
    c = std::move(b);  // the block c held is wiped and freed
    BOOST_TEST(static_cast<bool>(c));
    BOOST_TEST((c.unpack().current.tokens.access_token.reveal() == "a"));
    c.reset();
    BOOST_TEST(!static_cast<bool>(c));
    BOOST_TEST(c.size() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
