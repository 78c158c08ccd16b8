#include "emulator/routes.hpp"

#include "emulator/consent_page.hpp"
#include "emulator/crypto.hpp"

#include <boost/algorithm/string/classification.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/algorithm/string/split.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace apollo_oauth::emulator::detail {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr std::size_t min_padded_json = 14;  // {"padding":""}

// application/x-www-form-urlencoded ('+' is a space), for the authorize query and the token body.
// A repeated name makes the whole request unusable (nullopt).
std::optional<fields> parse_form(const boost::urls::params_encoded_view& params) {
    const boost::urls::encoding_opts form_decoding(true);
    fields out;
    for (const auto& param : params) {
        if (param.key.empty() && !param.has_value) {
            continue;  // "a=1&&b=2"
        }
        std::string value = param.has_value ? param.value.decode(form_decoding) : std::string();
        if (!out.emplace(param.key.decode(form_decoding), std::move(value)).second) {
            return std::nullopt;
        }
    }
    return out;
}

// Boost.URL 1.81's parse_query() reads the last value past the end of a view that is not
// NUL-terminated there (as a Beast target is), so a body is parsed as the query of a
// relative reference, whose params are delimited correctly. nullopt for a malformed escape.
std::optional<fields> parse_form_body(std::string_view body) {
    const std::string reference = "?" + std::string(body);
    const auto parsed = boost::urls::parse_relative_ref(reference);
    if (!parsed || parsed->has_fragment()) {
        return std::nullopt;
    }
    return parse_form(parsed->encoded_params());
}

response make_response(http::status status, std::string content_type, std::string body) {
    response res{status, 11};
    res.set(http::field::server, "apollo_oauth-emulator");
    res.set(http::field::content_type, std::move(content_type));
    res.body() = std::move(body);
    return res;
}

response json_response(http::status status, const json::object& body) {
    return make_response(status, "application/json; charset=utf-8", json::serialize(body));
}

response json_error(http::status status, std::string_view error, std::string_view description) {
    return json_response(status, {{"error", error}, {"error_description", description}});
}

response html_page(unsigned status, std::string_view message) {
    const std::string title =
        std::to_string(status) + " " + std::string(http::obsolete_reason(http::int_to_status(status)));
    response res = make_response(http::status::ok, "text/html; charset=utf-8",
                                 "<!DOCTYPE html><html><head><title>" + title + "</title></head><body><h1>" +
                                     title + "</h1><p>" + std::string(message) + "</p></body></html>");
    // By number: a status Beast does not list (520, a CDN's) would be written as 000 by
    // int_to_status, which no client parses.
    res.result(status);
    return res;
}

response method_not_allowed(std::string_view allow) {
    response res = json_error(http::status::method_not_allowed, "invalid_request", "Method not allowed.");
    res.set(http::field::allow, allow);
    return res;
}

response unauthorized(const bearer_outcome& outcome) {
    // RFC 6750 §3: the error travels in WWW-Authenticate; the body repeats it as Doorkeeper does.
    std::string challenge = "Bearer realm=\"Apollo\"";
    json::object body;
    if (!outcome.error.empty()) {
        challenge += ", error=\"" + outcome.error + "\", error_description=\"" + outcome.description + "\"";
        body["error"] = outcome.error;
    }
    body["error_description"] = outcome.description;
    response res = json_response(http::status::unauthorized, body);
    res.set(http::field::www_authenticate, challenge);
    return res;
}

// The authorize redirect of an authorization that was granted carries a code; errors do not.
bool carries_code(std::string_view location) {
    const auto url = boost::urls::parse_uri_reference(location);
    return url && url->params().contains("code");
}

const registered_client& client_of(const fields& query, const oauth_state& state) {
    const auto& clients = state.config().clients;
    const auto& id = query.at("client_id");  // oauth_state::authorize found it
    return *std::find_if(clients.begin(), clients.end(), [&](const auto& c) { return c.client_id == id; });
}

// What the code will grant, as oauth_state::authorize computes it: read_user_profile, then the
// requested scopes (the app's when none), duplicates dropped.
std::vector<std::string> scopes_shown(const fields& query, const registered_client& client) {
    std::vector<std::string> requested;
    if (const auto it = query.find("scope"); it != query.end()) {
        boost::split(
            requested, it->second, [](char c) { return c == ' '; }, boost::token_compress_on);
        std::erase(requested, std::string());
    }
    std::vector<std::string> out{"read_user_profile"};
    for (auto& scope : requested.empty() ? client.scopes : requested) {
        if (std::find(out.begin(), out.end(), scope) == out.end()) {
            out.push_back(std::move(scope));
        }
    }
    return out;
}

