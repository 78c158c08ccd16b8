// LD_PRELOAD shim for cli_tests.sh: once the process has renamed a file over a name ending in
// ".json" (the file store's commit of a record), every later read-only open of such a name fails
// with EIO. `refresh` then stores its rotated pair and fails to read it back: a failure at that one
// step, without timing. The file store opens and renames with openat and renameat.
#include <dlfcn.h>
#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>

namespace {

std::atomic<bool> record_renamed{false};

bool names_a_record(const char* path) {
    const std::size_t n = std::strlen(path);
    return n >= 5 && std::strcmp(path + n - 5, ".json") == 0;
}

template <class Function>
Function next_definition(const char* name) {
    return reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
}

int open_unless_failed(const char* name, int dir, const char* path, int flags, va_list arguments) {
    // The mode is there only when the call creates a file.
    const mode_t mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? va_arg(arguments, mode_t) : 0;
    if (record_renamed.load() && (flags & O_ACCMODE) == O_RDONLY && names_a_record(path)) {
        errno = EIO;
        return -1;
    }
    return next_definition<int (*)(int, const char*, int, ...)>(name)(dir, path, flags, mode);
}

}  // namespace

extern "C" int renameat(int old_dir, const char* old_path, int new_dir, const char* new_path) {
    const int rc = next_definition<int (*)(int, const char*, int, const char*)>("renameat")(
        old_dir, old_path, new_dir, new_path);
    if (rc == 0 && names_a_record(new_path)) {
        record_renamed.store(true);
    }
    return rc;
}

extern "C" int openat(int dir, const char* path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    const int fd = open_unless_failed("openat", dir, path, flags, arguments);
    va_end(arguments);
    return fd;
}

extern "C" int openat64(int dir, const char* path, int flags, ...) {
    va_list arguments;
    va_start(arguments, flags);
    const int fd = open_unless_failed("openat64", dir, path, flags, arguments);
    va_end(arguments);
    return fd;
}
