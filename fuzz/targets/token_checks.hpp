// Shared by the token_response and http_response targets: what must hold after the client has
// classified a token endpoint answer, whatever the server sent.
#pragma once

#include "fuzz_check.hpp"
#include "sansio/token_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace apollo_oauth::fuzz {

/// The refresh token the client held before the request: never in the input, so never in output.
inline const secret_string& previous_refresh_token() {
    static const secret_string token{"fuzz-previous-refresh-9f1c2e7a"};
    return token;
}

inline sansio::token_request_context token_context(bool refreshing) {
    sansio::token_request_context ctx;
    ctx.sent_at = std::chrono::system_clock::time_point{std::chrono::seconds{1795824000}};
    ctx.requested_scopes = {"contacts_search", "person_read"};
    ctx.previous_refresh_token = refreshing ? &previous_refresh_token() : nullptr;
    return ctx;
}

namespace detail {

inline void collect_strings(const boost::json::value& v, std::vector<std::string_view>& out) {
    if (const auto* s = v.if_string()) {
        out.emplace_back(s->data(), s->size());
    } else if (const auto* a = v.if_array()) {
        for (const auto& e : *a) {
            collect_strings(e, out);
        }
    } else if (const auto* o = v.if_object()) {
        for (const auto& member : *o) {
            out.emplace_back(member.key());
            collect_strings(member.value(), out);
        }
    }
}

}  // namespace detail

/// Checks a parsed (or refused) token answer of `body`:
/// - the tokens the body carries, and the refresh token held before, never show in what a caller
///   can print: the error message, the diagnostics, the token_set (unless the server itself also
///   put that text somewhere else in the body, e.g. in error_description);
/// - on success the access token is the body's, and the refresh token the body's or the old one;
/// - diagnostics texts are bounded.
inline void check_token_outcome(std::string_view body, error_code ec, const token_set& tokens,
                                const diagnostics& diag) {
    check_diagnostic_sizes(diag);
    std::ostringstream shown;
    shown << visible_text(ec, diag) << ' ' << tokens;
    const std::string visible = shown.str();

    std::vector<std::string_view> secrets;
    if (body.find(previous_refresh_token().reveal()) == std::string_view::npos) {
        secrets.push_back(previous_refresh_token().reveal());
    }
    boost::system::error_code json_ec;
    const boost::json::value jv = boost::json::parse(body, json_ec);
    const boost::json::object* object = json_ec ? nullptr : jv.if_object();
    std::vector<std::string_view> strings;
    if (object) {
        detail::collect_strings(jv, strings);
        // Fixed texts of the output a token could match by chance, and the requested scopes
        // (token_context), which a token set without "scope" prints.
        const std::string vocabulary = ec.message() +
                                       " token_set{token_type=Bearer scopes=[] expires_in= created_at= "
                                       "expires_at= access_token=[redacted] refresh_token=[empty]} "
                                       "http_status= error=access_token error=refresh_token "
                                       "description= uri= retry_after= contacts_search person_read";
        for (const char* field : {"access_token", "refresh_token"}) {
            const auto* v = object->if_contains(field);
            const auto* s = v ? v->if_string() : nullptr;
            // Only token-shaped values: one with separators could match the fixed text around
            // printed fields ("expires_at=0 access_token=[empty] ..."), one of digits a number.
            const std::string_view text = s ? std::string_view(s->data(), s->size()) : std::string_view();
            if (!s || !is_distinctive(text) || vocabulary.find(text) != std::string::npos ||
                text.find_first_of(" \t\r\n=[]{}\"\\") != std::string_view::npos ||
                text.find_first_not_of("0123456789+-.eE") == std::string_view::npos) {
                continue;
            }
            const std::string_view token{s->data(), s->size()};
            std::size_t holders = 0;
            for (auto text : strings) {
                holders += text.find(token) != std::string_view::npos;
            }
            if (holders == 1) {
                secrets.push_back(token);
            }
        }
    }
    for (auto secret : secrets) {
        check(visible.find(secret) == std::string::npos,
              "a token shows in an error, diagnostics or token_set");
    }

    if (!ec) {
        check(object != nullptr, "a token set from a body that is not a JSON object");
        const auto& access = object->at("access_token").as_string();
        check(tokens.access_token.reveal() == std::string_view(access.data(), access.size()),
              "access token differs from the body's");
        check(!tokens.refresh_token.empty() || !object->contains("refresh_token") ||
                  object->at("refresh_token").is_null() || object->at("refresh_token").as_string().empty(),
              "refresh token dropped");
        check(tokens.expires_at >= tokens.created_at || tokens.expires_in >= std::chrono::seconds{0},
              "negative lifetime");
    }
}

}  // namespace apollo_oauth::fuzz
