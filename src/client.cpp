#include <apollo_oauth/client.hpp>

#include "client_impl.hpp"
#include "http/response_reading.hpp"
#include "http/wipe.hpp"
#include "sansio/encoding.hpp"
#include "sansio/response_classification.hpp"
#include "sansio/token_protocol.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
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

// Host and the rest of the framing are set by the transport (http::prepare_request).
http::request make_request(beast::http::verb method, std::string target) {
    return http::request{method, target, 11};
}

client_config validated_or_throw(client_config config) {
    diagnostics diag;
    if (auto ec = validate(config, diag)) {
        throw boost::system::system_error(ec, diag.error + ": " + diag.error_description);
    }
    return config;
}

const std::string* find_redirect_uri(const client_config& config, const std::string& uri) {
    if (uri.empty()) {
        return &config.redirect_uris.front();
    }
    auto it = std::find(config.redirect_uris.begin(), config.redirect_uris.end(), uri);
    return it == config.redirect_uris.end() ? nullptr : &*it;
}

// One client operation as a composed operation: a request to an endpoint, and what
// `interpret(response, result, diag)` makes of the answer. The exchange posts its completion to
// the handler's executor, where this op finishes. An argument error found before sending
// (`refused`) completes through a post too.
//
// Cancellation: the caller's slot goes to the exchange as it is (`cancel_slot_`), not through this
// op's own slot. async_compose clears an op's slot at every step, on the step's thread; a user
// emitting on another thread (the `||` of awaitable operators does, on a multi-threaded
// io_context) would run the exchange's forwarder while that clear destroys it. The exchange's
// forwarder is thread-safe and terminal-only, which is what this op promises.
template <class Result, class Interpret>
class client_op {
public:
    client_op(std::shared_ptr<client_impl> impl, const sansio::https_target* where, http::request req,
              http::send_options options, Interpret interpret, diagnostics* diag, asio::any_io_executor ex,
              asio::cancellation_slot cancel_slot, error_code refused = {})
        : impl_(std::move(impl)),
          where_(where),
          request_(std::move(req)),
          options_(options),
          interpret_(std::move(interpret)),
          diag_(diag),
          ex_(std::move(ex)),
          cancel_slot_(cancel_slot),
          refused_(refused) {}

    template <class Self>
    void operator()(Self& self) {
        if (refused_) {
            auto ex = ex_;  // taken out first: `self` (this op) is moved by the call
            const auto refused = refused_;
            return asio::post(ex, asio::append(std::move(self), refused));
        }
        // Everything the call needs is taken out first: `self` (this op) is moved by the call.
        auto& transport = impl_->transport();
        auto to = origin_of(*where_);
        auto req = std::move(request_);
        const auto options = options_;
        auto ex = ex_;
        transport.send(to, std::move(req), options, cancel_slot_, std::move(ex),
                       http::response_handler(std::move(self)));
    }

    template <class Self>
    void operator()(Self& self, error_code ec, http::response res) {
        diagnostics diag;
        Result result{};
        if (!ec) {
            ec = interpret_(res, result, diag);
        }
        http::wipe(res.body());  // token responses carry tokens (an API body was moved out)
        if (diag_) {
            *diag_ = std::move(diag);
        }
        finish(self, ec, std::move(result));
    }

    template <class Self>
    void operator()(Self& self, error_code refused) {
        finish(self, refused, Result{});
    }

private:
    // The op (this object) outlives the handler's call: async_compose destroys it only when
    // complete() returns. The handler may destroy the client and its io_context as soon as it has
    // the result (a use_future caller wakes on another thread), so the op's share of the client
    // (transport, pools, sockets) and its tracked executor go first: were they released after the
    // call, the transport's sockets would be torn down against a destroyed io_context.
    template <class Self>
    void finish(Self& self, error_code ec, Result result) {
        impl_.reset();
        ex_ = asio::any_io_executor{};
        self.complete(ec, std::move(result));
    }

    std::shared_ptr<client_impl> impl_;  // keeps the transport (and *where_) alive
    const sansio::https_target* where_;
    http::request request_;
    http::send_options options_;
    Interpret interpret_;
    diagnostics* diag_;
    asio::any_io_executor ex_;
    asio::cancellation_slot cancel_slot_;  // the caller's
    error_code refused_;
};

// Starts a client_op. `diag`, when given, is cleared now and written on the handler's executor
// just before the handler runs.
template <class Result, class Interpret, class Handler>
void start_client_op(const std::shared_ptr<client_impl>& impl, const sansio::https_target& where,
                     http::request req, http::send_options options, Interpret interpret, diagnostics* diag,
                     asio::any_io_executor handler_ex, Handler handler, error_code refused = {}) {
    if (diag) {
        diag->clear();
    }
    // The caller's slot is taken out of the handler (see client_op): async_compose gets none.
    const auto cancel_slot = asio::get_associated_cancellation_slot(handler);
    auto bound = asio::bind_cancellation_slot(asio::cancellation_slot{},
                                              asio::bind_executor(handler_ex, std::move(handler)));
    asio::async_compose<decltype(bound), void(error_code, Result)>(
        client_op<Result, Interpret>{impl, &where, std::move(req), options, std::move(interpret), diag,
                                     handler_ex, cancel_slot, refused},
        bound, handler_ex);
}

