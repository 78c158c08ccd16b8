// State and PKCE material: OpenSSL's CSPRNG and SHA-256. Jitter: a generator per thread.
#include "sansio/random.hpp"

#include "sansio/encoding.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <climits>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace apollo_oauth::sansio {

std::string random_base64url(std::size_t bytes) {
    if (bytes > static_cast<std::size_t>(INT_MAX)) {
        throw std::length_error("random_base64url: too many bytes");
    }
    std::vector<std::uint8_t> buf(bytes);
    if (bytes != 0 && RAND_bytes(buf.data(), static_cast<int>(bytes)) != 1) {
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    }
    std::string out = base64url_encode(buf);
    // The raw bytes may be a PKCE verifier: do not leave them in freed memory.
    if (!buf.empty()) {
        OPENSSL_cleanse(buf.data(), buf.size());
    }
    return out;
}

std::string make_state() {
    return random_base64url(32);
}

std::string make_code_verifier() {
    return random_base64url(32);
}

std::string code_challenge_s256(std::string_view code_verifier) {
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
    unsigned int len = 0;
    if (EVP_Digest(code_verifier.data(), code_verifier.size(), digest.data(), &len, EVP_sha256(), nullptr) !=
        1) {
        throw std::runtime_error("OpenSSL SHA-256 failed");
    }
    return base64url_encode(std::span<const std::uint8_t>(digest.data(), len));
}

namespace {

// random_device may throw (no entropy source it can open): then the time and the thread, which
// still set threads and processes apart, rather than an exception where a wait is chosen.
std::minstd_rand::result_type jitter_seed() noexcept {
    try {
        return std::random_device{}();
    } catch (...) {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        const auto thread = std::hash<std::thread::id>{}(std::this_thread::get_id());
        return static_cast<std::minstd_rand::result_type>(static_cast<std::size_t>(now) ^ thread);
    }
}

}  // namespace

double jitter_draw() noexcept {
    thread_local std::minstd_rand engine{jitter_seed()};
    return std::uniform_real_distribution<double>{0.0, 1.0}(engine);
}

}  // namespace apollo_oauth::sansio
