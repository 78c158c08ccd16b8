// The file store's own promises: modes, restarts, file names, temporary files, refused
// directories, and what it refuses to write.
#include "store/file_token_store.hpp"
#include "store/record_directory.hpp"
#include "store/record_files.hpp"
#include "store_test_support.hpp"

#include <apollo_oauth/token_store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace apollo_oauth::store_test {

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

// Under a umask that takes the owner's bits, every file and directory the store makes is still
// exactly 0600 or 0700: a record or lease file created 0400 could not be opened for writing by the
// next process (not root), which would lock the account out of the store. A lock file found 0400
// (left by an older version under such a umask) is made 0600 too.
BOOST_AUTO_TEST_CASE(restricted_umask_still_gives_owner_access) {
    temp_dir dir;  // before the umask: mkdtemp's 0700 would be 0400
    const umask_guard strict_umask(0377);
    const auto records = dir.path() / "parent" / "tokens";
    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    BOOST_TEST(!save(*store, ioc, "acct", make_record(1, "x"), 0));
    BOOST_TEST(mode_of(dir.path() / "parent") == 0700u);
    BOOST_TEST(mode_of(records) == 0700u);
    BOOST_TEST(mode_of(record_path(records, "acct")) == 0600u);
    const auto lock_file = records / store::lock_file_name(store::account_key("acct"));
    BOOST_TEST(mode_of(lock_file) == 0600u);
    std::filesystem::permissions(lock_file, std::filesystem::perms::owner_read);
    BOOST_TEST(!save(*store, ioc, "acct", make_record(2, "x"), 1));
    BOOST_TEST(mode_of(lock_file) == 0600u);
}

namespace {

/// This process's threads (/proc/self/task has one entry each).
std::size_t thread_count() {
    const std::filesystem::directory_iterator tasks("/proc/self/task");
    return static_cast<std::size_t>(std::distance(begin(tasks), end(tasks)));
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define APOLLO_OAUTH_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(APOLLO_OAUTH_TEST_TSAN)
/// ThreadSanitizer's runtime keeps a background thread of its own (and makes fork safe for it).
constexpr std::size_t runtime_threads = 1;
#else
constexpr std::size_t runtime_threads = 0;
#endif

/// `parent`/tokens, made private (0700) as the store requires.
std::filesystem::path private_records_in(const std::filesystem::path& parent) {
    auto records = parent / "tokens";
    std::filesystem::create_directory(records);
    std::filesystem::permissions(records, std::filesystem::perms::owner_all);
    return records;
}

/// Another process's hold on an account's lock: its own open file description, flock'ed.
class foreign_lock {
public:
    foreign_lock(const std::filesystem::path& records, std::string_view account)
        : foreign_lock(records / store::lock_file_name(store::account_key(account))) {}
    /// Any lock file (the CLI's pending authorization has its own).
    explicit foreign_lock(const std::filesystem::path& lock_file)
        : fd_(::open(lock_file.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600)) {
        BOOST_REQUIRE(fd_ >= 0);
        BOOST_REQUIRE(::flock(fd_, LOCK_EX) == 0);
    }
    ~foreign_lock() { let_go(); }
    foreign_lock(const foreign_lock&) = delete;
    foreign_lock& operator=(const foreign_lock&) = delete;

    void let_go() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_;
};

}  // namespace

namespace {

/// A private records directory holding one file created 0400 (`name`), both given to a user other
/// than root, and a child process that becomes that user: root is never stopped by a mode, so the
/// suite's own user (root here) would hide what such a file does to anyone else.
class read_only_file_of_another_user {
public:
    static constexpr uid_t other_user = 65534;  // nobody: no entry in /etc/passwd is needed to become it

    explicit read_only_file_of_another_user(const std::string& name) {
        std::filesystem::permissions(dir_.path(), std::filesystem::perms::others_exec,
                                     std::filesystem::perm_options::add);  // the child passes through
        records = private_records_in(dir_.path());
        file = records / name;
        const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0400);
        BOOST_REQUIRE(fd >= 0);
        BOOST_REQUIRE(::fchmod(fd, 0400) == 0);
        BOOST_REQUIRE(::close(fd) == 0);
        BOOST_REQUIRE(::chown(records.c_str(), other_user, other_user) == 0);
        BOOST_REQUIRE(::chown(file.c_str(), other_user, other_user) == 0);
    }

