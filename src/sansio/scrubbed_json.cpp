// scrubbed_json: Boost.JSON parsing on memory that is wiped when released.
#include "sansio/scrubbed_json.hpp"

#include <boost/json/parser.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace apollo_oauth::sansio {
namespace {

// Heap blocks for whatever does not fit the inline buffers; zeroed before they are freed.
//
// Each block records its own size and alignment in front of the memory handed out, because the
// size given back to do_deallocate cannot be trusted: Boost.JSON 1.81's monotonic_resource frees
// its blocks with a smaller size than it allocated them with.
class wiping_resource final : public boost::json::memory_resource {
    struct header {
        std::size_t total;
        std::size_t align;
    };
    static_assert(sizeof(header) <= alignof(std::max_align_t));

    void* do_allocate(std::size_t bytes, std::size_t align) override {
        const std::size_t prefix = std::max(align, alignof(std::max_align_t));
        const header h{prefix + bytes, prefix};
        auto* base = static_cast<unsigned char*>(::operator new(h.total, std::align_val_t(h.align)));
        std::memcpy(base + prefix - sizeof h, &h, sizeof h);
        return base + prefix;
    }
    void do_deallocate(void* p, std::size_t, std::size_t) override {
        header h;
        std::memcpy(&h, static_cast<unsigned char*>(p) - sizeof h, sizeof h);
        unsigned char* base = static_cast<unsigned char*>(p) - h.align;
        OPENSSL_cleanse(base, h.total);
        // Unsized: the sized form needs -fsized-deallocation under clang 14.
        ::operator delete(base, std::align_val_t(h.align));
    }
    bool do_is_equal(const boost::json::memory_resource& other) const noexcept override {
        return this == &other;
    }
};

wiping_resource& wiping() noexcept {
    static wiping_resource instance;  // stateless, so sharing it between threads is fine
    return instance;
}

}  // namespace

scrubbed_json::scrubbed_json() noexcept : resource_(storage_, sizeof storage_, &wiping()) {}

scrubbed_json::~scrubbed_json() {
    resource_.release();
    OPENSSL_cleanse(storage_, sizeof storage_);
    OPENSSL_cleanse(scratch_, sizeof scratch_);
}

boost::json::value scrubbed_json::parse(std::string_view text, error_code& ec) {
    // As boost::json::parse, but the parser's temporary stack is ours (and wiped) too.
    boost::json::parser p(&wiping(), {}, scratch_, sizeof scratch_);
    p.reset(&resource_);
    p.write(text.data(), text.size(), ec);
    if (ec) {
        return nullptr;
    }
    return p.release();
}

}  // namespace apollo_oauth::sansio
