// The file store's own promises: modes, restarts, file names, temporary files, refused
// directories, and what it refuses to write.
#include "store/record_files.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace apollo_oauth::store_test {
namespace {

// Sets the umask for one scope. A umask of 0 shows any mode the store forgot to restrict.
class umask_guard {
public:
    explicit umask_guard(mode_t mask) : old_(::umask(mask)) {}
    ~umask_guard() { ::umask(old_); }
    umask_guard(const umask_guard&) = delete;
    umask_guard& operator=(const umask_guard&) = delete;

private:
    mode_t old_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(file_store)

BOOST_AUTO_TEST_CASE(directories_are_created_0700_and_files_are_0600) {
    const umask_guard open_umask(0);
    temp_dir dir;
    const auto records = dir.path() / "missing" / "parents" / "tokens";
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    BOOST_TEST(!save(*store, ioc, "acct", make_record(1, "x"), 0));
    BOOST_TEST(mode_of(records) == 0700u);
    BOOST_TEST(mode_of(dir.path() / "missing") == 0700u);
    BOOST_TEST(mode_of(dir.path() / "missing" / "parents") == 0700u);
    BOOST_TEST(mode_of(record_path(records, "acct")) == 0600u);
    const auto key = store::account_key("acct");
    BOOST_TEST(mode_of(records / store::lock_file_name(key)) == 0600u);
    // A replaced record is a new file: it must be 0600 too.
    BOOST_TEST(!save(*store, ioc, "acct", make_record(2, "x"), 1));
    BOOST_TEST(mode_of(record_path(records, "acct")) == 0600u);
}

// A record restored by hand may be readable by every local user (cp under umask 022): reading it
// makes it 0600 again. One owned by another user (but root) is refused, as its directory would be.
BOOST_AUTO_TEST_CASE(a_record_readable_by_others_is_made_private_and_a_foreign_one_refused) {
    file_store_fixture f;
    const stored_tokens record = make_record(1, "restored");
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", record, 0));
    const auto path = record_path(f.records, "acct");
    std::filesystem::permissions(path, std::filesystem::perms(0644));
    auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, record);
    BOOST_TEST(mode_of(path) == 0600u);

    if (::geteuid() != 0) {
        return;  // only root can give a file away
    }
    BOOST_REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);  // nobody
    loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST(loaded.ec == errc::store_failure);
    BOOST_TEST(!loaded.record);
    BOOST_REQUIRE(::chown(path.c_str(), 0, 0) == 0);
    BOOST_TEST(!load(*f.store, f.ioc, "acct").ec);
}

BOOST_AUTO_TEST_CASE(restricted_umask_still_gives_owner_access) {
    const umask_guard strict_umask(0377);
    temp_dir dir;
    const auto records = dir.path() / "parent" / "tokens";
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    BOOST_TEST(!save(*store, ioc, "acct", make_record(1, "x"), 0));
    BOOST_TEST(mode_of(dir.path() / "parent") == 0700u);
    BOOST_TEST(mode_of(records) == 0700u);
    BOOST_TEST(mode_of(record_path(records, "acct")) == 0600u);
}

BOOST_AUTO_TEST_CASE(a_new_store_over_the_directory_sees_the_records) {
    temp_dir dir;
    const auto records = dir.path() / "tokens";
    const stored_tokens record = make_record(7, "restart", 3000);
    {
        boost::asio::io_context ioc;
        auto store = make_file_token_store(ioc.get_executor(), records);
        BOOST_TEST(!save(*store, ioc, "acct", make_record(6, "older"), 0));
        BOOST_TEST(!save(*store, ioc, "acct", record, 6));
    }
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    const auto loaded = load(*store, ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, record);
    BOOST_TEST(save(*store, ioc, "acct", make_record(7, "stale"), 5) == errc::generation_conflict);
}

BOOST_AUTO_TEST_CASE(destroying_the_store_finishes_queued_work) {
    file_store_fixture f;
    int completed = 0;
    for (std::uint64_t g = 1; g <= 5; ++g) {
        f.store->async_save("acct", make_record(g, "queued"), g - 1, [&](error_code ec) {
            BOOST_TEST(!ec);
            ++completed;
        });
    }
    f.store.reset();  // joins the private thread after the five saves
    f.ioc.run();
    BOOST_TEST(completed == 5);
    auto store = make_file_token_store(f.ioc.get_executor(), f.records);
    BOOST_TEST(load(*store, f.ioc, "acct").record.value().generation == 5u);
}

BOOST_AUTO_TEST_CASE(file_names_never_contain_the_account) {
    file_store_fixture f;
    const std::string account = "../\xff\x00/x"s;
    BOOST_TEST(!save(*f.store, f.ioc, account, make_record(1, "x"), 0));
    const auto key = store::account_key(account);
    BOOST_TEST(key.size() == 64u);
    const std::vector<std::string> expected = {store::record_file_name(key), store::lock_file_name(key)};
    BOOST_TEST(list_files(f.records) == expected, boost::test_tools::per_element());
    // Not UTF-8, so kept as hex inside the record.
    BOOST_TEST(read_file(f.records / expected[0]).find(R"("account_hex":"2e2e2fff002f78")") !=
               std::string::npos);
}

