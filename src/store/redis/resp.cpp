#include "store/redis/resp.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <openssl/crypto.h>

#include <charconv>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace apollo_oauth::redis {

void wipe(std::string& s) noexcept {
    if (s.capacity() != 0) {
        OPENSSL_cleanse(s.data(), s.capacity());
    }
    s.clear();
}

command::command(std::initializer_list<std::string_view> args) {
    args_.reserve(args.size());
    for (const auto a : args) {
        args_.emplace_back(a);
    }
}

command::~command() {
    for (auto& a : args_) {
        wipe(a);
    }
}

command& command::arg(std::string_view value) {
    args_.emplace_back(value);
    return *this;
}

command& command::arg(std::uint64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    args_.emplace_back(digits, end);
    return *this;
}

void command::append_to(std::string& out) const {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args_.size());
    lengths.reserve(args_.size());
    for (const auto& a : args_) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    char* formatted = nullptr;
    const int length =
        redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(), lengths.data());
    if (length < 0 || formatted == nullptr) {
        throw std::bad_alloc();
    }
    out.append(formatted, static_cast<std::size_t>(length));
    OPENSSL_cleanse(formatted, static_cast<std::size_t>(length));
    redisFreeCommand(formatted);
}

namespace {

// An array header announcing more elements than this is refused (hiredis reports it as out of
// memory, i.e. a protocol error): nothing this store reads has more than a few dozen.
constexpr int max_array_elements = 1 << 16;
// Unparsed bytes beyond this are a protocol error (a bulk string header can announce 512 MB).
constexpr std::size_t max_buffered_bytes = 4 << 20;

// The callbacks run inside hiredis (C): no exception may escape them; a null return is its OOM.
reply* place(const redisReadTask* task) noexcept {
    if (task->parent != nullptr) {
        auto* parent = static_cast<reply*>(task->parent->obj);
        return &parent->elements[static_cast<std::size_t>(task->idx)];
    }
    return new (std::nothrow) reply;
}

void* create_string(const redisReadTask* task, char* str, std::size_t len) {
    reply* r = place(task);
    if (r == nullptr) {
        return nullptr;
    }
    r->type = task->type == REDIS_REPLY_ERROR    ? reply::kind::error
              : task->type == REDIS_REPLY_STATUS ? reply::kind::status
                                                 : reply::kind::string;
    try {
        r->text.assign(str, len);
    } catch (...) {
        return nullptr;
    }
    return r;
}

void* create_array(const redisReadTask* task, int elements) {
    if (elements < 0 || elements > max_array_elements) {
        return nullptr;
    }
    reply* r = place(task);
    if (r == nullptr) {
        return nullptr;
    }
    r->type = reply::kind::array;
    try {
        r->elements.resize(static_cast<std::size_t>(elements));
    } catch (...) {
        return nullptr;
    }
    return r;
}

void* create_integer(const redisReadTask* task, long long value) {
    reply* r = place(task);
    if (r != nullptr) {
        r->type = reply::kind::integer;
        r->integer = value;
    }
    return r;
}

void* create_nil(const redisReadTask* task) {
    reply* r = place(task);
    if (r != nullptr) {
        r->type = reply::kind::nil;
    }
    return r;
}

// hiredis frees only roots (a reply, or the partial reply of a failed parse).
void free_object(void* object) {
    delete static_cast<reply*>(object);
}

redisReplyObjectFunctions reply_functions{create_string, create_array, create_integer, create_nil,
                                          free_object};

}  // namespace

reader::reader() : reader_(redisReaderCreateWithFunctions(&reply_functions)) {
    if (reader_ == nullptr) {
        throw std::bad_alloc();
    }
}

namespace {

void wipe_and_free(redisReader* r) noexcept {
    // The buffer held replies (tokens): zero it before hiredis frees it.
    if (r->buf != nullptr && r->len != 0) {
        OPENSSL_cleanse(r->buf, r->len);
    }
    redisReaderFree(r);
}

}  // namespace

reader::~reader() {
    wipe_and_free(reader_);
}

bool reader::feed(std::string_view bytes) {
    if (reader_->err != 0 || reader_->len - reader_->pos + bytes.size() > max_buffered_bytes) {
        return false;
    }
    return redisReaderFeed(reader_, bytes.data(), bytes.size()) == REDIS_OK;
}

reader::result reader::next(reply& out) {
    void* object = nullptr;
    if (redisReaderGetReply(reader_, &object) != REDIS_OK) {
        return result::protocol_error;
    }
    if (object == nullptr) {
        return result::need_more;
    }
    auto* r = static_cast<reply*>(object);
    out = std::move(*r);
    delete r;
    return result::complete;
}

void reader::reset() {
    wipe_and_free(reader_);
    reader_ = redisReaderCreateWithFunctions(&reply_functions);
    if (reader_ == nullptr) {
        throw std::bad_alloc();
    }
}

}  // namespace apollo_oauth::redis
