#include <apollo_oauth/client.hpp>

#include "client_impl.hpp"
#include "http/response_reading.hpp"
#include "http/wipe.hpp"
#include "sansio/encoding.hpp"
#include "sansio/response_classification.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace apollo_oauth {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace std::string_view_literals;

namespace detail {

namespace {

sansio::https_target parse_endpoint(const std::string& url, const char* field) {
    auto target = sansio::parse_https_url(url);
    if (!target) {
        throw boost::system::system_error(target.error(), field);
    }
    return *target;
}

http::origin origin_of(const sansio::https_target& t) {
    return {t.host, t.port};
}

http::request make_request(beast::http::verb method, const sansio::https_target& where, std::string target) {
    http::request req{method, target, 11};
    req.set(beast::http::field::host, where.host_header());
    return req;
}

std::string validated_config_or_throw(const client_config& config) {
    std::string what;
    if (auto ec = validate(config, &what)) {
        throw boost::system::system_error(ec, what);
    }
    return what;
}

const std::string* find_redirect_uri(const client_config& config, const std::string& uri) {
    if (uri.empty()) {
        return &config.redirect_uris.front();
    }
    auto it = std::find(config.redirect_uris.begin(), config.redirect_uris.end(), uri);
    return it == config.redirect_uris.end() ? nullptr : &*it;
}

// Sends `req` to `where` and completes `op` with what `interpret(response, result, diag)` makes
// of the answer. Cancellation of the caller's slot is wired to the exchange before it starts.
template <class Result, class Interpret>
void send_and_complete(client_impl& impl, const sansio::https_target& where, http::request req,
                       http::send_options options, pending_op<Result> op, Interpret interpret) {
    auto prepared = impl.transport().prepare(origin_of(where), std::move(req), options);
    op.connect_cancellation(prepared.canceller());
    std::move(prepared).start(
        [op = std::move(op), interpret = std::move(interpret)](error_code ec, http::response res) mutable {
            diagnostics diag;
            Result result{};
            if (!ec) {
                ec = interpret(res, result, diag);
            }
            http::wipe(res.body());  // token responses carry tokens (an API body was moved out)
            std::move(op).complete(ec, std::move(result), std::move(diag));
        });
}

// Sends a token-endpoint request and parses the answer. Shared by both grants.
void send_token_request(const std::shared_ptr<client_impl>& impl, std::string body,
                        sansio::token_request_context ctx, secret_string kept_refresh_token,
                        pending_op<token_set> op) {
    const auto& where = impl->token_endpoint();
    auto req = make_request(beast::http::verb::post, where, where.target);
    req.set(beast::http::field::content_type, "application/x-www-form-urlencoded");
    req.set(beast::http::field::accept, "application/json");
    req.body() = std::move(body);
    ctx.sent_at = std::chrono::system_clock::now();
    send_and_complete(*impl, where, std::move(req),
                      {.idempotent = false, .body_limit = impl->config().limits.token_body_bytes},
                      std::move(op),
                      [ctx = std::move(ctx), kept = std::move(kept_refresh_token)](
                          const http::response& res, token_set& tokens, diagnostics& diag) mutable {
                          ctx.previous_refresh_token = kept.empty() ? nullptr : &kept;
                          return sansio::classify_token_answer(
                              http::answer_of(res), ctx, std::chrono::system_clock::now(), tokens, diag);
                      });
}

// A request target: origin-form (RFC 9112 §3.2.1), printable ASCII without spaces, so a target
// cannot smuggle a second request line or point the Bearer token at another host.
bool is_valid_api_target(std::string_view target) {
    if (target.empty() || target.front() != '/' || target.starts_with("//")) {
        return false;
    }
    return std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// Headers the library owns, names that are not tokens, values that could split the message.
bool has_unacceptable_header(const api_request& request) {
    return !sansio::is_safe_field_value(request.content_type) ||
           !std::all_of(request.headers.begin(), request.headers.end(), [](const auto& header) {
               return sansio::is_acceptable_extra_header(header.first, header.second);
           });
}

}  // namespace

client_impl::client_impl(asio::any_io_executor ex, client_config config)
    : executor_(std::move(ex)),
      config_((validated_config_or_throw(config), std::move(config))),
      token_(parse_endpoint(config_.endpoints.token_url, "endpoints.token_url")),
      profile_(parse_endpoint(config_.endpoints.profile_url, "endpoints.profile_url")),
      api_(parse_endpoint(config_.endpoints.api_base, "endpoints.api_base")),
      transport_(executor_, config_) {}

asio::any_io_executor client_executor(const std::shared_ptr<client_impl>& impl) noexcept {
    return impl->executor();
}

void exchange_code_erased(const std::shared_ptr<client_impl>& impl, authorization_grant grant,
                          diagnostics* diag, asio::any_io_executor handler_ex, token_handler handler) {
    pending_op<token_set> op{std::move(handler_ex), std::move(handler), diag};
    const auto& config = impl->config();
    const std::string* redirect_uri = find_redirect_uri(config, grant.redirect_uri);
    if (grant.code.empty()) {
        return std::move(op).complete(errc::invalid_argument, {});
    }
    if (!redirect_uri) {
        return std::move(op).complete(errc::redirect_uri_not_registered, {});
    }
    auto body = sansio::exchange_code_body({config.client_id, config.client_secret}, grant.code,
                                           *redirect_uri, grant.code_verifier);
    sansio::token_request_context ctx;
    ctx.requested_scopes = std::move(grant.requested_scopes);
    ctx.assumed_lifetime = config.assumed_lifetime;
    send_token_request(impl, std::move(body), std::move(ctx), secret_string{}, std::move(op));
}

void refresh_erased(const std::shared_ptr<client_impl>& impl, secret_string refresh_token,
                    std::vector<std::string> scopes, diagnostics* diag, asio::any_io_executor handler_ex,
                    token_handler handler) {
    pending_op<token_set> op{std::move(handler_ex), std::move(handler), diag};
    const auto& config = impl->config();
    const bool scopes_ok = std::all_of(scopes.begin(), scopes.end(), sansio::is_valid_scope_token);
    if (refresh_token.empty() || !scopes_ok) {
        return std::move(op).complete(errc::invalid_argument, {});
    }
    // Apollo wants redirect_uri on refresh too; any registered one is accepted, so the first.
    auto body = sansio::refresh_body({config.client_id, config.client_secret}, refresh_token,
                                     config.redirect_uris.front(), scopes);
    sansio::token_request_context ctx;
    ctx.requested_scopes = std::move(scopes);
    ctx.assumed_lifetime = config.assumed_lifetime;
    ctx.minimum_lifetime = config.minimum_lifetime;
    send_token_request(impl, std::move(body), std::move(ctx), std::move(refresh_token), std::move(op));
}

void get_profile_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        diagnostics* diag, asio::any_io_executor handler_ex, profile_handler handler) {
    pending_op<user_profile> op{std::move(handler_ex), std::move(handler), diag};
    secret_string bearer;  // wiped when freed
    if (auto ec = sansio::bearer_field_value(access_token, bearer)) {
        return std::move(op).complete(ec, {});
    }
    const auto& where = impl->profile_endpoint();
    auto req = make_request(beast::http::verb::get, where, where.target);
    req.set(beast::http::field::authorization, bearer.reveal());
    req.set(beast::http::field::accept, "application/json");
    send_and_complete(*impl, where, std::move(req),
                      {.idempotent = true, .body_limit = impl->config().limits.token_body_bytes},
                      std::move(op), [](const http::response& res, user_profile& profile, diagnostics& diag) {
                          return sansio::classify_profile_answer(
                              http::answer_of(res), std::chrono::system_clock::now(), profile, diag);
                      });
}

void api_request_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        api_request request, asio::any_io_executor handler_ex, api_handler handler) {
    pending_op<api_response> op{std::move(handler_ex), std::move(handler), nullptr};
    secret_string bearer;  // wiped when freed
    if (sansio::bearer_field_value(access_token, bearer) || !is_valid_api_target(request.target) ||
        has_unacceptable_header(request)) {
        return std::move(op).complete(errc::invalid_argument, {});
    }
    const auto& base = impl->api_base();
    // api_base is an origin (validated to have an empty path), so the target is the request path.
    auto req = make_request(request.method, base, std::move(request.target));
    for (auto& [name, value] : request.headers) {
        req.insert(name, value);
    }
    req.set(beast::http::field::authorization, bearer.reveal());
    if (!request.body.empty()) {
        req.set(beast::http::field::content_type, request.content_type);
        req.body() = std::move(request.body);
    }
    const auto method = request.method;
    const bool idempotent = method == beast::http::verb::get || method == beast::http::verb::head ||
                            method == beast::http::verb::put || method == beast::http::verb::delete_ ||
                            method == beast::http::verb::options;
    send_and_complete(*impl, base, std::move(req),
                      {.idempotent = idempotent, .body_limit = impl->config().limits.api_body_bytes},
                      std::move(op), [](http::response& res, api_response& out, diagnostics&) {
                          out.status = res.result_int();
                          out.headers.reserve(std::distance(res.begin(), res.end()));
                          for (const auto& field : res) {
                              out.headers.emplace_back(field.name_string(), field.value());
                          }
                          out.body = std::move(res.body());
                          return error_code{};
                      });
}

}  // namespace detail

client::client(executor_type ex, client_config config)
    : impl_(std::make_shared<detail::client_impl>(std::move(ex), std::move(config))) {}
client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

client::executor_type client::get_executor() const noexcept {
    return impl_->executor();
}
const client_config& client::config() const noexcept {
    return impl_->config();
}

}  // namespace apollo_oauth