BOOST_AUTO_TEST_CASE(saves_leave_no_temporary_files) {
    file_store_fixture f;
    for (std::uint64_t g = 1; g <= 7; ++g) {
        for (const std::string account : {"a", "b", "c"}) {
            BOOST_TEST(!save(*f.store, f.ioc, account, make_record(g, account), g - 1));
        }
    }
    BOOST_TEST(count_temp_files(f.records) == 0u);
    BOOST_TEST(list_files(f.records).size() == 6u);  // three records, three lock files
}

BOOST_AUTO_TEST_CASE(stale_temporary_files_are_removed_unless_their_lock_is_held) {
    temp_dir dir;
    const auto records = dir.path() / "tokens";
    std::filesystem::create_directory(records);
    std::filesystem::permissions(records, std::filesystem::perms::owner_all);
    const auto dead_key = store::account_key("dead writer");
    const auto live_key = store::account_key("live writer");
    write_file(records / (dead_key + ".json.tmp-left1"), "half a rec");
    write_file(records / (dead_key + ".json.tmp-left2"), "another");
    write_file(records / (live_key + ".json.tmp-inflight"), "being written");
    write_file(records / "unrelated.txt", "not ours");
    // A writer in another process holds the lock of "live writer".
    const int lock =
        ::open((records / store::lock_file_name(live_key)).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    BOOST_REQUIRE(lock >= 0);
    BOOST_REQUIRE(::flock(lock, LOCK_EX) == 0);

    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    load(*store, ioc, "anyone");  // queued behind the clean-up
    BOOST_TEST(!std::filesystem::exists(records / (dead_key + ".json.tmp-left1")));
    BOOST_TEST(!std::filesystem::exists(records / (dead_key + ".json.tmp-left2")));
    BOOST_TEST(std::filesystem::exists(records / (live_key + ".json.tmp-inflight")));
    BOOST_TEST(std::filesystem::exists(records / "unrelated.txt"));
    ::close(lock);

    auto next = make_file_token_store(ioc.get_executor(), records);
    load(*next, ioc, "anyone");
    BOOST_TEST(count_temp_files(records) == 0u);
}

BOOST_AUTO_TEST_CASE(group_or_world_writable_directory_is_refused) {
    file_store_fixture f;
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(1, "x"), 0));
    for (const auto perms : {std::filesystem::perms::group_write, std::filesystem::perms::others_write}) {
        std::filesystem::permissions(f.records, std::filesystem::perms::owner_all | perms);
        BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(2, "x"), 1) == errc::store_failure);
        BOOST_TEST(load(*f.store, f.ioc, "acct").ec == errc::store_failure);
    }
    std::filesystem::permissions(f.records, std::filesystem::perms::owner_all);
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().generation == 1u);
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(2, "x"), 1));
}

BOOST_AUTO_TEST_CASE(strings_that_are_not_utf8_are_refused_before_writing) {
    file_store_fixture f;
    stored_tokens bad = make_record(1, "x");
    bad.tokens.refresh_token = secret_string(std::string_view("\xc3("));
    BOOST_TEST(save(*f.store, f.ioc, "acct", bad, 0) == errc::invalid_argument);
    bad = make_record(1, "x");
    bad.tokens.scopes.push_back("\xed\xa0\x80");  // an encoded surrogate
    BOOST_TEST(save(*f.store, f.ioc, "acct", bad, 0) == errc::invalid_argument);
    BOOST_TEST(!load(*f.store, f.ioc, "acct").record);
    BOOST_TEST(!std::filesystem::exists(record_path(f.records, "acct")));
}

BOOST_AUTO_TEST_CASE(times_are_kept_to_the_second_rounding_down) {
    file_store_fixture f;
    stored_tokens record = make_record(1, "x");
    const auto whole = record.tokens.expires_at;
    record.tokens.expires_at += std::chrono::milliseconds(999);
    BOOST_TEST(!save(*f.store, f.ioc, "acct", record, 0));
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().tokens.expires_at.time_since_epoch().count() ==
               whole.time_since_epoch().count());
}

BOOST_AUTO_TEST_CASE(trailing_slash_names_the_same_directory) {
    temp_dir dir;
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), dir.path() / "tokens/");
    BOOST_TEST(!save(*store, ioc, "acct", make_record(1, "x"), 0));
    BOOST_TEST(mode_of(dir.path() / "tokens") == 0700u);
    BOOST_TEST(std::filesystem::exists(record_path(dir.path() / "tokens", "acct")));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace apollo_oauth::store_test
