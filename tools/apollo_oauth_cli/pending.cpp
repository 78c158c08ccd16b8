// Pending authorizations on disk.
#include "pending.hpp"

#include "files.hpp"

#include <apollo_oauth/private_files.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

#include <unistd.h>

namespace apollo_oauth::cli {
namespace {

std::string pending_file_name(const std::string& account) {
    return file_store_account_stem(account) + ".pending.json";
}

std::int64_t to_unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

void save_pending(const std::filesystem::path& token_dir, const std::string& account,
                  const pending_authorization& pending) {
    boost::json::array scopes(pending.scopes.begin(), pending.scopes.end());
    const boost::json::object record{{"version", 1},
                                     {"state", pending.state},
                                     {"code_verifier", pending.code_verifier.reveal()},
                                     {"redirect_uri", pending.redirect_uri},
                                     {"scopes", std::move(scopes)},
                                     {"expires_at", to_unix_seconds(pending.expires_at)}};
    ensure_private_directory(token_dir);
    write_private_file(token_dir, pending_file_name(account), boost::json::serialize(record));
}

std::optional<pending_authorization> load_pending(const std::filesystem::path& token_dir,
                                                  const std::string& account) {
    // Never through a link (docs/cli.md, "Files"): whoever could plant one would hand exchange a
    // state, verifier and redirect URI of their choosing.
    const auto text = read_small_file(token_dir / pending_file_name(account), nullptr, final_link::refuse);
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
        p.expires_at = std::chrono::system_clock::time_point(
            std::chrono::seconds(record->at("expires_at").to_number<std::int64_t>()));
        return p;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void remove_pending(const std::filesystem::path& token_dir, const std::string& account) {
    ::unlink((token_dir / pending_file_name(account)).c_str());
}

void remove_pending_of(const std::filesystem::path& token_dir, const std::string& account,
                       const std::string& state) {
    // A plain comparison: both states are this user's, read from this user's private file.
    if (const auto stored = load_pending(token_dir, account); stored && stored->state == state) {
        remove_pending(token_dir, account);
    }
}

std::string redirect_url_with(const pending_authorization& pending, const std::string& code,
                              const std::string& state) {
    // Everything but unreserved characters percent-encoded: a '+' left as is would be read back
    // as a space.
    const auto encoded = [](const std::string& value) {
        return boost::urls::encode(value, boost::urls::unreserved_chars);
    };
    boost::urls::url url(pending.redirect_uri);
    url.encoded_params().append({"code", boost::urls::pct_string_view(encoded(code))});
    url.encoded_params().append({"state", boost::urls::pct_string_view(encoded(state))});
    return std::string(url.buffer());
}

}  // namespace apollo_oauth::cli
