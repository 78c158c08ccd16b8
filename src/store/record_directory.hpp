// The file store's blocking half: compare-and-set of record files in one directory, with every
// file operation done on the calling thread. The token_store around it moves the calls to a
// private thread.
#pragma once

#include <apollo_oauth/error.hpp>
#include <apollo_oauth/token_store.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

namespace apollo_oauth::store {

/// Thread-safe. The directory is opened again by path for every call, so a directory replaced or
/// moved away is noticed instead of written to. It is refused (errc::store_failure) when it is
/// writable by group or others, or owned by neither this user nor root: whoever can write to it
/// can replace a record, and so choose the tokens this process sends.
class record_directory {
public:
    explicit record_directory(std::filesystem::path directory);

    /// nullopt when there is no record (or no directory). Takes no lock: a record file is only
    /// ever replaced by rename, so a reader sees the old one or the new one.
    error_code load(std::string_view account, std::optional<stored_tokens>& out) const;

    /// Compare-and-set under the account's lock. A corrupt current record refuses the write with
    /// errc::corrupt_record: its generation is unknown, and a person should look at it before it
    /// is replaced. errc::invalid_argument when record.generation is not above
    /// expected_generation (generations only grow) or a string is not valid UTF-8.
    error_code save(std::string_view account, const stored_tokens& record,
                    std::uint64_t expected_generation) const;

    /// Creates the directory (0700) when missing, and removes temporary files that writers which
    /// died mid-save left behind: only those of accounts whose lock is free, so a live writer's
    /// file is never taken from it. Best effort: errors are left for load and save to report.
    void prepare() const;

private:
    std::filesystem::path directory_;
};

}  // namespace apollo_oauth::store
