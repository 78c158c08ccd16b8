// Records damaged on disk are reported as errc::corrupt_record, never a crash, and are not
// overwritten by a save.
#include "store/sha256.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

namespace apollo_oauth::store_test {
namespace {

struct corrupt_fixture : file_store_fixture {
    std::filesystem::path file = record_path(records, "acct");

    corrupt_fixture() { BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(1, "good", 500), 0)); }

    // Replaces the record file, then checks that load reports it and save leaves it alone.
    void check_corrupt(std::string_view bytes) {
        write_file(file, bytes);
        const auto loaded = load(*store, ioc, "acct");
        BOOST_TEST(loaded.ec == errc::corrupt_record);
        BOOST_TEST(!loaded.record);
        for (std::uint64_t expected : {0, 1}) {
            BOOST_TEST(save(*store, ioc, "acct", make_record(2, "over"), expected) == errc::corrupt_record);
        }
        BOOST_TEST(read_file(file) == bytes);
    }

    // `text` with its checksum recomputed, so only the structure is wrong.
    static std::string rechecksummed(std::string text) {
        const auto at = text.find(R"(,"checksum":")");
        BOOST_REQUIRE(at != std::string::npos);
        text.resize(at);
        const std::string sum = store::sha256_hex(text + "}");
        return text + R"(,"checksum":")" + sum + "\"}\n";
    }

    std::string good_text() const { return read_file(file); }
};

std::string replace_first(std::string s, std::string_view from, std::string_view to) {
    const auto at = s.find(from);
    BOOST_REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(corrupt_records)

BOOST_FIXTURE_TEST_CASE(garbage, corrupt_fixture) {
    check_corrupt("\x00\x01\xff garbage \x7f"s);
}

BOOST_FIXTURE_TEST_CASE(empty_file, corrupt_fixture) {
    check_corrupt("");
}

BOOST_FIXTURE_TEST_CASE(truncated_json, corrupt_fixture) {
    const std::string text = good_text();
    check_corrupt(text.substr(0, text.size() / 2));
    check_corrupt(text.substr(0, text.size() - 3));
}

BOOST_FIXTURE_TEST_CASE(bad_checksum, corrupt_fixture) {
    // One character of the access token changed: still valid JSON of the right shape.
    check_corrupt(replace_first(good_text(), "access-good-g1-", "access-good-g1+"));
    // The checksum itself changed.
    const std::string text = good_text();
    std::string bad_sum = text;
    const auto sum_at = bad_sum.find(R"("checksum":")") + 12;
    bad_sum[sum_at] = bad_sum[sum_at] == '0' ? '1' : '0';
    check_corrupt(bad_sum);
    // No checksum at all.
    check_corrupt(replace_first(text, text.substr(text.find(R"(,"checksum":")")), "}\n"));
}

BOOST_FIXTURE_TEST_CASE(record_of_another_account, corrupt_fixture) {
    BOOST_REQUIRE(!save(*store, ioc, "other", make_record(4, "other"), 0));
    const std::string others = read_file(record_path(records, "other"));
    check_corrupt(others);
}

BOOST_FIXTURE_TEST_CASE(valid_checksum_but_wrong_shape, corrupt_fixture) {
    const std::string text = good_text();
    check_corrupt(rechecksummed(replace_first(text, R"("format":1)", R"("format":2)")));
    check_corrupt(rechecksummed(replace_first(text, R"("generation":1)", R"("generation":"1")")));
    check_corrupt(rechecksummed(replace_first(text, R"("generation":1)", R"("generation":-1)")));
    check_corrupt(rechecksummed(replace_first(text, R"("scopes":[)", R"("scopes":[7,)")));
    check_corrupt(rechecksummed(replace_first(text, R"("token_type":)", R"("token_kind":)")));
    check_corrupt(rechecksummed(replace_first(text, R"("created_at":)", R"("created_at":99999999999999)")));
    check_corrupt(rechecksummed(replace_first(text, R"({"format":1)", R"([{"format":1)")));
}

BOOST_FIXTURE_TEST_CASE(oversized_file, corrupt_fixture) {
    check_corrupt(std::string(2 << 20, ' ') + good_text());
}

BOOST_FIXTURE_TEST_CASE(not_a_regular_file, corrupt_fixture) {
    std::filesystem::remove(file);
    std::filesystem::create_directory(file);
    BOOST_TEST(load(*store, ioc, "acct").ec == errc::corrupt_record);
    BOOST_TEST(save(*store, ioc, "acct", make_record(2, "over"), 1) == errc::corrupt_record);
    BOOST_TEST(std::filesystem::is_directory(file));
}

BOOST_FIXTURE_TEST_CASE(removing_a_corrupt_record_unblocks_the_account, corrupt_fixture) {
    check_corrupt("garbage");
    std::filesystem::remove(file);
    BOOST_TEST(!save(*store, ioc, "acct", make_record(1, "fresh"), 0));
    BOOST_TEST(!load(*store, ioc, "acct").ec);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
