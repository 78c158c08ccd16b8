// What an idle cached account costs: a service holding a million accounts pays it a million
// times. The per-account state that exists only while an account is busy (a refresh's records, a
// save, queued async_store calls) is not carried, and not allocated, while it is idle.
#include "cache/cache_impl.hpp"
#include "sansio/account_fsm.hpp"
#include "sansio/heap_optional.hpp"

#include <boost/test/unit_test.hpp>

#include <optional>
#include <string>

#include "allocation_counter.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::allocations_during;

namespace {

boost::test_tools::assertion_result counting(boost::unit_test::test_unit_id) {
    return apollo_oauth::test::allocation_counter_active();
}

stored_tokens record(std::uint64_t generation) {
    stored_tokens r;
    r.tokens.access_token = secret_string{"access-" + std::to_string(generation)};
    r.tokens.refresh_token = secret_string{"refresh-" + std::to_string(generation)};
    r.generation = generation;
    return r;
}

const sansio::account_fsm_config settings{};  // the machines refer to it, as to their cache's

}  // namespace

BOOST_AUTO_TEST_SUITE(idle_account)

// libstdc++'s std::deque allocates about 600 bytes when it is constructed, even empty: the two
// queues an account once held cost 1,200 bytes per account before anything was queued.
BOOST_AUTO_TEST_CASE(a_new_account_machine_allocates_nothing, *boost::unit_test::precondition(counting)) {
    BOOST_TEST(allocations_during([] { sansio::account_fsm fsm{settings}; }) == 0u);
}

BOOST_AUTO_TEST_CASE(a_new_account_slot_allocates_nothing, *boost::unit_test::precondition(counting)) {
    BOOST_TEST(allocations_during([] {
                   detail::account_slot slot{"acme", 42, settings};
               }) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(heap_optional_value)

using boxed = sansio::heap_optional<stored_tokens>;

BOOST_AUTO_TEST_CASE(empty_it_is_one_pointer_and_allocates_nothing,
                     *boost::unit_test::precondition(counting)) {
    static_assert(sizeof(boxed) == sizeof(void*));
    BOOST_TEST(allocations_during([] { boxed b; }) == 0u);
    const boxed empty;
    BOOST_TEST(!empty);
    BOOST_TEST(!empty.has_value());
    BOOST_TEST(!static_cast<std::optional<stored_tokens>>(empty).has_value());
}

BOOST_AUTO_TEST_CASE(reads_and_writes_like_an_optional) {
    boxed b;
    b = record(1);
    BOOST_TEST_REQUIRE(b.has_value());
    BOOST_TEST(b->generation == 1u);
    b->generation = 2;  // in place
    BOOST_TEST((*b).generation == 2u);
    const std::optional<stored_tokens> some = record(3);
    b = some;
    BOOST_TEST(b->generation == 3u);
    BOOST_TEST(b->tokens.refresh_token.reveal() == "refresh-3");
    b = std::optional<stored_tokens>{};
    BOOST_TEST(!b);
    b = record(4);
    b.reset();
    BOOST_TEST(!b);
}

BOOST_AUTO_TEST_CASE(copies_are_deep_and_convert_to_std_optional) {
    boxed a;
    a = record(5);
    boxed copy{a};
    copy->generation = 6;
    BOOST_TEST(a->generation == 5u);  // not shared
    boxed assigned;
    assigned = a;
    assigned->generation = 7;
    BOOST_TEST(a->generation == 5u);
    const std::optional<stored_tokens> out = a;
    BOOST_TEST_REQUIRE(out.has_value());
    BOOST_TEST(out->generation == 5u);
    boxed moved{std::move(a)};
    BOOST_TEST(moved->generation == 5u);
}

BOOST_AUTO_TEST_SUITE_END()
