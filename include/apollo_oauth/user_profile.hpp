// The answer of Apollo's GET /api/v1/users/api_profile.
#pragma once

#include <string>

namespace apollo_oauth {

/// Apollo does not document the profile's fields. The library keeps the whole JSON document and
/// extracts the few identifying fields it can find, at the top level or inside a "user" object.
struct user_profile {
    std::string id;       ///< "id" (or "user_id"); empty when absent
    std::string email;    ///< "email"
    std::string name;     ///< "name"
    std::string team_id;  ///< "team_id"
    std::string json;     ///< the response body as received
};

}  // namespace apollo_oauth