// server_config::consent_page: the code is minted but kept back until Approve (consent_page.hpp).
response consent_page(const request& req, const fields& query, std::string approve_location,
                      oauth_state& state, consent_book& consent) {
    const registered_client& client = client_of(query, state);
    std::string browser = cookie_value(req[http::field::cookie], browser_cookie);
    const bool new_browser = browser.empty();
    if (new_browser) {
        browser = random_token();
    }
    const auto state_param = query.find("state");
    pending_consent pending{
        std::move(approve_location),
        access_denied_location(query.at("redirect_uri"),
                               state_param == query.end() ? nullptr : &state_param->second),
        browser};
    const std::string token = consent.open(std::move(pending));
    response res = make_response(http::status::ok, "text/html; charset=utf-8",
                                 consent_page_html({client.name, state.config().consenting_user.email,
                                                    scopes_shown(query, client), token}));
    if (new_browser) {
        res.set(http::field::set_cookie, std::string(browser_cookie) + "=" + browser +
                                             "; Path=/oauth; Secure; HttpOnly; SameSite=Lax");
    }
    res.set(http::field::cache_control, "no-store");
    // No framing (clickjacking a consent button) and nothing loaded from anywhere.
    res.set("Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    res.set("X-Frame-Options", "DENY");
    return res;
}

// POST /oauth/authorize from the consent page's form.
response consent_decision(const request& req, const std::optional<fields>& form, consent_book& consent) {
    const auto value = [&](std::string_view name) -> std::string_view {
        if (!form) {
            return {};
        }
        const auto it = form->find(name);
        return it == form->end() ? std::string_view() : std::string_view(it->second);
    };
    const auto browser = cookie_value(req[http::field::cookie], browser_cookie);
    auto decided = consent.decide(value("authenticity_token"), browser, value("decision"));
    if (const auto* why = std::get_if<consent_refusal>(&decided)) {
        return make_response(http::status::forbidden, "text/html; charset=utf-8", refusal_page_html(*why));
    }
    response res = html_page(302, "Redirecting to the application.");
    res.set(http::field::location, std::get<std::string>(std::move(decided)));
    res.set(http::field::cache_control, "no-store");
    return res;
}

response authorize(const request& req, const boost::urls::url_view& target, oauth_state& state,
                   consent_book& consent) {
    const bool with_page = state.config().consent_page;
    if (with_page && req.method() == http::verb::post) {
        return consent_decision(req, parse_form_body(req.body()), consent);
    }
    if (req.method() != http::verb::get) {
        return method_not_allowed(with_page ? "GET, POST" : "GET");
    }
    const auto query = parse_form(target.encoded_params());
    authorize_outcome outcome = state.authorize(query);
    if (outcome.page_error) {
        return html_page(400, *outcome.page_error);
    }
    if (with_page && carries_code(outcome.location)) {
        return consent_page(req, *query, std::move(outcome.location), state, consent);
    }
    response res = html_page(302, "Redirecting to the application.");
    res.set(http::field::location, outcome.location);
    res.set(http::field::cache_control, "no-store");
    return res;
}

response token(const request& req, const std::optional<fields>& form, oauth_state& state) {
    if (req.method() != http::verb::post) {
        return method_not_allowed("POST");
    }
    const auto content_type = req[http::field::content_type];
    token_outcome outcome =
        boost::algorithm::istarts_with(content_type, "application/x-www-form-urlencoded")
            ? state.token(form)
            : token_outcome{
                  oauth_error{"invalid_request", "The body must be application/x-www-form-urlencoded."}, {}};
    response res;
    if (outcome.error) {
        res = json_error(
            outcome.error->error == "invalid_client" ? http::status::unauthorized : http::status::bad_request,
            outcome.error->error, outcome.error->description);
    } else {
        const issued_tokens& t = outcome.tokens;
        std::string scope;
        for (const auto& s : t.scopes) {
            scope += (scope.empty() ? "" : " ") + s;
        }
        res = json_response(http::status::ok, {{"access_token", t.access_token},
                                               {"token_type", "Bearer"},
                                               {"expires_in", t.expires_in.count()},
                                               {"refresh_token", t.refresh_token},
                                               {"scope", scope},
                                               {"created_at", t.created_at}});
    }
    // RFC 6749 §5.1: token responses are never cached.
    res.set(http::field::cache_control, "no-store");
    res.set(http::field::pragma, "no-cache");
    return res;
}

std::optional<std::string_view> authorization_of(const request& req) {
    if (const auto it = req.find(http::field::authorization); it != req.end()) {
        return std::string_view(it->value());
    }
    return std::nullopt;
}

response profile(const request& req, oauth_state& state) {
    if (req.method() != http::verb::get) {
        return method_not_allowed("GET");
    }
    if (const bearer_outcome auth = state.check_bearer(authorization_of(req)); !auth.valid) {
        return unauthorized(auth);
    }
    const user& u = state.config().consenting_user;
    return json_response(http::status::ok,
                         {{"id", u.id}, {"email", u.email}, {"name", u.name}, {"team_id", u.team_id}});
}

response api(const request& req, std::string_view path, oauth_state& state) {
    if (path != "/v1/tasks/bulk_create") {
        return json_error(http::status::not_found, "not_found", "No such API endpoint.");
    }
    if (req.method() != http::verb::post) {
        return method_not_allowed("POST");
    }
    if (const bearer_outcome auth = state.check_bearer(authorization_of(req)); !auth.valid) {
        return unauthorized(auth);
    }
    // A JSON API reads a body as JSON only when it is labelled so (Rails, which Apollo runs on,
    // leaves any other body's parameters unparsed); the harshest answer to anything else is 415.
    if (!boost::algorithm::istarts_with(req[http::field::content_type], "application/json")) {
        return json_error(http::status::unsupported_media_type, "unsupported_media_type",
                          "The body must be application/json.");
    }
    boost::system::error_code ec;
    const json::value body = json::parse(req.body(), ec);
    if (ec || !body.is_object()) {
        return json_error(http::status::unprocessable_entity, "invalid_request",
                          "The body must be a JSON object.");
    }
    // Apollo creates one task per contact; a "tasks" array is accepted as well.
    std::size_t created = 0;
    for (const char* key : {"tasks", "contact_ids"}) {
        if (const auto* list = body.as_object().if_contains(key); list != nullptr && list->is_array()) {
            created = list->as_array().size();
            break;
        }
    }
    return json_response(http::status::ok, {{"created", created}});
}

response not_json_ok() {
    return make_response(http::status::ok, "application/json", "<html>not json</html>");
}

response oversized(std::size_t size) {
    std::string body;
    if (size >= min_padded_json) {
        body = "{\"padding\":\"" + std::string(size - min_padded_json, 'x') + "\"}";
    } else {
        body = std::string(size, ' ');  // too small for an object: JSON whitespace
    }
    return make_response(http::status::ok, "application/json", std::move(body));
}

response rate_limited(const fault& f) {
    response res = json_response(http::status::too_many_requests,
                                 {{"message", "Rate limit exceeded. Please retry later."}});
    if (f.retry_after) {
        res.set(http::field::retry_after, std::to_string(f.retry_after->count()));
    }
    return res;
}

// A token answer cut off mid-way; its Content-Length matches, so only the JSON is broken.
response truncated_json() {
    return make_response(http::status::ok, "application/json; charset=utf-8",
                         R"({"access_token":"cut-off","token_type":"Bearer","expires_in":25)");
}

// Apollo's fields with the wrong JSON types, as a careless proxy or encoder might send them.
response wrong_types_json() {
    return json_response(http::status::ok, {{"access_token", 12345},
                                            {"token_type", "Bearer"},
                                            {"expires_in", "2592000"},
                                            {"refresh_token", "wrong-types"},
                                            {"scope", "read_user_profile"},
                                            {"created_at", 1700000000}});
}

response oversized_headers(std::size_t size) {
    response res = json_response(http::status::ok, {});
    const std::string padding(1000, 'x');
    for (std::size_t i = 0, sent = 0; sent < size; ++i) {
        const std::string name = "X-Padding-" + std::to_string(i);
        sent += name.size() + padding.size() + 4;  // ": " and CRLF
        res.insert(name, padding);
    }
    return res;
}

// A chunked answer whose framing carries `size` bytes where a parser must hold them whole: an
// extension on the size line of its one chunk, or a trailer field after the last chunk.
response hostile_chunk_framing(fault::kind what, std::size_t size) {
    response res = make_response(http::status::ok, "application/json", {});
    if (what == fault::kind::oversized_chunk_extension) {
        res.body() = "2;x=" + std::string(size, 'e') + "\r\n{}\r\n0\r\n\r\n";
    } else {
        res.body() = "2\r\n{}\r\n0\r\nX-Trailer: " + std::string(size, 't') + "\r\n\r\n";
    }
    return res;
}

response redirect(const fault& f) {
    const unsigned status = f.status / 100 == 3 ? f.status : 307;
    response res = html_page(status, "Moved.");
    res.set(http::field::location, f.location);
    return res;
}

// The faults that stand in for the endpoint's answer (see handle_request): the answer, and how
// the listener delivers it.
std::optional<std::pair<response, reply::action>> replacement_for(const fault& f) {
    using action = reply::action;
    switch (f.what) {
        case fault::kind::http_status: {
            auto res = html_page(f.status, "The emulator was told to fail this request.");
            if (f.retry_after) {
                res.set(http::field::retry_after, std::to_string(f.retry_after->count()));
            }
            // One field per line: a server may send several (RFC 9110 §11.6.1).
            std::vector<std::string> fields;
            boost::algorithm::split(fields, f.www_authenticate, boost::algorithm::is_any_of("\n"));
            for (const auto& field : fields) {
                if (!field.empty()) {
                    res.insert(http::field::www_authenticate, field);
                }
            }
            return {{std::move(res), action::send}};
        }
        case fault::kind::rate_limit:
            return {{rate_limited(f), action::send}};
        case fault::kind::malformed_body:
            return {{not_json_ok(), action::send}};
        case fault::kind::oversized_body:
            return {{oversized(f.size), action::send}};
        case fault::kind::truncated_json:
            return {{truncated_json(), action::send}};
        case fault::kind::wrong_types_json:
            return {{wrong_types_json(), action::send}};
        case fault::kind::oversized_headers:
            return {{oversized_headers(f.size), action::send}};
        case fault::kind::redirect:
            return {{redirect(f), action::send}};
        case fault::kind::endless_chunked:
            return {{make_response(http::status::ok, "application/json", {}), action::endless_chunks}};
        case fault::kind::huge_content_length:
            return {{make_response(http::status::ok, "application/json", {}), action::trickle_body}};
        case fault::kind::oversized_chunk_extension:
        case fault::kind::oversized_trailer:
            return {{hostile_chunk_framing(f.what, f.size), action::framed_chunks}};
        case fault::kind::latency:
        case fault::kind::interim_response:
        case fault::kind::reset:
        case fault::kind::stall_headers:
        case fault::kind::stall_body:
        case fault::kind::stall_mid_header:
        case fault::kind::chunked_body:
        case fault::kind::trailing_response_in_same_record:
        case fault::kind::trailing_response_in_next_record:
        case fault::kind::reset_before_request:
        case fault::kind::wrong_name_certificate:
        case fault::kind::expired_certificate:
        case fault::kind::tls_1_1_only:
            break;
    }
    return std::nullopt;
}

reply::action action_for(fault::kind kind) {
    switch (kind) {
        case fault::kind::reset:
            return reply::action::reset;
        case fault::kind::stall_headers:
            return reply::action::stall_headers;
        case fault::kind::stall_body:
            return reply::action::stall_body;
        case fault::kind::stall_mid_header:
            return reply::action::stall_mid_header;
        case fault::kind::chunked_body:
            return reply::action::small_chunks;
        case fault::kind::trailing_response_in_same_record:
        case fault::kind::trailing_response_in_next_record:
            return reply::action::trailing_response;
        default:
            return reply::action::send;
    }
}

// interim_response's bytes: `count` 1xx status lines with their (few) fields, in one piece.
std::string interim_responses(const fault& f) {
    const unsigned status = f.status / 100 == 1 ? f.status : 103;
    std::string one = "HTTP/1.1 " + std::to_string(status) + " ";
    switch (status) {
        case 100:
            one += "Continue\r\n";
            break;
        case 101:
            one += "Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n";
            break;
        case 103:
            one += "Early Hints\r\nLink: </app.css>; rel=preload; as=style\r\n";
            break;
        default:
            one += "Interim\r\n";
            break;
    }
    one += "\r\n";
    std::string all;
    all.reserve(one.size() * f.interim_count);
    for (std::size_t i = 0; i < f.interim_count; ++i) {
        all += one;
    }
    return all;
}

// The framing the streaming faults promise, set once everything else is in place.
void frame_stream(reply& out) {
    constexpr std::uint64_t eight_gib = 8ULL << 30;
    if (out.what == reply::action::endless_chunks || out.what == reply::action::small_chunks ||
        out.what == reply::action::framed_chunks) {
        out.message.chunked(true);
    } else if (out.what == reply::action::trickle_body) {
        out.message.content_length(eight_gib);
    }
}

// trailing_response_in_same_record: pads `message` (framed already) with a header field so that,
// serialized, it ends on a multiple of 512 bytes: a client reading 512 bytes at a time (Beast's
// first read into an empty buffer) reads it whole and stops exactly there, so what follows in the
// same TLS record stays decrypted and unread in the client's TLS layer.
void pad_to_read_boundary(response& message) {
    constexpr std::size_t boundary = 512;
    const std::string_view name = "X-Padding";
    const std::size_t field_overhead = name.size() + 4;  // ": " and CRLF
    std::ostringstream serialized;
    serialized << message;
    const std::size_t bare = serialized.str().size() + field_overhead;
    const std::size_t padded = (bare + boundary - 1) / boundary * boundary;
    message.set(name, std::string(padded - bare, 'p'));
}

// The unsolicited response that follows the padded one.
std::string smuggled_response() {
    const std::string body = R"({"smuggled":"not your answer"})";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

response bad_request(unsigned status, unsigned version) {
    response res =
        json_error(http::int_to_status(status), "invalid_request", "The request could not be read.");
    res.version(version);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

reply handle_request(const request& req, oauth_state& state, consent_book& consent) {
    reply out;
    const auto target = boost::urls::parse_origin_form(req.target());
    if (!target) {
        out.message = bad_request(400, req.version());
        return out;
    }
    const std::string_view path = target->encoded_path();

    // Count on receipt, before any fault, so that a fault never hides a request.
    route where = route::any;
    std::optional<fields> form;
    if (path == "/oauth/authorize") {
        where = route::authorize;
        state.count_authorize();
    } else if (path == "/api/v1/oauth/token") {
        where = route::token;
        form = parse_form_body(req.body());
        std::optional<std::string_view> grant_type;
        if (form) {
            if (const auto it = form->find("grant_type"); it != form->end()) {
                grant_type = it->second;
            }
        }
        out.in_flight = state.count_token(grant_type);
    } else if (path == "/api/v1/users/api_profile") {
        where = route::profile;
        state.count_profile();
    } else if (path.starts_with("/v1/")) {
        where = route::api;
        state.count_api();
    }

    const std::optional<fault> f = state.take_fault(where);
    if (auto replacement = f ? replacement_for(*f) : std::nullopt) {
        out.message = std::move(replacement->first);
        out.what = replacement->second;
        out.interval = f->delay;
    } else {
        switch (where) {
            case route::authorize:
                out.message = authorize(req, *target, state, consent);
                break;
            case route::token:
                out.message = token(req, form, state);
                break;
            case route::profile:
                out.message = profile(req, state);
                break;
            case route::api:
                out.message = api(req, path, state);
                break;
            case route::any:
                out.message = json_error(http::status::not_found, "not_found", "No route matches this path.");
                break;
        }
        if (f) {
            out.what = action_for(f->what);
            out.delay = f->delay;  // latency's knob; a delay set on a reset or stall is honoured too
            if (f->what == fault::kind::interim_response) {
                out.interim = interim_responses(*f);
                out.reset_after_interim = f->reset_after_interim;
            }
        }
    }
    out.message.version(req.version());
    out.message.keep_alive(req.keep_alive());
    out.message.prepare_payload();
    frame_stream(out);
    if (out.what == reply::action::trailing_response) {
        // A record of its own ends where the answer ends, whatever the client's reads.
        out.trailing_in_own_record = f->what == fault::kind::trailing_response_in_next_record;
        if (!out.trailing_in_own_record) {
            pad_to_read_boundary(out.message);
        }
        out.trailing = smuggled_response();
    }
    return out;
}

}  // namespace apollo_oauth::emulator::detail
