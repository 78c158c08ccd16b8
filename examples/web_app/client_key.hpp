// Which client a session, or a connection, is counted against.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <string>

namespace web_app {

/// An IPv4 address (also one mapped into IPv6), or an IPv6 /64: one host usually has a whole /64
/// to pick addresses from. Behind a reverse proxy every client has the proxy's address.
std::string client_key(const boost::asio::ip::address& address);

}  // namespace web_app