// An operation refused before anything is sent: the same op, completing with `ec` through a post.
template <class Result, class Handler>
void refuse(const std::shared_ptr<client_impl>& impl, error_code ec, diagnostics* diag,
            asio::any_io_executor handler_ex, Handler handler) {
    const auto no_answer = [](const http::response&, Result&, diagnostics&) { return error_code{}; };
    start_client_op<Result>(impl, impl->api_base(), http::request{}, {}, no_answer, diag,
                            std::move(handler_ex), std::move(handler), ec);
}

// Sends a token-endpoint request and parses the answer. Shared by both grants.
void send_token_request(const std::shared_ptr<client_impl>& impl, std::string body,
                        sansio::token_request_context ctx, secret_string kept_refresh_token,
                        diagnostics* diag, asio::any_io_executor handler_ex, token_handler handler) {
    const auto& where = impl->token_endpoint();
    auto req = make_request(beast::http::verb::post, where.target);
    req.set(beast::http::field::content_type, "application/x-www-form-urlencoded");
    req.set(beast::http::field::accept, "application/json");
    req.body() = std::move(body);
    ctx.sent_at = std::chrono::system_clock::now();
    start_client_op<token_set>(
        impl, where, std::move(req),
        {.idempotent = false, .body_limit = impl->config().limits.token_body_bytes, .secret_body = true},
        [ctx = std::move(ctx), kept = std::move(kept_refresh_token)](
            const http::response& res, token_set& tokens, diagnostics& diag) mutable {
            ctx.previous_refresh_token = kept.empty() ? nullptr : &kept;
            return sansio::classify_token_answer(http::answer_of(res), ctx, std::chrono::system_clock::now(),
                                                 tokens, diag);
        },
        diag, std::move(handler_ex), std::move(handler));
}

// What an API answer says beyond its body, for the caller's diagnostics: every status is a result
// here, so only the status, a 401's Bearer challenge and a Retry-After.
void describe_api_answer(const http::response& res, diagnostics& diag) {
    diag.http_status = res.result_int();
    if (diag.http_status == 401) {
        if (const auto challenge = http::bearer_challenge_field(res)) {
            sansio::parse_www_authenticate(*challenge, diag);
        }
    }
    // Retry-After means "come back later" on 429 and 503 only (on a 3xx it is a redirect delay).
    if (auto it = res.find(beast::http::field::retry_after);
        it != res.end() && (diag.http_status == 429 || diag.http_status == 503)) {
        diag.retry_after = sansio::parse_retry_after(it->value(), std::chrono::system_clock::now());
    }
}

