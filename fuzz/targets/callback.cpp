// Fuzz target: redirected callback URLs (RFC 6749 §4.1.2) through authorization_flow's
// verification, and the URL checks on the same text. "{state}", "{state2}" and "{state3}" in the
// input are replaced by states the flow really issued, so the fuzzer reaches the code past the state
// lookup. {state3}'s redirect URI has a query of its own, and its authorization is bound to a
// session, in which the callback is verified only when the input starts with "S" (dropped).
#include "fuzz_check.hpp"
#include "sansio/url.hpp"

#include <apollo_oauth/authorization.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace apollo_oauth;

namespace {

void replace_all(std::string& text, std::string_view from, std::string_view to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
}

client_config flow_config() {
    client_config config;
    config.client_id = "fuzz-client";
    config.client_secret = secret_string("fuzz-client-secret-5d2b9e41");
    config.redirect_uris = {"https://app.example.com/oauth/callback", "http://127.0.0.1:8080/cb",
                            "https://app.example.com/oauth/callback?flow=a%20b&&x"};
    config.allow_loopback_http_redirect = true;
    config.use_pkce = true;
    return config;
}

void check_url_parsers(std::string_view url) {
    if (auto target = sansio::parse_https_url(url)) {
        fuzz::check(!target->target.empty() && target->target.front() == '/', "target without a leading '/'");
        fuzz::check(!target->host.empty() && !target->port.empty(), "empty host or port");
        fuzz::check(target->port.find_first_not_of("0123456789") == std::string::npos, "port not decimal");
        // What the transport sends must name the same place again.
        auto again = sansio::parse_https_url("https://" + target->host_header() + target->target);
        fuzz::check(again && again->host == target->host && again->port == target->port &&
                        again->target == target->target,
                    "host_header + target does not parse back to the same place");
    }
    for (bool loopback_http : {false, true}) {
        (void)sansio::check_redirect_uri(url, loopback_http);
    }
    (void)sansio::check_authorize_base(url);
    if (auto params = sansio::parse_callback(url)) {
        fuzz::check(url.starts_with(params->base.substr(0, params->base.find(':'))), "base is not the URL's");
        (void)sansio::same_redirect_location(params->base, url);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input{reinterpret_cast<const char*>(data), size};
    check_url_parsers(input);

    authorization_flow flow{flow_config()};
    auto first = flow.make_authorization_url({.any_browser = true});
    auto second =
        flow.make_authorization_url({.redirect_uri = "http://127.0.0.1:8080/cb", .any_browser = true});
    auto third = flow.make_authorization_url(
        {.redirect_uri = "https://app.example.com/oauth/callback?flow=a%20b&&x", .session = "fuzz-session"});
    fuzz::check(first && second && third, "authorization URLs could not be made");
    const bool in_session = input.starts_with('S');
    std::string url{in_session ? input.substr(1) : input};
    replace_all(url, "{state3}", third->state);
    replace_all(url, "{state2}", second->state);
    replace_all(url, "{state}", first->state);

    const auto params = sansio::parse_callback(url);
    diagnostics diag;
    auto grant =
        in_session ? flow.verify_callback(url, "fuzz-session", &diag) : flow.verify_callback(url, &diag);
    if (params && params->state == third->state && !in_session) {
        fuzz::check(!grant && grant.error() == errc::unknown_state,
                    "a session-bound state answered outside it");
    }
    fuzz::check_diagnostic_sizes(diag);
    if (grant) {
        fuzz::check(params && params->code && !grant->code.empty(), "a grant without a code");
        fuzz::check(grant->code.reveal() == *params->code, "the grant's code is not the callback's");
        fuzz::check(!grant->code_verifier.empty(), "PKCE verifier lost");
        diagnostics replay_diag;
        auto replay = in_session ? flow.verify_callback(url, "fuzz-session", &replay_diag)
                                 : flow.verify_callback(url, &replay_diag);
        fuzz::check(!replay && replay.error() == errc::state_reused, "a state was accepted twice");
    }
    if (params && params->code && fuzz::is_distinctive(*params->code)) {
        const std::string_view code = *params->code;
        const bool echoed = params->error.value_or("").find(code) != std::string::npos ||
                            params->error_description.value_or("").find(code) != std::string::npos ||
                            params->error_uri.value_or("").find(code) != std::string::npos;
        const error_code ec = grant ? error_code{} : grant.error();
        if (!echoed && ec.message().find(code) == std::string::npos) {
            fuzz::check(fuzz::visible_text(ec, diag).find(code) == std::string::npos,
                        "the authorization code shows in an error or diagnostics");
        }
    }
    return 0;
}
