// The token_store contract, checked on both stores: round trip, compare-and-set on the
// generation, no inline completion, the default lease.
#include "store/record_codec.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <future>
#include <memory>

namespace apollo_oauth::store_test {
namespace {

struct memory_store {
    static constexpr const char* name = "memory";
    std::shared_ptr<token_store> make(boost::asio::io_context& ioc) {
        return make_memory_token_store(ioc.get_executor());
    }
};

struct file_store {
    static constexpr const char* name = "file";
    temp_dir dir;
    std::shared_ptr<token_store> make(boost::asio::io_context& ioc) {
        return make_file_token_store(ioc.get_executor(), dir.path() / "tokens");
    }
};

using store_kinds = boost::mpl::list<memory_store, file_store>;

template <class Kind>
struct fixture {
    Kind kind;
    boost::asio::io_context ioc;
    std::shared_ptr<token_store> store = kind.make(ioc);
};

}  // namespace

BOOST_AUTO_TEST_SUITE(store_contract)

BOOST_AUTO_TEST_CASE_TEMPLATE(round_trip_keeps_every_field, Kind, store_kinds) {
    fixture<Kind> f;
    const stored_tokens first = make_record(1, "round-trip");
    BOOST_TEST(!save(*f.store, f.ioc, "acct", first, 0));
    auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, first);

    // A second generation replaces every field, with an empty scope list and refresh token.
    stored_tokens second = make_record(2, "second");
    second.tokens.scopes.clear();
    second.tokens.refresh_token.clear();
    BOOST_TEST(!save(*f.store, f.ioc, "acct", second, 1));
    loaded = load(*f.store, f.ioc, "acct");
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, second);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(loaded_records_are_copies, Kind, store_kinds) {
    fixture<Kind> f;
    const stored_tokens record = make_record(1, "copy");
    BOOST_TEST(!save(*f.store, f.ioc, "acct", record, 0));
    auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_REQUIRE(loaded.record);
    loaded.record->tokens.access_token = secret_string("changed by the caller");
    loaded.record->tokens.scopes.push_back("changed");
    const auto again = load(*f.store, f.ioc, "acct");
    BOOST_REQUIRE(again.record);
    check_same(*again.record, record);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(missing_account_loads_nothing, Kind, store_kinds) {
    fixture<Kind> f;
    const auto loaded = load(*f.store, f.ioc, "nobody");
    BOOST_TEST(!loaded.ec);
    BOOST_TEST(!loaded.record);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(first_save_requires_expected_zero, Kind, store_kinds) {
    fixture<Kind> f;
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(2, "x"), 1) == errc::generation_conflict);
    BOOST_TEST(!load(*f.store, f.ioc, "acct").record);
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(1, "x"), 0));
    // Expected 0 means "no record yet": once there is one, it conflicts.
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(5, "late"), 0) == errc::generation_conflict);
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().generation == 1u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(stale_expected_generation_conflicts_and_leaves_the_newer_record, Kind,
                              store_kinds) {
    fixture<Kind> f;
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(1, "one"), 0));
    const stored_tokens newer = make_record(2, "two");
    BOOST_TEST(!save(*f.store, f.ioc, "acct", newer, 1));
    // A slow writer that still holds generation 1 tries to rotate it.
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(2, "stale"), 1) == errc::generation_conflict);
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(3, "stale"), 1) == errc::generation_conflict);
    const auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, newer);
    // An expected generation from the future conflicts too.
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(9, "future"), 8) == errc::generation_conflict);
}

// Generations stay at or below store::max_generation (2^53 - 1) in every store: the file and Redis
// stores read a larger one as corrupt, so they cannot write one, and the memory store refuses it
// as they do (a cache must not work on one store and fail on the next at the same generation).
BOOST_AUTO_TEST_CASE_TEMPLATE(a_generation_past_the_limit_is_refused, Kind, store_kinds) {
    fixture<Kind> f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", make_record(1, "one"), 0));
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(store::max_generation + 1, "past"), 1) ==
               errc::invalid_argument);
    BOOST_TEST(commit(*f.store, f.ioc, "acct", "holder", make_record(store::max_generation + 1, "past"), 1) ==
               errc::invalid_argument);
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().generation == 1u);
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(store::max_generation, "last"), 1));
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().generation == store::max_generation);
}

