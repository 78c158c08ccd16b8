// Owner-only files, written the way the file token store writes its records. Public so that a
// program keeping its own small secrets beside the store (the apollo-oauth tool keeps pending
// authorizations there) writes them with the same code, not a copy of it. Blocking POSIX calls:
// run them off the I/O threads.
#pragma once

#include <apollo_oauth/error.hpp>

#include <boost/system/result.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace apollo_oauth {

/// Creates `directory` and its missing parents with mode 0700 (each synced into its parent, so
/// that a power cut cannot take it away with the files synced into it), then checks that it is a
/// directory writable by no one but its owner, and owned by this user or root: whoever can write
/// to it can replace the files in it. Errors: the errno of the failing call (system category), or
/// errc::store_failure when the directory exists but is not private.
error_code make_private_directory(const std::filesystem::path& directory);

/// Replaces the file `name` in the directory open as `directory_fd` with `bytes`, so that a reader
/// sees the old content or the new, never a mix, and a crash leaves one of the two: a temporary
/// file `<name>.tmp-<16 random characters>` is created beside it (O_EXCL, O_NOFOLLOW, O_NOCTTY),
/// set to exactly 0600 with fchmod (the umask does not decide), written, fsync'ed and renamed over
/// `name`, then the directory is fsync'ed so that the rename survives a power cut. A failure
/// removes the temporary file. Errors: the errno of the failing call (system category).
error_code replace_private_file_at(int directory_fd, std::string_view name, std::string_view bytes);

/// The same for a directory given by path. A symbolic link in its place is followed, as the file
/// store follows one; the directory it leads to (or the one named) must pass make_private_directory's
/// checks, or errc::store_failure. `name` itself is never followed: a symbolic link there is
/// replaced, not written through.
error_code replace_private_file(const std::filesystem::path& directory, std::string_view name,
                                std::string_view bytes);

/// Opens the lock file `name` in the directory open as `directory_fd` (AT_FDCWD: `name` is a
/// path), creating it 0600, for flock(2), as the file store opens its own: read-write where it can
/// be (an flock emulated with byte-range locks, as on NFS, needs it), read-only when a strict umask
/// left it 0400; made 0600 when it is this user's (a lock file holds nothing, so one of root's is
/// used as it is); non-blocking, so that a FIFO in its place cannot hang the caller. The
/// descriptor is the caller's to close. Errors: the errno of the failing call (system category),
/// or errc::store_failure when something other than a regular file is in its place.
boost::system::result<int> open_lock_file_at(int directory_fd, const std::string& name);

/// The stem make_file_token_store gives an account's files: the lowercase hex SHA-256 of the
/// account id (ids are arbitrary bytes, so they never appear in a file name). The record is
/// `<stem>.json`; other programs can put their own per-account files beside it under this stem.
std::string file_store_account_stem(std::string_view account);

}  // namespace apollo_oauth
