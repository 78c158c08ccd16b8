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
// opens its own lock file description), but on NFS it is emulated with per-process POSIX locks,
// which never exclude the same process. These mutexes do, striped by account to keep unrelated
// accounts apart.
std::mutex& account_mutex(std::string_view key) {
    static std::array<std::mutex, 64> stripes;
    return stripes[std::hash<std::string_view>{}(key) % stripes.size()];
}

bool is_secure(int dir) {
    struct stat st {};
    if (::fstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return false;
    }
    return (st.st_mode & (S_IWGRP | S_IWOTH)) == 0 && (st.st_uid == ::geteuid() || st.st_uid == 0);
}

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
    if (!is_secure(dir.get())) {
        return failure();
    }
    out = std::move(dir);
    return {};
}

unique_fd open_lock(int dir, std::string_view key) {
    return unique_fd(::openat(dir, lock_file_name(key).c_str(),
                              O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
}

error_code read_record(int dir, std::string_view key, std::string_view account,
                       std::optional<stored_tokens>& out) {
    out.reset();
    unique_fd fd(::openat(dir, record_file_name(key).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
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

error_code record_directory::load(std::string_view account, std::optional<stored_tokens>& out) const {
    out.reset();
    unique_fd dir;
    if (const error_code ec = open_directory(directory_, false, dir)) {
        return ec == boost::system::errc::no_such_file_or_directory ? error_code{} : ec;
    }
    return read_record(dir.get(), account_key(account), account, out);
}

error_code record_directory::save(std::string_view account, const stored_tokens& record,
                                  std::uint64_t expected_generation) const {
    if (record.generation <= expected_generation || !is_encodable(record)) {
        return make_error_code(errc::invalid_argument);
    }
    wiped_string text;
    encode_record(account, record, text);

    unique_fd dir;
    if (open_directory(directory_, true, dir)) {
        return failure();
    }
    const std::string key = account_key(account);
    const std::lock_guard process_lock(account_mutex(key));
    const unique_fd lock = open_lock(dir.get(), key);
    if (!lock || !lock_exclusive(lock.get())) {
        return failure();
    }
    std::optional<stored_tokens> current;
    if (const error_code ec = read_record(dir.get(), key, account, current)) {
        return ec;
    }
    if ((current ? current->generation : 0) != expected_generation) {
        return make_error_code(errc::generation_conflict);
    }
    return replace_record(dir.get(), key, text.value);
}

void record_directory::prepare() const {
    unique_fd dir;
    if (open_directory(directory_, true, dir)) {
        return;
    }
    std::map<std::string, std::vector<std::string>> stale;  // key -> temporary file names
    std::error_code ec;
    for (std::filesystem::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (const auto key = temp_file_key(name)) {
            stale[std::string(*key)].push_back(name);
        }
    }
    for (const auto& [key, names] : stale) {
        const std::lock_guard process_lock(account_mutex(key));
        const unique_fd lock = open_lock(dir.get(), key);
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

}  // namespace apollo_oauth::store
