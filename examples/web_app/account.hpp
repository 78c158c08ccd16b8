// An Apollo account connected through the web app: what its pages show, and the token cache's key.
#pragma once

#include <string>

namespace web_app {

struct connected_account {
    std::string id;  ///< the Apollo user id: the token cache's account key
    std::string name;
    std::string email;
};

}  // namespace web_app