// A request target: origin-form (RFC 9112 §3.2.1), printable ASCII without spaces, so a target
// cannot smuggle a second request line or point the Bearer token at another host.
bool is_valid_api_target(std::string_view target) {
    if (target.empty() || target.front() != '/' || target.starts_with("//")) {
        return false;
    }
    return std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// A method the request line can carry to an origin, with this body: Beast throws on verb::unknown
// (which would escape the handler that sends), CONNECT takes an authority, never an origin-form
// target, and a TRACE request may not have content (RFC 9110 §9.3.8), so Beast's
// prepare_payload() throws on one with a body.
bool is_sendable_api_method(beast::http::verb method, std::string_view body) {
    return method != beast::http::verb::unknown && method != beast::http::verb::connect &&
           !(method == beast::http::verb::trace && !body.empty());
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
      config_(validated_or_throw(std::move(config))),
      token_(parse_endpoint(config_.endpoints.token_url, "endpoints.token_url")),
      profile_(parse_endpoint(config_.endpoints.profile_url, "endpoints.profile_url")),
      api_(parse_endpoint(config_.endpoints.api_base, "endpoints.api_base")),
      transport_(executor_, config_) {}

std::shared_ptr<client_impl> impl_of(const client& c) noexcept {
    return c.impl_;
}

asio::any_io_executor client_executor(const std::shared_ptr<client_impl>& impl) noexcept {
    return impl->executor();
}

void exchange_code_erased(const std::shared_ptr<client_impl>& impl, authorization_grant grant,
                          diagnostics* diag, asio::any_io_executor handler_ex, token_handler handler) {
    const auto& config = impl->config();
    const std::string* redirect_uri = find_redirect_uri(config, grant.redirect_uri);
    if (grant.code.empty()) {
        return refuse<token_set>(impl, errc::invalid_argument, diag, std::move(handler_ex),
                                 std::move(handler));
    }
    if (!redirect_uri) {
        return refuse<token_set>(impl, errc::redirect_uri_not_registered, diag, std::move(handler_ex),
                                 std::move(handler));
    }
    auto body = sansio::exchange_code_body({config.client_id, config.client_secret}, grant.code,
                                           *redirect_uri, grant.code_verifier);
    sansio::token_request_context ctx;
    ctx.requested_scopes = std::move(grant.requested_scopes);
    ctx.assumed_lifetime = config.assumed_lifetime;
    send_token_request(impl, std::move(body), std::move(ctx), secret_string{}, diag, std::move(handler_ex),
                       std::move(handler));
}

void refresh_erased(const std::shared_ptr<client_impl>& impl, secret_string refresh_token,
                    std::vector<std::string> scopes, diagnostics* diag, asio::any_io_executor handler_ex,
                    token_handler handler) {
    const auto& config = impl->config();
    const bool scopes_ok = std::all_of(scopes.begin(), scopes.end(), sansio::is_valid_scope_token);
    if (refresh_token.empty() || !scopes_ok) {
        return refuse<token_set>(impl, errc::invalid_argument, diag, std::move(handler_ex),
                                 std::move(handler));
    }
    // Apollo wants redirect_uri on refresh too; any registered one is accepted, so the first.
    auto body = sansio::refresh_body({config.client_id, config.client_secret}, refresh_token,
                                     config.redirect_uris.front(), scopes);
    sansio::token_request_context ctx;
    ctx.requested_scopes = std::move(scopes);
    ctx.assumed_lifetime = config.assumed_lifetime;
    ctx.minimum_lifetime = config.minimum_lifetime;
    send_token_request(impl, std::move(body), std::move(ctx), std::move(refresh_token), diag,
                       std::move(handler_ex), std::move(handler));
}

void get_profile_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        diagnostics* diag, asio::any_io_executor handler_ex, profile_handler handler) {
    secret_string bearer;  // wiped when freed
    if (auto ec = sansio::bearer_field_value(access_token, bearer)) {
        return refuse<user_profile>(impl, ec, diag, std::move(handler_ex), std::move(handler));
    }
    const auto& where = impl->profile_endpoint();
    auto req = make_request(beast::http::verb::get, where.target);
    req.set(beast::http::field::authorization, bearer.reveal());
    req.set(beast::http::field::accept, "application/json");
    start_client_op<user_profile>(
        impl, where, std::move(req),
        {.idempotent = true, .body_limit = impl->config().limits.token_body_bytes},
        [](const http::response& res, user_profile& profile, diagnostics& diag) {
            return sansio::classify_profile_answer(http::answer_of(res), std::chrono::system_clock::now(),
                                                   profile, diag);
        },
        diag, std::move(handler_ex), std::move(handler));
}

void api_request_erased(const std::shared_ptr<client_impl>& impl, secret_string access_token,
                        api_request request, diagnostics* diag, asio::any_io_executor handler_ex,
                        api_handler handler) {
    secret_string bearer;  // wiped when freed
    if (sansio::bearer_field_value(access_token, bearer) ||
        !is_sendable_api_method(request.method, request.body) || !is_valid_api_target(request.target) ||
        has_unacceptable_header(request)) {
        return refuse<api_response>(impl, errc::invalid_argument, diag, std::move(handler_ex),
                                    std::move(handler));
    }
    const auto& base = impl->api_base();
    // api_base is an origin (validated to have an empty path), so the target is the request path.
    auto req = make_request(request.method, std::move(request.target));
    for (auto& [name, value] : request.headers) {
        req.insert(name, value);
    }
    req.set(beast::http::field::authorization, bearer.reveal());
    if (!request.body.empty()) {
        if (req.find(beast::http::field::content_type) == req.end()) {
            req.set(beast::http::field::content_type, request.content_type);  // the caller's wins
        }
        req.body() = std::move(request.body);
    }
    const auto method = request.method;
    const bool idempotent = method == beast::http::verb::get || method == beast::http::verb::head ||
                            method == beast::http::verb::put || method == beast::http::verb::delete_ ||
                            method == beast::http::verb::options;
    start_client_op<api_response>(
        impl, base, std::move(req),
        {.idempotent = idempotent, .body_limit = impl->config().limits.api_body_bytes},
        [](http::response& res, api_response& out, diagnostics& diag) {
            describe_api_answer(res, diag);
            out.status = res.result_int();
            out.headers.reserve(std::distance(res.begin(), res.end()));
            for (const auto& field : res) {
                out.headers.emplace_back(field.name_string(), field.value());
            }
            out.body = std::move(res.body());
            return error_code{};
        },
        diag, std::move(handler_ex), std::move(handler));
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
