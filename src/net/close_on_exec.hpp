// Sockets that a child process does not inherit. Asio 1.81 makes its sockets with a plain
// ::socket() and ::accept() (no SOCK_CLOEXEC), so a host process that forks and execs (a worker
// pool, a subprocess per job) would hand every Apollo connection, Redis connection and listener
// of the library to the child: the connection then outlives the library's close (the peer never
// sees it end, a connection the pool gave up stays open) for as long as the child runs, and a
// listener keeps its port. These open the socket close-on-exec from the start, with no window in
// which a fork on another thread could copy it.
#pragma once

#include <boost/asio/basic_socket.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/system/error_code.hpp>

#include <cerrno>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace apollo_oauth::net {

/// A new descriptor for `protocol`, close-on-exec, or -1 with `ec` set.
template <class Protocol>
int close_on_exec_socket(const Protocol& protocol, boost::system::error_code& ec) noexcept {
    const int fd = ::socket(protocol.family(), protocol.type() | SOCK_CLOEXEC, protocol.protocol());
    if (fd < 0) {
        ec.assign(errno, boost::system::system_category());
    }
    return fd;
}

/// Closes `socket` if open, then opens it for `protocol` close-on-exec (what socket.open() does,
/// and the flag). Call it before each connect: Asio's range async_connect closes and reopens the
/// socket for every address, so it cannot be used with this.
template <class Socket, class Protocol>
void open_close_on_exec(Socket& socket, const Protocol& protocol, boost::system::error_code& ec) {
    boost::system::error_code ignored;
    socket.close(ignored);
    const int fd = close_on_exec_socket(protocol, ec);
    if (fd < 0) {
        return;
    }
    socket.assign(protocol, fd, ec);
    if (ec) {
        ::close(fd);
    }
}

/// For a descriptor made by someone else (an accepted connection: Asio accepts with ::accept):
/// the window between its making and this call stays open to a fork on another thread.
inline void set_close_on_exec(int fd) noexcept {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) {
        ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

}  // namespace apollo_oauth::net
