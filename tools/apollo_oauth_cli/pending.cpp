// Pending authorizations: made, persisted, verified.
#include "pending.hpp"

#include "files.hpp"
#include "sansio/random.hpp"
#include "sansio/token_protocol.hpp"
#include "sansio/url.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>

#include <unistd.h>

namespace apollo_oauth::cli {
namespace {

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string pending_file_name(const std::string& account) {
    return account_file_stem(account) + ".pending.json";
}

boost::system::result<authorization_grant> check_state(const pending_authorization& pending,
                                                       std::string_view state) {
    if (state.empty()) {
        return error_code(errc::missing_state);
    }
    if (!constant_time_equal(state, pending.state)) {
        return error_code(errc::unknown_state);
    }
    if (unix_now() >= pending.expires_at) {
        return error_code(errc::state_expired);
    }
    authorization_grant grant;
    grant.redirect_uri = pending.redirect_uri;
    grant.code_verifier = pending.code_verifier;
    grant.requested_scopes = pending.scopes;
    return grant;
}

}  // namespace

boost::system::result<new_authorization> make_authorization(const client_config& config,
                                                            const std::vector<std::string>& scopes,
                                                            bool pkce) {
    new_authorization out;
    auto& p = out.pending;
    p.state = sansio::make_state();
    p.redirect_uri = config.redirect_uris.front();
    p.scopes = scopes;
    p.expires_at = unix_now() + config.state_lifetime.count();
    std::string challenge;
    if (pkce) {
        p.code_verifier = secret_string(sansio::make_code_verifier());
        challenge = sansio::code_challenge_s256(p.code_verifier.reveal());
    }
    auto url = sansio::build_authorize_url(config.endpoints.authorize_url, config.client_id, p.redirect_uri,
                                           scopes, p.state,
                                           pkce ? std::optional<std::string_view>(challenge) : std::nullopt);
    if (!url) {
        return url.error();
    }
    out.url = std::move(*url);
    return out;
}

void save_pending(const std::filesystem::path& token_dir, const std::string& account,
                  const pending_authorization& pending) {
    boost::json::array scopes;
    for (const auto& s : pending.scopes) {
        scopes.emplace_back(s);
    }
    const boost::json::object record{{"version", 1},
                                     {"state", pending.state},
                                     {"code_verifier", pending.code_verifier.reveal()},
                                     {"redirect_uri", pending.redirect_uri},
                                     {"scopes", std::move(scopes)},
                                     {"expires_at", pending.expires_at}};
    ensure_private_directory(token_dir);
    write_private_file(token_dir, pending_file_name(account), boost::json::serialize(record));
}

std::optional<pending_authorization> load_pending(const std::filesystem::path& token_dir,
                                                  const std::string& account) {
    const auto text = read_small_file(token_dir / pending_file_name(account));
    if (!text) {
        return std::nullopt;
    }
    boost::system::error_code ec;
    const auto value = boost::json::parse(*text, ec);
    const auto* record = value.if_object();
    if (ec || !record) {
        return std::nullopt;
    }
    try {
        pending_authorization p;
        p.state = boost::json::value_to<std::string>(record->at("state"));
        p.code_verifier = secret_string(boost::json::value_to<std::string>(record->at("code_verifier")));
        p.redirect_uri = boost::json::value_to<std::string>(record->at("redirect_uri"));
        p.scopes = boost::json::value_to<std::vector<std::string>>(record->at("scopes"));
        p.expires_at = record->at("expires_at").to_number<std::int64_t>();
        return p;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void remove_pending(const std::filesystem::path& token_dir, const std::string& account) {
    ::unlink((token_dir / pending_file_name(account)).c_str());
}

boost::system::result<authorization_grant> verify_redirect(const pending_authorization& pending,
                                                           std::string_view redirected_url,
                                                           diagnostics& diag) {
    diag.clear();
    // Boost.URL misreads views that are not NUL-terminated: parse a std::string.
    const std::string url(redirected_url);
    auto params = sansio::parse_callback(url);
    if (!params) {
        return params.error();
    }
    auto grant = check_state(pending, params->state.value_or(""));
    if (!grant) {
        return grant;
    }
    if (!sansio::same_redirect_location(params->base, pending.redirect_uri)) {
        return error_code(errc::redirect_uri_not_registered);
    }
    if (params->error) {
        diag.error = sansio::diagnostic_text(*params->error);
        diag.error_description = sansio::diagnostic_text(params->error_description.value_or(""));
        diag.error_uri = sansio::diagnostic_text(params->error_uri.value_or(""));
        return error_code(errc_from_oauth_error(*params->error));
    }
    if (!params->code || params->code->empty()) {
        return error_code(errc::missing_code);
    }
    grant->code = secret_string(std::move(*params->code));
    return grant;
}

boost::system::result<authorization_grant> verify_code(const pending_authorization& pending,
                                                       secret_string code, std::string_view state) {
    auto grant = check_state(pending, state);
    if (!grant) {
        return grant;
    }
    if (code.empty()) {
        return error_code(errc::missing_code);
    }
    grant->code = std::move(code);
    return grant;
}

}  // namespace apollo_oauth::cli