// The contract: a write of a token that is not valid UTF-8 is refused (invalid_argument) and
// nothing is written, by a save and by a commit, whose holder's lease stays. The file and Redis
// stores could never read such a record back; the memory store accepted it, so a cache passed on
// it and then failed on those stores.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_token_that_is_not_utf8_is_refused, Kind, store_kinds) {
    fixture<Kind> f;
    const stored_tokens first = make_record(1, "first");
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", first, 0));
    const auto acquire = [&](const std::string& holder) {
        lease_outcome out;
        f.store->async_acquire("acct", holder, 1, std::chrono::seconds(60),
                               [&](error_code, lease_outcome o) { out = std::move(o); });
        f.ioc.restart();
        f.ioc.run();
        return out.what;
    };
    BOOST_REQUIRE((acquire("holder") == lease_outcome::kind::granted));
    for (const std::string_view bad : {"\xc3(", "\x80", "\xed\xa0\x80", "ok\xf4\x90\x80\x80"}) {
        stored_tokens access = make_record(2, "access");
        access.tokens.access_token = secret_string(bad);
        stored_tokens refresh = make_record(2, "refresh");
        refresh.tokens.refresh_token = secret_string(bad);
        for (const auto& record : {access, refresh}) {
            BOOST_TEST(save(*f.store, f.ioc, "acct", record, 1) == errc::invalid_argument);
            BOOST_TEST(commit(*f.store, f.ioc, "acct", "holder", record, 1) == errc::invalid_argument);
        }
    }
    const auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, first);
    BOOST_TEST((acquire("other") == lease_outcome::kind::busy));  // the refused commits cleared no lease
    // Valid UTF-8 beyond ASCII is a token like any other.
    stored_tokens multibyte = make_record(2, "multibyte");
    multibyte.tokens.refresh_token = secret_string(std::string_view("caf\xc3\xa9-\xf0\x9f\x94\x91"));
    BOOST_TEST(!save(*f.store, f.ioc, "acct", multibyte, 1));
    check_same(load(*f.store, f.ioc, "acct").record.value(), multibyte);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(generation_must_grow, Kind, store_kinds) {
    fixture<Kind> f;
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(0, "zero"), 0) == errc::invalid_argument);
    BOOST_TEST(!load(*f.store, f.ioc, "acct").record);
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(1, "one"), 0));
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(1, "same"), 1) == errc::invalid_argument);
    BOOST_TEST(
        load(*f.store, f.ioc, "acct").record.value().tokens.access_token.reveal().starts_with("access-one-"));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(accounts_are_independent_and_any_bytes, Kind, store_kinds) {
    fixture<Kind> f;
    const std::vector<std::string> accounts = {
        "a", "b", "nul\0and\xff\xfe bytes"s, "caf\xc3\xa9 \xf0\x9f\x94\x91", "../../etc/passwd", ""};
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        BOOST_TEST(!save(*f.store, f.ioc, accounts[i], make_record(i + 1, "acct" + std::to_string(i)), 0));
    }
    for (std::size_t i = 0; i < accounts.size(); ++i) {
        const auto loaded = load(*f.store, f.ioc, accounts[i]);
        BOOST_TEST(!loaded.ec);
        BOOST_REQUIRE(loaded.record);
        check_same(*loaded.record, make_record(i + 1, "acct" + std::to_string(i)));
    }
}

// Initiated from a handler already running on the io_context: a store that dispatched its
// completion (instead of posting it) would run the handler inside the initiating call.
BOOST_AUTO_TEST_CASE_TEMPLATE(never_completes_inline, Kind, store_kinds) {
    fixture<Kind> f;
    int completed = 0;
    bool save_returned = false, load_returned = false;
    boost::asio::post(f.ioc, [&] {
        f.store->async_save("acct", make_record(1, "x"), 0, [&](error_code ec) {
            BOOST_TEST(save_returned);
            BOOST_TEST(!ec);
            ++completed;
        });
        save_returned = true;
        f.store->async_load("acct", [&](error_code, std::optional<stored_tokens>) {
            BOOST_TEST(load_returned);
            ++completed;
        });
        load_returned = true;
    });
    f.ioc.run();
    BOOST_TEST(completed == 2);
    // The conflict path completes without touching anything: still posted.
    bool conflict_returned = false;
    boost::asio::post(f.ioc, [&] {
        f.store->async_save("acct", make_record(2, "y"), 0, [&](error_code ec) {
            BOOST_TEST(conflict_returned);
            BOOST_TEST(ec == errc::generation_conflict);
            ++completed;
        });
        conflict_returned = true;
    });
    f.ioc.restart();
    f.ioc.run();
    BOOST_TEST(completed == 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(first_lease_is_granted_and_not_inline, Kind, store_kinds) {
    fixture<Kind> f;
    bool returned = false;
    bool completed = false;
    boost::asio::post(f.ioc, [&] {
        f.store->async_acquire("acct", "holder", 0, std::chrono::seconds(30),
                               [&](error_code ec, lease_outcome o) {
                                   BOOST_TEST(returned);  // never inside the initiating call
                                   BOOST_TEST(!ec);
                                   BOOST_TEST((o.what == lease_outcome::kind::granted));
                                   BOOST_TEST(!o.record);  // nothing is stored yet
                                   completed = true;
                               });
        returned = true;
    });
    f.ioc.run();
    BOOST_TEST(completed);
    bool released = false;
    f.store->async_release("acct", "holder", [&](error_code ec) {
        BOOST_TEST(!ec);
        released = true;
    });
    f.ioc.restart();
    f.ioc.run();
    BOOST_TEST(released);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
