// token_set helpers.
#include <apollo_oauth/token_set.hpp>

#include "sansio/escaped_text.hpp"

#include <algorithm>
#include <ostream>

namespace apollo_oauth {

bool token_set::has_scope(std::string_view scope) const noexcept {
    return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

std::ostream& operator<<(std::ostream& os, const token_set& t) {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    // The scopes are the server's text (split on spaces, nothing else), and a token_set may
    // come from a store: escaped, so that a CR, LF or ESC in one cannot forge a log line.
    os << "token_set{token_type=";
    sansio::print_escaped(os, t.token_type);
    os << " scopes=[";
    const char* sep = "";
    for (const auto& s : t.scopes) {
        os << sep;
        sansio::print_escaped(os, s);
        sep = " ";
    }
    os << "] expires_in=" << t.expires_in.count()
       << " created_at=" << duration_cast<seconds>(t.created_at.time_since_epoch()).count()
       << " expires_at=" << duration_cast<seconds>(t.expires_at.time_since_epoch()).count()
       << " access_token=" << t.access_token << " refresh_token=" << t.refresh_token << '}';
    return os;
}

}  // namespace apollo_oauth