    /// Runs `succeeds(records)` in the child, as the other user; false when it did not succeed.
    bool as_other_user(const std::function<bool(const std::filesystem::path&)>& succeeds) const {
        // The child allocates after fork(), safe only while this process has no other thread.
        BOOST_REQUIRE(thread_count() == 1 + runtime_threads);
        const pid_t child = ::fork();
        BOOST_REQUIRE(child >= 0);
        if (child == 0) {  // no Boost.Test here: the exit status is the verdict
            if (::setgroups(0, nullptr) != 0 || ::setgid(other_user) != 0 || ::setuid(other_user) != 0) {
                ::_exit(2);
            }
            if (::access(records.c_str(), R_OK | W_OK | X_OK) != 0) {
                ::_exit(3);
            }
            ::_exit(succeeds(records) ? 0 : 1);
        }
        int status = 0;
        BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
        BOOST_TEST(WIFEXITED(status));
        // 1: it did not succeed; 2: could not become the other user; 3: that user cannot reach
        // the directory (a TMPDIR whose parents only root may pass through).
        BOOST_TEST(WEXITSTATUS(status) == 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

    std::filesystem::path records;
    std::filesystem::path file;

private:
    temp_dir dir_;
};

}  // namespace

// The same for a user other than root, which the 0400 lock file stops from opening it read-write
// (root is never stopped): it is opened read-only (flock needs no more) and made 0600.
BOOST_AUTO_TEST_CASE(a_read_only_lock_file_is_opened_read_only_by_its_non_root_owner,
                     *boost::unit_test::precondition([](auto) { return ::geteuid() == 0; })) {
    const read_only_file_of_another_user f(store::lock_file_name(store::account_key("acct")));
    f.as_other_user([](const std::filesystem::path& records) {
        const store::record_directory directory(records);
        return !directory.save("acct", make_record(1, "x"), 0);
    });
    BOOST_TEST(mode_of(f.file) == 0600u);
    BOOST_TEST(std::filesystem::exists(record_path(f.records, "acct")));
}

// A lease file its owner may not write (0400: a process killed between creating it under umask
// 0377 and making it 0600, a `chmod 400 *`, a backup restored) refused every acquire of the account
// for good, so that it was never refreshed again. It is made 0600 and the lease granted.
BOOST_AUTO_TEST_CASE(a_read_only_lease_file_is_made_writable_again_by_its_non_root_owner,
                     *boost::unit_test::precondition([](auto) { return ::geteuid() == 0; })) {
    const read_only_file_of_another_user f(store::account_key("acct") + ".lease");
    f.as_other_user([](const std::filesystem::path& records) {
        store::record_directory directory(records);
        lease_outcome out;
        return !directory.acquire("acct", "holder", 0, std::chrono::seconds(30), out) &&
               out.what == lease_outcome::kind::granted;
    });
    BOOST_TEST(mode_of(f.file) == 0600u);
}

namespace {

/// A file store that gives up on a kept account lock `lock_bound` after a call, over a directory
/// whose account "acct" has generation 1 and whose lock another holder keeps.
struct store_with_a_kept_lock : file_store_fixture {
    explicit store_with_a_kept_lock(std::chrono::milliseconds lock_bound) {
        store = store::make_file_token_store(ioc.get_executor(), records, lock_bound);
        BOOST_REQUIRE(!save(*store, ioc, "acct", make_record(1, "first"), 0));
        held.emplace(records, "acct");
    }
    std::optional<foreign_lock> held;  ///< taken once the directory exists
};

/// The store's blocking half over a fresh directory whose account "acct" has generation 1.
struct directory_with_a_record {
    directory_with_a_record() { BOOST_REQUIRE(!directory.save("acct", make_record(1, "first"), 0)); }
    temp_dir dir;
    std::filesystem::path records = dir.path() / "tokens";
    store::record_directory directory{records};
};

lease_outcome::kind acquire(store::record_directory& d, const std::string& holder, lease_outcome& out) {
    BOOST_REQUIRE(!d.acquire("acct", holder, 1, std::chrono::seconds(30), out));
    return out.what;
}

}  // namespace

// A holder that keeps an account's lock (a process stopped under SIGSTOP or a debugger) must not
// stall the calling thread: the call returns lock_busy() at once having changed nothing (the file
// store then tries it again on a timer), and once the holder lets go the next one succeeds.
BOOST_AUTO_TEST_CASE(a_kept_account_lock_makes_a_call_return_busy_at_once_having_changed_nothing,
                     *boost::unit_test::timeout(60)) {  // a call that waited for the lock: a hang
    using namespace std::chrono_literals;
    directory_with_a_record f;
    auto& directory = f.directory;
    const auto& records = f.records;
    lease_outcome out;
    BOOST_REQUIRE((acquire(directory, "holder", out) == lease_outcome::kind::granted));
    BOOST_REQUIRE(!directory.touch("acct", "holder", 1, 30s, true));  // marked sent
    foreign_lock held(records, "acct");

    const auto busy = store::record_directory::lock_busy();
    BOOST_TEST(directory.save("acct", make_record(2, "second"), 1) == busy);
    BOOST_TEST(directory.acquire("acct", "other", 1, 30s, out) == busy);
    BOOST_TEST(directory.touch("acct", "holder", 1, 30s, false) == busy);
    BOOST_TEST(directory.commit("acct", "holder", make_record(2, "second"), 1) == busy);
    BOOST_TEST(directory.mark_reauthorization("acct", 1) == busy);
    // Reads take no lock, and other accounts' locks are their own.
    std::optional<stored_tokens> loaded;
    BOOST_TEST(!directory.load("acct", loaded));
    BOOST_TEST(loaded.value().generation == 1u);
    BOOST_TEST(!directory.save("other", make_record(1, "other"), 0));
    // A release needs no account lock: the lease, marked sent, is given back and cleared, so the
    // next holder is not told to wait for a request that this holder never finished.
    directory.release("acct", "holder");

    held.let_go();
    store::record_directory another(records);  // as another process: its own descriptors
    BOOST_TEST((acquire(another, "next", out) == lease_outcome::kind::granted));
    BOOST_TEST(!out.previous_holder_sent);
    BOOST_TEST(!directory.save("acct", make_record(2, "second"), 1));
    BOOST_TEST(!directory.load("acct", loaded));
    BOOST_TEST(loaded.value().generation == 2u);
}

// The file store waits for a kept account lock on a timer, not on its one thread: while another
// process keeps one account's lock, the other accounts' calls are served at once, the kept
// account's calls wait in the order they were made (a load made after a save sees it), and they
// succeed once the holder lets go. When the store waited on its thread, the save of "other" waited
// behind the kept account's save for the whole bound, and the kept account's save failed.
BOOST_AUTO_TEST_CASE(a_kept_account_lock_holds_up_that_account_alone_in_order) {
    using namespace std::chrono_literals;
    // A bound far longer than the test, which would fail if the kept save gave up before let_go.
    store_with_a_kept_lock f(60s);

    std::optional<error_code> kept_save;
    std::optional<load_result> kept_load;
    f.store->async_save("acct", make_record(2, "second"), 1, [&](error_code ec) { kept_save = ec; });
    f.store->async_load("acct", [&](error_code ec, std::optional<stored_tokens> record) {
        kept_load = load_result{ec, std::move(record)};
    });
    std::optional<error_code> other_save;
    f.store->async_save("other", make_record(1, "other"), 0, [&](error_code ec) { other_save = ec; });
    f.ioc.restart();  // the save above ran it out of work
    while (!other_save) {
        BOOST_REQUIRE(f.ioc.run_one() != 0);  // 0: out of work with a handler never called
    }
    BOOST_TEST(!*other_save);
    BOOST_TEST(!kept_save.has_value());  // still waiting for the lock
    BOOST_TEST(!kept_load.has_value());  // behind the save made before it

    f.held->let_go();
    while (!kept_load) {
        BOOST_REQUIRE(f.ioc.run_one() != 0);
    }
    BOOST_REQUIRE(kept_save.has_value());
    BOOST_TEST(!*kept_save);
    BOOST_TEST(!kept_load->ec);
    BOOST_TEST(kept_load->record.value().generation == 2u);
}

// Past the bound (from when the call was made) the call fails with the store's own error,
// store_failure, which the cache retries, and not with the directory's lock_busy().
BOOST_AUTO_TEST_CASE(a_call_whose_account_lock_stays_kept_fails_with_store_failure_after_the_bound) {
    using namespace std::chrono_literals;
    store_with_a_kept_lock f(200ms);
    const auto started = std::chrono::steady_clock::now();
    BOOST_TEST(save(*f.store, f.ioc, "acct", make_record(2, "second"), 1) == errc::store_failure);
    const auto waited = std::chrono::steady_clock::now() - started;
    BOOST_TEST((waited >= 200ms));
    BOOST_TEST((waited < store::default_lock_bound));  // the bound it was given, not the default
    f.held->let_go();
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().generation == 1u);  // nothing written
    BOOST_TEST(!save(*f.store, f.ioc, "acct", make_record(2, "second"), 1));
}

// A store destroyed while a call waits for a kept lock finishes it first: its handler is told
// store_failure once the bound has passed, never dropped uncalled, and the destructor returns.
BOOST_AUTO_TEST_CASE(destroying_the_store_while_a_call_waits_for_a_lock_answers_it) {
    using namespace std::chrono_literals;
    store_with_a_kept_lock f(200ms);
    std::optional<error_code> waiting;
    f.store->async_mark_reauthorization("acct", 1, [&](error_code ec) { waiting = ec; });
    f.store.reset();  // joins the private thread, which first lets the waiting call fail
    f.ioc.restart();
    f.ioc.run();
    BOOST_REQUIRE(waiting.has_value());
    BOOST_TEST(*waiting == errc::store_failure);
}

// A FIFO in the place of a record or of a lock file (by mistake or malice) is refused at once:
// opening one for reading would wait for a writer, holding up the store's thread for ever.
BOOST_AUTO_TEST_CASE(a_fifo_in_place_of_a_record_or_a_lock_file_is_refused_without_blocking) {
    file_store_fixture f;
    BOOST_REQUIRE(!save(*f.store, f.ioc, "first", make_record(1, "x"), 0));  // the directory exists
    BOOST_REQUIRE(::mkfifo(record_path(f.records, "acct").c_str(), 0600) == 0);
    BOOST_TEST(load(*f.store, f.ioc, "acct").ec == errc::corrupt_record);
    BOOST_REQUIRE(::mkfifo((f.records / store::lock_file_name(store::account_key("locked"))).c_str(), 0600) ==
                  0);
    BOOST_TEST(save(*f.store, f.ioc, "locked", make_record(1, "x"), 0) == errc::store_failure);
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
    const auto records = private_records_in(dir.path());
    const auto dead_key = store::account_key("dead writer");
    const auto live_key = store::account_key("live writer");
    write_file(records / (dead_key + ".json.tmp-left1"), "half a rec");
    write_file(records / (dead_key + ".json.tmp-left2"), "another");
    write_file(records / (live_key + ".json.tmp-inflight"), "being written");
    write_file(records / "unrelated.txt", "not ours");
    // A writer in another process holds the lock of "live writer".
    foreign_lock lock(records, "live writer");

    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    load(*store, ioc, "anyone");  // queued behind the clean-up
    BOOST_TEST(!std::filesystem::exists(records / (dead_key + ".json.tmp-left1")));
    BOOST_TEST(!std::filesystem::exists(records / (dead_key + ".json.tmp-left2")));
    BOOST_TEST(std::filesystem::exists(records / (live_key + ".json.tmp-inflight")));
    BOOST_TEST(std::filesystem::exists(records / "unrelated.txt"));
    lock.let_go();

    auto next = make_file_token_store(ioc.get_executor(), records);
    load(*next, ioc, "anyone");
    BOOST_TEST(count_temp_files(records) == 0u);
}

// The CLI writes its pending authorization (state and PKCE code_verifier) as
// <key>.pending.json.tmp-<rand>, renamed over <key>.pending.json, under <key>.pending.lock: one
// left by a CLI killed mid-write was never removed. Removed as a record's are, unless that lock is
// held (a CLI writing it now); the pending authorization itself stays.
BOOST_AUTO_TEST_CASE(stale_pending_authorization_temporary_files_are_removed_unless_their_lock_is_held) {
    temp_dir dir;
    const auto records = private_records_in(dir.path());
    const auto dead_key = store::account_key("dead cli");
    const auto live_key = store::account_key("live cli");
    write_file(records / (dead_key + ".pending.json.tmp-left1"), "{\"code_verifier\":\"half");
    write_file(records / (dead_key + ".pending.json"), "{}");
    write_file(records / (live_key + ".pending.json.tmp-inflight"), "being written");
    // A CLI in another process holds the pending lock of "live cli", and nobody its record lock.
    foreign_lock lock(records / (live_key + ".pending.lock"));

    boost::asio::io_context ioc;
    auto store = make_file_token_store(ioc.get_executor(), records);
    load(*store, ioc, "anyone");  // queued behind the clean-up
    BOOST_TEST(!std::filesystem::exists(records / (dead_key + ".pending.json.tmp-left1")));
    BOOST_TEST(std::filesystem::exists(records / (dead_key + ".pending.json")));
    BOOST_TEST(std::filesystem::exists(records / (live_key + ".pending.json.tmp-inflight")));
    lock.let_go();

    auto next = make_file_token_store(ioc.get_executor(), records);
    load(*next, ioc, "anyone");
    BOOST_TEST(!std::filesystem::exists(records / (live_key + ".pending.json.tmp-inflight")));
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

// A record the store could write but never read back is refused before anything is written: a text
// over max_record_size (here a 300,000-byte access token of control characters, each escaped as
// \u0001: 1.8 MB; a pair given to async_store, for validate() keeps the token responses' limit
// below what could bring one), or a time no time_point holds. It used to be written and its pair
// served, and then every load, acquire and commit of the account failed with corrupt_record, the
// only live refresh token in a file the library could not read.
BOOST_AUTO_TEST_CASE(a_record_that_could_not_be_read_back_is_refused_before_writing) {
    file_store_fixture f;
    const stored_tokens first = make_record(1, "first");
    BOOST_REQUIRE(!save(*f.store, f.ioc, "acct", first, 0));
    stored_tokens big = make_record(2, "big");
    big.tokens.access_token = secret_string(std::string_view(std::string(300'000, '\x01')));
    BOOST_TEST(save(*f.store, f.ioc, "acct", big, 1) == errc::invalid_argument);
    BOOST_TEST(commit(*f.store, f.ioc, "acct", "holder", big, 1) == errc::invalid_argument);
    stored_tokens timeless = make_record(2, "timeless");
    timeless.tokens.created_at = std::chrono::system_clock::time_point::min();  // floors past the range
    BOOST_TEST(save(*f.store, f.ioc, "acct", timeless, 1) == errc::invalid_argument);
    const auto loaded = load(*f.store, f.ioc, "acct");
    BOOST_TEST(!loaded.ec);
    BOOST_REQUIRE(loaded.record);
    check_same(*loaded.record, first);
    BOOST_TEST(count_temp_files(f.records) == 0u);
    // Within the limit it is written: 150,000 of them are 900 kB.
    big.tokens.access_token = secret_string(std::string_view(std::string(150'000, '\x01')));
    BOOST_TEST(!save(*f.store, f.ioc, "acct", big, 1));
    BOOST_TEST(load(*f.store, f.ioc, "acct").record.value().tokens.access_token.size() == 150'000u);
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
