// UTF-8 validation (RFC 3629, table 3-7 of the Unicode standard).
#include "store/utf8.hpp"

namespace apollo_oauth::store {

bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p != end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int trailing = 0;
        // The allowed range of the second byte is what rules out overlong forms and surrogates.
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            trailing = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            trailing = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            trailing = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return false;
        }
        if (end - p <= trailing) {
            return false;
        }
        if (p[1] < lo || p[1] > hi) {
            return false;
        }
        for (int i = 2; i <= trailing; ++i) {
            if (p[i] < 0x80 || p[i] > 0xbf) {
                return false;
            }
        }
        p += trailing + 1;
    }
    return true;
}

}  // namespace apollo_oauth::store
