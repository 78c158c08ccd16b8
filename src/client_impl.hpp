// The state behind apollo_oauth::client.
#pragma once

#include <apollo_oauth/client.hpp>

#include "http/transport.hpp"
#include "sansio/url.hpp"

namespace apollo_oauth::detail {

class client_impl {
public:
    client_impl(boost::asio::any_io_executor ex, client_config config);

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const client_config& config() const noexcept { return config_; }
    http::transport& transport() noexcept { return transport_; }

    const sansio::https_target& token_endpoint() const noexcept { return token_; }
    const sansio::https_target& profile_endpoint() const noexcept { return profile_; }
    const sansio::https_target& api_base() const noexcept { return api_; }

private:
    boost::asio::any_io_executor executor_;
    client_config config_;
    sansio::https_target token_;
    sansio::https_target profile_;
    sansio::https_target api_;
    http::transport transport_;
};

}  // namespace apollo_oauth::detail
