// Record files: atomic replacement, compare-and-set under flock, stale temporary files.
#include "store/record_directory.hpp"

#include <apollo_oauth/private_files.hpp>

#include "store/posix_file.hpp"
#include "store/record_codec.hpp"
#include "store/record_files.hpp"

#include <array>
#include <cerrno>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace apollo_oauth::store {
namespace {

error_code failure() {
    return make_error_code(errc::store_failure);
}

// flock alone would serialise two store objects of one process on a local file system (each
// opens its own lock file description), but where it is emulated with per-process POSIX locks,
// it would never exclude the same process. These mutexes do, striped by account to keep unrelated
// accounts apart. Each is tried once, as the flock is: the file store tries a call again on a timer.
std::mutex& account_mutex(std::string_view key) {
    static std::array<std::mutex, 64> stripes;
    return stripes[std::hash<std::string_view>{}(key) % stripes.size()];
}

// A symbolic link in the directory's place is followed (~/.local/state on another disk is common),
// and the directory it leads to checked (is_private_directory); no file in it is ever opened
// through a link (O_NOFOLLOW on each).
int open_directory_fd(const std::filesystem::path& path) {
    return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

error_code open_directory(const std::filesystem::path& path, bool create, unique_fd& out) {
    unique_fd dir(open_directory_fd(path));
    if (!dir && errno == ENOENT && create && !make_private_directory(path)) {
        dir = unique_fd(open_directory_fd(path));
    }
    if (!dir) {
        return errno == ENOENT ? make_error_code(boost::system::errc::no_such_file_or_directory) : failure();
    }
    if (!is_private_directory(dir.get())) {
        return failure();
    }
    out = std::move(dir);
    return {};
}

// Opened as open_lock_file_at says (private_files.hpp), which the tool's own lock files share.
flocked_fd open_lock_named(int dir, const std::string& name) {
    const auto fd = open_lock_file_at(dir, name);
    return fd ? flocked_fd(unique_fd(*fd)) : flocked_fd();
}

flocked_fd open_lock(int dir, std::string_view key) {
    return open_lock_named(dir, lock_file_name(key));
}

error_code read_record(int dir, std::string_view key, std::string_view account,
                       std::optional<stored_tokens>& out) {
    out.reset();
    // Non-blocking: a FIFO in the record's place would make open wait for a writer.
    unique_fd fd(::openat(dir, record_file_name(key).c_str(),
                          O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!fd) {
        return errno == ENOENT ? error_code{} : failure();
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return failure();
    }
    if (!S_ISREG(st.st_mode)) {
        return make_error_code(errc::corrupt_record);
    }
    // The store writes 0600, but a record restored by hand (cp under umask 022) may be readable by
    // every local user until its next rotation: made private before its tokens are read. A file
    // of another user's (but root's) is not ours to trust, as for the directory (is_private_directory).
    if (st.st_uid != ::geteuid() && st.st_uid != 0) {
        return failure();
    }
    if ((st.st_mode & 077) != 0 && ::fchmod(fd.get(), 0600) != 0) {
        return failure();
    }
    wiped_string text;
    switch (read_all(fd.get(), max_record_size, text)) {
        case read_status::ok:
            break;
        case read_status::too_large:
            return make_error_code(errc::corrupt_record);
        case read_status::failed:
            return failure();
    }
    stored_tokens record;
    if (const error_code ec = decode_record(text.value, account, record)) {
        return ec;
    }
    out = std::move(record);
    return {};
}

// A crash at any point leaves the old record or the new one, plus at worst a temporary file for
// prepare() to remove.
error_code replace_record(int dir, std::string_view key, std::string_view text) {
    return replace_private_file_at(dir, record_file_name(key), text) ? failure() : error_code{};
}

}  // namespace

record_directory::record_directory(std::filesystem::path directory) : directory_(std::move(directory)) {
    // "a/b/" names the directory "a/b": without this, its parent would be created as "a/b".
    if (!directory_.has_filename() && directory_.has_parent_path()) {
        directory_ = directory_.parent_path();
    }
}

// A record's own syncs reach no further than its directory: the directory's entry in its parent is
// synced once per object too (make_private_directory syncs what it makes, but another process may
// have made it, or a sync after the mkdir failed and the next call found it there).
error_code record_directory::open_for_records(unique_fd& dir) const {
    if (open_directory(directory_, true, dir)) {
        return failure();
    }
    if (!parent_synced_.load(std::memory_order_acquire)) {
        if (!sync_into_parent(directory_)) {
            return failure();
        }
        parent_synced_.store(true, std::memory_order_release);
    }
    return {};
}

error_code record_directory::load(std::string_view account, std::optional<stored_tokens>& out) const {
    out.reset();
    unique_fd dir;
    if (const error_code ec = open_directory(directory_, false, dir)) {
        return ec == boost::system::errc::no_such_file_or_directory ? error_code{} : ec;
    }
    return read_record(dir.get(), account_key(account), account, out);
}

namespace {

// Compare-and-set with the account's lock held. `idempotent`: a record equal to `record` already
// stored counts as success (a commit retried after an unknown outcome).
error_code save_locked(int dir, const std::string& key, std::string_view account, const stored_tokens& record,
                       std::uint64_t expected_generation, bool idempotent) {
    wiped_string text;
    encode_record(account, record, text);
    // A record past what read_record takes (a text over max_record_size: large tokens, or control
    // characters, six bytes each as \u00XX; a generation past max_generation; a time no time_point
    // holds) was written, and its pair served, and then every later call found it corrupt, the
    // only live refresh token in a file nobody could read. Refused before anything is touched.
    if (!reads_back(text.value, account)) {
        return make_error_code(errc::invalid_argument);
    }
    std::optional<stored_tokens> current;
    if (const error_code ec = read_record(dir, key, account, current)) {
        return ec;
    }
    if ((current ? current->generation : 0) != expected_generation) {
        if (idempotent && current && current->generation == record.generation &&
            current->tokens.refresh_token == record.tokens.refresh_token &&
            current->tokens.access_token == record.tokens.access_token) {
            // The attempt before may have failed after its rename, in the directory's fsync: the
            // record is then in the page cache only, and a power cut would bring back the pair
            // before it, whose refresh token the server has revoked. Durable before it counts.
            return ::fsync(dir) != 0 ? failure() : error_code{};
        }
        return make_error_code(errc::generation_conflict);
    }
    return replace_record(dir, key, text.value);
}

// The account's lock: this process's stripe, then the flock on <key>.lock, each tried once (the
// file store waits for a kept one on a timer, not on its thread). `error` is set when it is not
// held: lock_busy() when someone else keeps it, store_failure when the lock file cannot be opened
// or locked.
struct account_lock {
    account_lock(int dir, const std::string& key) : process(account_mutex(key), std::try_to_lock) {
        if (!process.owns_lock()) {
            error = record_directory::lock_busy();
            return;
        }
        file = open_lock(dir, key);
        if (!file) {
            error = failure();
        } else if (!try_lock_exclusive(file.get())) {
            error = errno == EWOULDBLOCK ? record_directory::lock_busy() : failure();
        }
    }
    std::unique_lock<std::mutex> process;
    flocked_fd file;  // given back explicitly: a child forked during the call must not keep it
    error_code error;
};

}  // namespace

error_code record_directory::lock_busy() noexcept {
    return make_error_code(boost::system::errc::resource_unavailable_try_again);
}

error_code record_directory::save(std::string_view account, const stored_tokens& record,
                                  std::uint64_t expected_generation) const {
    if (refuses_write(record, expected_generation)) {
        return make_error_code(errc::invalid_argument);
    }
    unique_fd dir;
    if (open_for_records(dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (lock.error) {
        return lock.error;
    }
    return save_locked(dir.get(), key, account, record, expected_generation, false);
}

void record_directory::prepare() const {
    unique_fd dir;
    if (open_directory(directory_, true, dir)) {
        return;
    }
    // Lock file name -> the account's key and the temporary files its writer would be writing: a
    // record's (<key>.lock), or the CLI's pending authorization, a PKCE verifier among them
    // (<key>.pending.lock).
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> stale;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (const auto key = temp_file_key(name)) {
            auto& entry = stale[temp_file_lock_name(name)];
            entry.first = std::string(*key);
            entry.second.push_back(name);
        }
    }
    for (const auto& [lock_name, entry] : stale) {
        const auto& [key, names] = entry;
        // Tried, not waited for: in a child forked while another thread was inside a store call,
        // that call's mutex stays locked for good, and a wait here would hang the store's thread.
        const std::unique_lock process_lock(account_mutex(key), std::try_to_lock);
        if (!process_lock.owns_lock()) {
            continue;
        }
        const flocked_fd lock = open_lock_named(dir.get(), lock_name);
        // Whoever holds the lock may be writing one of these right now; the rest are left for the
        // next store to start.
        if (!lock || !try_lock_exclusive(lock.get())) {
            continue;
        }
        for (const auto& name : names) {
            ::unlinkat(dir.get(), name.c_str(), 0);
        }
    }
}

// ---- leases -----------------------------------------------------------------------------------

namespace {

using steady = std::chrono::steady_clock;

// Who last marked a request sent, and for which generation (the Redis store's sent_by / sent_gen).
// It is not the lease's: it passes from each lease to the next one (a holder that took over a
// lapsed lease, one granted a lease given back or left by a dead holder), until a write moves the
// stored generation or the sender itself gives its lease back. Kept only by the lease of its
// holder, it was lost one holder later: the successor of a lease taken over from a silent sender
// was told, but if that successor gave the lease back or died, the next one was not, and sent the
// refresh token the silent sender may have spent.
struct sent_mark {
    std::string by;
    std::uint64_t generation = 0;
};

struct lease_text {
    std::string holder;
    std::uint64_t generation = 0;
    std::int64_t deadline_ns = 0;  // steady_clock (CLOCK_MONOTONIC): one clock for the whole host
    std::optional<sent_mark> sent;
};

std::string lease_file_name(std::string_view key) {
    return std::string(key) + ".lease";
}

// A lease is rewritten in place by one write of one size at offset 0, so that it is never seen,
// nor left by a crash or a failed write, empty: truncating first and then writing lost a holder's
// "sent" mark when the holder was killed between the two, or the write failed (ENOSPC), and its
// successor, not told the refresh token may be spent, sent it again. The text is padded to a
// multiple of this size (one, unless a holder's name is hundreds of bytes long) by a last line
// that ends it: decode_lease reads nothing past it, so that what a longer text left beyond a
// shorter one (a holder killed between the write and the cut) is never read.
constexpr std::size_t lease_block = 512;
constexpr std::string_view lease_pad = "pad=";

// The lease format of before (holder, generation, deadline_ns, phase) is kept as it was, and the
// mark comes in two lines of its own, sent_by and sent_gen (empty and 0: none). A process of the
// previous version, which shares the directory during a rolling upgrade, skips lines it does not
// know, and reads phase=sent as "a request may have been sent with this generation's refresh
// token": it is written whenever a mark for the lease's generation is carried, whoever set it, so
// that such a process is told previous_holder_sent too (it may then wait for a sender that is
// itself, which costs time, never the grant). Such a process carries no mark further: a lease it
// writes says only its own phase, and its release truncates the file, as before. A lease of the
// previous version (no sent_gen line) is read with its phase as the holder's own mark.
std::string encode_lease(const lease_text& l) {
    const bool marked = l.sent && l.sent->generation == l.generation;
    std::string text = "holder=" + l.holder + "\ngeneration=" + std::to_string(l.generation) +
                       "\ndeadline_ns=" + std::to_string(l.deadline_ns) +
                       "\nphase=" + (marked ? "sent" : "acquired") +
                       "\nsent_by=" + (l.sent ? l.sent->by : std::string()) +
                       "\nsent_gen=" + std::to_string(l.sent ? l.sent->generation : 0) + "\n";
    const std::size_t padded =
        (text.size() + lease_pad.size() + 1 + lease_block - 1) / lease_block * lease_block;
    text += lease_pad;
    text.append(padded - text.size() - 1, ' ');
    text += '\n';
    return text;
}

std::optional<lease_text> decode_lease(std::string_view text) {
    lease_text l;
    int fields = 0;
    bool phase_sent = false;
    std::optional<std::string> sent_by;  // set: a lease of this version
    std::uint64_t sent_gen = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view name = line.substr(0, eq);
        if (name == lease_pad.substr(0, lease_pad.size() - 1)) {
            break;  // the end of this text (see lease_block)
        }
        const std::string value(line.substr(eq + 1));
        try {
            if (name == "holder") {
                l.holder = value;
            } else if (name == "generation") {
                l.generation = std::stoull(value);
            } else if (name == "deadline_ns") {
                l.deadline_ns = std::stoll(value);
            } else if (name == "phase") {
                phase_sent = value == "sent";
            } else if (name == "sent_by") {
                sent_by = value;
                continue;
            } else if (name == "sent_gen") {
                sent_gen = std::stoull(value);
                continue;
            } else {
                continue;
            }
        } catch (...) {
            return std::nullopt;
        }
        ++fields;
    }
    if (fields < 4) {
        return std::nullopt;
    }
    if (sent_by) {
        if (!sent_by->empty()) {
            l.sent = sent_mark{std::move(*sent_by), sent_gen};
        }
    } else if (phase_sent) {
        l.sent = sent_mark{l.holder, l.generation};  // the previous version's: the holder's own
    }
    return l;
}

std::optional<lease_text> read_lease(int fd) {
    wiped_string text;
    if (::lseek(fd, 0, SEEK_SET) != 0 || read_all(fd, 4096, text) != read_status::ok) {
        return std::nullopt;
    }
    return decode_lease(text.value);
}

bool write_lease(int fd, const lease_text& l) {
    const std::string text = encode_lease(l);
    ssize_t written = -1;
    do {
        written = ::pwrite(fd, text.data(), text.size(), 0);
    } while (written < 0 && errno == EINTR);
    // Then what an older, longer lease text left past it goes (nothing, as a rule).
    return written == static_cast<ssize_t>(text.size()) &&
           ::ftruncate(fd, static_cast<off_t>(text.size())) == 0;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

std::int64_t deadline_after(std::chrono::milliseconds ttl) {
    return now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
}

// A lease file whose flock is held but whose text cannot be read (empty, torn, or not a lease) is
// being written this instant, as a rule: busy. But the flock may outlive every writer: a process
// that fork()s without exec while it holds a lease gives its child the lease's open file
// description, and the flock with it, for as long as the child lives; what a process of the
// previous version (which empties the file when it gives a lease back), a failed rewrite or a hand
// left in the file is then never rewritten. Counted busy without a bound, that account was never
// refreshed again while the child lived (and the takeover below, by rename, was never reached).
// Such a file counts as run out once it was last written `ttl` ago (the wall clock: mtime is all
// the file says; a step of the clock either way ends it at worst `ttl` after the step).
bool unreadable_lease_ran_out(int fd, std::chrono::milliseconds ttl) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return false;
    }
    const auto written =
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
    const auto age = std::chrono::system_clock::now().time_since_epoch() - written;
    return age >= ttl || age <= -ttl;
}

bool same_inode(int fd, int dir, const std::string& name) {
    struct stat a {};
    struct stat b {};
    return ::fstat(fd, &a) == 0 && ::fstatat(dir, name.c_str(), &b, AT_SYMLINK_NOFOLLOW) == 0 &&
           a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

unique_fd open_lease(int dir, const std::string& name, int extra) {
    return unique_fd(::openat(dir, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | extra, 0600));
}

// The lease file, created when missing. One of this user's that it may not write (0400: a process
// killed between creating it under umask 0377 and the fchmod after its grant, a `chmod 400 *`, a
// backup restored) refused every acquire of the account for good: it is made 0600 again, as
// open_lock_file_at does for a lock file, through a read-only descriptor (fchmod on the file
// itself, never a name a symbolic link could redirect), then opened again. Another user's stays
// refused.
unique_fd open_or_repair_lease(int dir, const std::string& name) {
    unique_fd fd = open_lease(dir, name, O_CREAT);
    if (fd || errno != EACCES) {
        return fd;
    }
    const unique_fd readable(
        ::openat(dir, name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    struct stat st {};
    if (!readable || ::fstat(readable.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
        ::fchmod(readable.get(), 0600) != 0) {
        return unique_fd();
    }
    return open_lease(dir, name, 0);
}

}  // namespace

bool record_directory::holds(int dir, const std::string& key, const std::string& holder) const {
    const auto it = held_.find(key);
    if (it == held_.end() || it->second.holder != holder ||
        !same_inode(it->second.fd.get(), dir, lease_file_name(key))) {
        return false;
    }
    const auto l = read_lease(it->second.fd.get());
    return l && l->holder == holder && now_ns() < l->deadline_ns;
}

void record_directory::drop(int dir, const std::string& key, bool end_lease) {
    const auto it = held_.find(key);
    if (it == held_.end()) {
        return;
    }
    // A commit leaves a lease that has run out, on the generation it moved past (so it carries no
    // mark on: carried_mark drops one of an older generation), rather than an empty file: the
    // flock may outlive this descriptor (a child forked without exec while the lease was held
    // keeps it for as long as it lives), and then the next holder must read a lease that has run
    // out and take it over by rename, as any lapsed one. Emptied only when that write fails: the
    // generation moved, so no mark is left to keep, and an empty file says none (carried_mark).
    if (end_lease && same_inode(it->second.fd.get(), dir, lease_file_name(key))) {
        const lease_text ended{it->second.holder, it->second.generation, 0, std::nullopt};
        if (!write_lease(it->second.fd.get(), ended)) {
            (void)::ftruncate(it->second.fd.get(), 0);
        }
    }
    held_.erase(it);  // gives the flock back (flocked_fd), even if a forked child shares it
}

namespace {

// The sender a lease read unreadable is marked with: not a holder's label (a cache's has its own
// unique part appended), so every holder after it is told of the mark until a commit.
constexpr std::string_view unknown_sender = "(unreadable lease)";

// Whether the lease file `fd` holds anything (a lease or not). Empty, it holds no lease yet: made
// by an acquire and never written, or ended by a release that leaves no mark (as the previous
// version's release always did). Not empty and no lease, it was written: a write torn by ENOSPC
// or EIO, or a failed rewrite cut short on purpose (release).
bool holds_something(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) != 0 || st.st_size > 0;
}

// The mark a lease granted or renewed now carries from `previous`, the lease read from `fd` (the
// lease before it, of this holder or another, live, lapsed, given back or left by a dead holder):
// the one for the stored generation. A mark for an older one is dropped: a write has moved the
// generation since, and the refresh token it was about is no longer the one to send. A file that
// holds something but no lease says nothing of whether its holder marked a request sent, so it is
// taken for one that did: a false mark costs the next holder a wait for a commit (backoff_max); a
// lost one, a refresh token that may be spent sent again, which makes the server revoke the grant.
// (Read as "no mark", a silent sender's mark was lost when the successor it was carried to failed
// to rewrite the lease as it gave it back.)
std::optional<sent_mark> carried_mark(int fd, const std::optional<lease_text>& previous,
                                      std::uint64_t stored) {
    if (!previous) {
        return holds_something(fd) ? std::optional<sent_mark>(sent_mark{std::string(unknown_sender), stored})
                                   : std::nullopt;
    }
    if (previous->sent && previous->sent->generation == stored) {
        return previous->sent;
    }
    return std::nullopt;
}

}  // namespace

error_code record_directory::acquire(std::string_view account, const std::string& holder,
                                     std::uint64_t known_generation, std::chrono::milliseconds ttl,
                                     lease_outcome& out) {
    out = {};
    unique_fd dir;
    if (open_directory(directory_, true, dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (lock.error) {
        return lock.error;
    }
    const std::lock_guard held_lock(held_mutex_);
    std::optional<stored_tokens> record;
    if (const error_code ec = read_record(dir.get(), key, account, record)) {
        return ec;
    }
    const std::uint64_t stored = record ? record->generation : 0;
    if (record && stored > known_generation) {
        out.what = lease_outcome::kind::newer;
        out.record = std::move(record);
        return {};
    }
    if (record && stored == known_generation && record->state == record_state::reauthorization_required) {
        out.what = lease_outcome::kind::reauthorization_required;
        out.record = std::move(record);
        return {};
    }
    const std::string name = lease_file_name(key);
    lease_text mine{holder, stored, deadline_after(ttl), std::nullopt};
    out.what = lease_outcome::kind::granted;
    out.record = std::move(record);
    // Granted: the mark of the lease before goes on in this one. Its holder is told of it unless it
    // set the mark itself (a holder asking again while it holds the lease, or once more after its
    // own lapsed, knows what it sent), as in the Redis store.
    const auto grant = [&](int previous_fd, const std::optional<lease_text>& previous) {
        mine.sent = carried_mark(previous_fd, previous, stored);
        out.previous_holder_sent = mine.sent && mine.sent->by != holder;
    };

    if (const auto it = held_.find(key); it != held_.end()) {
        // This object holds it: for the same holder, renew; for another, it is a holder like any.
        const auto l = read_lease(it->second.fd.get());
        const bool ours = same_inode(it->second.fd.get(), dir.get(), name);
        if (ours && it->second.holder == holder) {
            // Renewed on the generation stored now: it moved when a write naming no holder (a
            // write-back) landed since, and touch() checks the lease's generation. A request
            // marked sent for that generation stays marked: whoever follows must be told.
            grant(it->second.fd.get(), l);
            if (!write_lease(it->second.fd.get(), mine)) {
                return failure();
            }
            it->second.generation = stored;
            return {};
        }
        // A lease on an older generation is spent (its mark_sent and renew fail): not busy.
        if (ours && l && now_ns() < l->deadline_ns && l->generation == stored) {
            out.what = lease_outcome::kind::busy;
            out.record.reset();
            out.time_left = std::chrono::ceil<std::chrono::milliseconds>(
                std::chrono::nanoseconds(l->deadline_ns - now_ns()));
            return {};
        }
        held_.erase(it);  // its flock goes: the file, if it is still this one, is read below
    }
    flocked_fd fd(open_or_repair_lease(dir.get(), name));
    if (!fd) {
        return failure();
    }
    if (try_lock_exclusive(fd.get())) {
        // Free: never taken, given back, or its holder died (the kernel dropped the flock).
        grant(fd.get(), read_lease(fd.get()));
    } else {
        const auto l = read_lease(fd.get());
        if (l ? now_ns() < l->deadline_ns && l->generation == stored
              : !unreadable_lease_ran_out(fd.get(), ttl)) {
            out.what = lease_outcome::kind::busy;
            out.record.reset();
            out.time_left = l ? std::chrono::ceil<std::chrono::milliseconds>(
                                    std::chrono::nanoseconds(l->deadline_ns - now_ns()))
                              : std::chrono::milliseconds(100);  // being written this instant
            return {};
        }
        // Alive but past its time bound (or a holder's child forked without exec keeps the flock
        // of a lease given back or committed): a new lease file replaces its own.
        grant(fd.get(), l);
        if (!l) {
            // Unreadable, even empty (a previous version's release, or a rewrite that failed, while
            // a forked child keeps the flock): taken for a mark, as carried_mark takes a file that
            // holds something. The new holder waits for a commit rather than send at once.
            mine.sent = sent_mark{std::string(unknown_sender), stored};
            out.previous_holder_sent = true;
        }
        const std::string fresh = name + ".new";
        ::unlinkat(dir.get(), fresh.c_str(), 0);
        fd = flocked_fd(open_lease(dir.get(), fresh, O_CREAT | O_EXCL));
        if (!fd || ::fchmod(fd.get(), 0600) != 0 || !try_lock_exclusive(fd.get()) ||
            !write_lease(fd.get(), mine) ||
            ::renameat(dir.get(), fresh.c_str(), dir.get(), name.c_str()) != 0) {
            return failure();
        }
        held_[key] = held_lease{std::move(fd), holder, stored};
        return {};
    }
    if (::fchmod(fd.get(), 0600) != 0 || !write_lease(fd.get(), mine)) {
        return failure();
    }
    held_[key] = held_lease{std::move(fd), holder, stored};
    return {};
}

error_code record_directory::touch(std::string_view account, const std::string& holder,
                                   std::uint64_t generation, std::chrono::milliseconds ttl, bool sent) {
    unique_fd dir;
    if (open_directory(directory_, true, dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (lock.error) {
        return lock.error;
    }
    const std::lock_guard held_lock(held_mutex_);
    if (!holds(dir.get(), key, holder) || held_.at(key).generation != generation) {
        return make_error_code(errc::lease_lost);
    }
    // The stored generation too, as the Redis store: a write naming no holder (a write-back, a
    // new authorization) may have moved it past the lease's, whose refresh token is then no
    // longer the stored one.
    std::optional<stored_tokens> current;
    if (const error_code ec = read_record(dir.get(), key, account, current)) {
        return ec;
    }
    if ((current ? current->generation : 0) != generation) {
        return make_error_code(errc::lease_lost);
    }
    auto& h = held_.at(key);
    const auto l = read_lease(h.fd.get());
    lease_text renewed{holder, generation, deadline_after(ttl), carried_mark(h.fd.get(), l, generation)};
    if (sent) {
        renewed.sent = sent_mark{holder, generation};
    }
    return write_lease(h.fd.get(), renewed) ? error_code{} : failure();
}

error_code record_directory::commit(std::string_view account, const std::string& holder,
                                    const stored_tokens& record, std::uint64_t expected_generation) {
    if (refuses_write(record, expected_generation)) {
        return make_error_code(errc::invalid_argument);
    }
    unique_fd dir;
    if (open_for_records(dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (lock.error) {
        return lock.error;
    }
    const std::lock_guard held_lock(held_mutex_);
    const error_code ec = save_locked(dir.get(), key, account, record, expected_generation, true);
    if (!ec) {
        if (const auto it = held_.find(key); it != held_.end() && it->second.holder == holder) {
            drop(dir.get(), key, true);
        }
    }
    return ec;
}

error_code record_directory::probe(std::string_view account, std::optional<stored_tokens>& record,
                                   bool& lease_free) {
    record.reset();
    lease_free = false;
    unique_fd dir;
    if (const error_code ec = open_directory(directory_, false, dir)) {
        // No directory: nothing stored and no lease (an acquire makes both).
        lease_free = ec == boost::system::errc::no_such_file_or_directory;
        return lease_free ? error_code{} : ec;
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (const error_code ec = read_record(dir.get(), key, account, record)) {
        return ec;
    }
    if (lock.error) {
        return {};  // someone is at the account's lease or record: asked again at the next poll
    }
    const std::lock_guard held_lock(held_mutex_);
    if (held_.contains(key)) {
        return {};
    }
    const flocked_fd fd(unique_fd(::openat(dir.get(), lease_file_name(key).c_str(),
                                           O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)));
    if (!fd) {
        lease_free = errno == ENOENT;
        return {};
    }
    // Taken for this instant, under the account's lock, so no acquire can find it taken: closing
    // the descriptor gives it back.
    if (try_lock_exclusive(fd.get())) {
        lease_free = true;
        return {};
    }
    const std::uint64_t stored = record ? record->generation : 0;
    const auto l = read_lease(fd.get());
    lease_free = l && (now_ns() >= l->deadline_ns || l->generation != stored);
    return {};
}

void record_directory::release(std::string_view account, const std::string& holder) {
    // Without the account's lock, which another process may keep for long; dropped even when the
    // directory cannot be opened: closing the descriptor frees the flock. The lease file stays as
    // it is, and with it the mark it carries: whoever is granted the lease next must still be told
    // of a silent sender before this holder (truncated here, that mark was lost one holder after
    // the sender, and the next holder sent the refresh token it may have spent). Unless the mark
    // is this holder's own: a holder gives its lease back only with no rotated pair left to commit,
    // so nobody is left to wait for (the Redis store's rule), and a mark kept would hold the next
    // holder for backoff_max. Then it goes. Either way the lease is rewritten past its deadline, in
    // place: the flock may outlive this descriptor (a child forked without exec while the lease
    // was held shares it for as long as it lives), and the next holder must then find a lease that
    // has run out, and take it over by rename, rather than one live for the rest of its ttl. The
    // flock is still this object's, so another process's lease operation reading it meanwhile
    // finds it held, and reads the lease before or after (busy, or lapsed and taken over), or a
    // torn text whose only mark is the one going (or none: busy for a moment). Should the rewrite
    // fail, the file is cut short, for the same reason (an unreadable lease whose flock is held
    // runs out lease_ttl after it was written): to nothing when no mark stays, and to its first
    // byte when another holder's does. That byte is no lease, and not empty, so the next holder
    // takes it for a mark of an unknown sender (carried_mark) and waits for a commit: emptied, it
    // was told of no mark and sent at once the refresh token the silent sender may have spent.
    // Shrinking needs no free block: it works where the write failed for want of space.
    unique_fd dir;
    const bool opened = !open_directory(directory_, false, dir);
    const std::string key = account_key(account);
    const std::lock_guard held_lock(held_mutex_);
    const auto it = held_.find(key);
    if (it == held_.end() || it->second.holder != holder) {
        return;
    }
    const int fd = it->second.fd.get();
    if (opened && same_inode(fd, dir.get(), lease_file_name(key))) {
        if (auto l = read_lease(fd)) {
            if (l->sent && l->sent->by == holder) {
                l->sent.reset();
            }
            l->deadline_ns = 0;
            if (!write_lease(fd, *l)) {
                (void)::ftruncate(fd, l->sent ? 1 : 0);
            }
        }
    }
    drop(dir.get(), key, false);
}

error_code record_directory::mark_reauthorization(std::string_view account, std::uint64_t generation) {
    unique_fd dir;
    if (open_for_records(dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const account_lock lock(dir.get(), key);
    if (lock.error) {
        return lock.error;
    }
    std::optional<stored_tokens> record;
    if (const error_code ec = read_record(dir.get(), key, account, record)) {
        return ec;
    }
    if (!record) {
        return make_error_code(errc::unknown_account);
    }
    if (record->generation != generation) {
        return make_error_code(errc::generation_conflict);
    }
    record->state = record_state::reauthorization_required;
    wiped_string text;
    encode_record(account, *record, text);
    return replace_record(dir.get(), key, text.value);
}

}  // namespace apollo_oauth::store
