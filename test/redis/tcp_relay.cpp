#include "tcp_relay.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <future>
#include <thread>
#include <vector>

namespace apollo_oauth::redis_test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// One relayed connection: the client's socket and the server's, each read into its own buffer
// and written to the other. Lives while a read or write of it is pending.
struct relayed : std::enable_shared_from_this<relayed> {
    explicit relayed(asio::io_context& io) : client(io), server(io) {}

    tcp::socket client;
    tcp::socket server;
    std::array<char, 16 * 1024> to_server{};
    std::array<char, 16 * 1024> to_client{};
    bool silent = false;

    void start() {
        pump(client, server, to_server);
        pump(server, client, to_client);
    }

    void pump(tcp::socket& from, tcp::socket& to, std::array<char, 16 * 1024>& buffer) {
        from.async_read_some(asio::buffer(buffer),
                             [self = shared_from_this(), &from, &to, &buffer](error_code ec, std::size_t n) {
                                 if (ec) {
                                     return self->close();
                                 }
                                 if (self->silent) {
                                     return self->pump(from, to, buffer);  // dropped
                                 }
                                 asio::async_write(to, asio::buffer(buffer.data(), n),
                                                   [self, &from, &to, &buffer](error_code ec, std::size_t) {
                                                       if (ec) {
                                                           return self->close();
                                                       }
                                                       self->pump(from, to, buffer);
                                                   });
                             });
    }

    void close() {
        if (silent) {
            return;  // a black hole closes nothing
        }
        error_code ignored;
        client.close(ignored);
        server.close(ignored);
    }
};

}  // namespace

struct tcp_relay::impl {
    explicit impl(std::uint16_t target_port) : target(target_port) {}

    asio::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
    std::uint16_t target;
    std::vector<std::weak_ptr<relayed>> relayed_so_far;
    std::thread thread;

    void accept() {
        auto next = std::make_shared<relayed>(io);
        acceptor.async_accept(next->client, [this, next](error_code ec) {
            if (ec) {
                return;  // the relay is being destroyed
            }
            relayed_so_far.push_back(next);
            accept();
            next->server.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), target),
                                       [next](error_code ec) {
                                           if (ec) {
                                               return next->close();
                                           }
                                           next->start();
                                       });
        });
    }

    // Runs `f` on the relay's thread and returns once it has.
    template <class F>
    void on_relay(F f) {
        std::promise<void> done;
        asio::post(io, [&] {
            f();
            done.set_value();
        });
        done.get_future().get();
    }
};

tcp_relay::tcp_relay(std::uint16_t target) : impl_(std::make_shared<impl>(target)) {
    impl_->accept();
    impl_->thread = std::thread([impl = impl_] { impl->io.run(); });
}

tcp_relay::~tcp_relay() {
    impl_->io.stop();
    impl_->thread.join();
}

std::uint16_t tcp_relay::port() const noexcept {
    return impl_->acceptor.local_endpoint().port();
}

void tcp_relay::black_hole() {
    impl_->on_relay([this] {
        for (const auto& weak : impl_->relayed_so_far) {
            if (const auto r = weak.lock()) {
                r->silent = true;
            }
        }
    });
}

void tcp_relay::retarget(std::uint16_t target) {
    impl_->on_relay([this, target] { impl_->target = target; });
}

}  // namespace apollo_oauth::redis_test
