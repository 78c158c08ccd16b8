#include <apollo_oauth/emulator/localhost_certificate.hpp>

#include "emulator/certificates.hpp"

namespace apollo_oauth::emulator {

localhost_certificate make_localhost_certificate() {
    detail::certificate_chain chain = detail::make_certificate_chain();
    return {std::move(chain.ca_pem), std::move(chain.leaf_cert_pem), std::move(chain.leaf_key_pem)};
}

}  // namespace apollo_oauth::emulator
