// Owner-only files: the one atomic replacement used by the file store and by the tool.
#include <apollo_oauth/private_files.hpp>

#include "sansio/random.hpp"
#include "store/posix_file.hpp"
#include "store/record_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace apollo_oauth {
namespace {

error_code last_error() {
    return {errno, boost::system::system_category()};
}

// A directory just made: 0700 (chmod, because the umask may have taken owner bits away, even the
// owner's read bit that opening it would need), and its entry made durable in its parent, or a
// power cut could take it away with the records written and synced into it next (their own syncs
// reach no further than it).
error_code finish_new_directory(const std::filesystem::path& path) {
    return ::chmod(path.c_str(), 0700) == 0 && store::sync_into_parent(path) ? error_code{} : last_error();
}

// Parents included: a group-writable parent would let others move the directory away and put
// their own in its place.
error_code make_directories(const std::filesystem::path& path) {
    if (::mkdir(path.c_str(), 0700) == 0) {
        return finish_new_directory(path);
    }
    if (errno == EEXIST) {
        return {};
    }
    if (errno != ENOENT || !path.has_parent_path() || path.parent_path() == path) {
        return last_error();
    }
    if (auto ec = make_directories(path.parent_path())) {
        return ec;
    }
    return make_directories(path);
}

}  // namespace

error_code make_private_directory(const std::filesystem::path& directory) {
    if (auto ec = make_directories(directory)) {
        return ec;
    }
    struct stat st {};
    if (::stat(directory.c_str(), &st) != 0) {  // a symbolic link followed, as the file store does
        return last_error();
    }
    return store::is_private_directory(st) ? error_code{} : make_error_code(errc::store_failure);
}

error_code replace_private_file_at(int directory_fd, std::string_view name, std::string_view bytes) {
    const std::string target(name);
    const std::string temp = target + ".tmp-" + sansio::random_base64url(12);
    store::unique_fd fd(::openat(directory_fd, temp.c_str(),
                                 O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
    if (!fd) {
        return last_error();
    }
    if (::fchmod(fd.get(), 0600) != 0 || !store::write_all(fd.get(), bytes) || ::fsync(fd.get()) != 0 ||
        !fd.close() || ::renameat(directory_fd, temp.c_str(), directory_fd, target.c_str()) != 0) {
        const error_code ec = last_error();
        ::unlinkat(directory_fd, temp.c_str(), 0);
        return ec;
    }
    if (::fsync(directory_fd) != 0) {
        return last_error();
    }
    return {};
}

error_code replace_private_file(const std::filesystem::path& directory, std::string_view name,
                                std::string_view bytes) {
    // A symbolic link to the directory is followed, as the file store and make_private_directory
    // follow one, and the directory it leads to must be private as theirs must: a link was
    // refused here alone, so a token directory on a link worked for the store and not for the
    // tool's pending file. The file itself is never followed (replace_private_file_at).
    const store::unique_fd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        return last_error();
    }
    if (!store::is_private_directory(dir.get())) {
        return make_error_code(errc::store_failure);
    }
    return replace_private_file_at(dir.get(), name, bytes);
}

boost::system::result<int> open_lock_file_at(int directory_fd, const std::string& name) {
    constexpr int flags = O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
    store::unique_fd fd(::openat(directory_fd, name.c_str(), O_RDWR | flags, 0600));
    if (!fd && errno == EACCES) {
        fd = store::unique_fd(::openat(directory_fd, name.c_str(), O_RDONLY | flags, 0600));
    }
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) {
        return last_error();
    }
    if (!S_ISREG(st.st_mode)) {
        return make_error_code(errc::store_failure);
    }
    if ((st.st_mode & 0777) != 0600 && st.st_uid == ::geteuid()) {
        (void)::fchmod(fd.get(), 0600);
    }
    return fd.release();
}

std::string file_store_account_stem(std::string_view account) {
    return store::account_key(account);
}

}  // namespace apollo_oauth
