// An optional whose value lives on the heap: empty, it is one pointer.
#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace apollo_oauth::sansio {

/// For state that exists only while an account is busy (the record a refresh starts from, its
/// rotated pair, a save in flight): a cached account spends most of its life idle, and three empty
/// std::optional<stored_tokens> cost it 744 bytes where three empty pointers cost 24. The
/// interface is the part of std::optional the machine uses, so the code reads the same.
template <class T>
class heap_optional {
public:
    heap_optional() = default;
    heap_optional(const heap_optional& other)
        : value_(other.value_ ? std::make_unique<T>(*other.value_) : nullptr) {}
    heap_optional(heap_optional&&) noexcept = default;
    heap_optional& operator=(const heap_optional& other) {
        if (this != &other && other.value_) {
            *this = *other.value_;
        } else if (this != &other) {
            reset();
        }
        return *this;
    }
    heap_optional& operator=(heap_optional&&) noexcept = default;

    heap_optional& operator=(T value) {
        if (value_) {
            *value_ = std::move(value);
        } else {
            value_ = std::make_unique<T>(std::move(value));
        }
        return *this;
    }
    heap_optional& operator=(const std::optional<T>& value) {
        if (value) {
            *this = *value;
        } else {
            reset();
        }
        return *this;
    }

    /// A copy as a std::optional (what an action carries).
    operator std::optional<T>() const { return value_ ? std::optional<T>(*value_) : std::nullopt; }

    explicit operator bool() const noexcept { return value_ != nullptr; }
    bool has_value() const noexcept { return value_ != nullptr; }
    T& operator*() noexcept { return *value_; }
    const T& operator*() const noexcept { return *value_; }
    T* operator->() noexcept { return value_.get(); }
    const T* operator->() const noexcept { return value_.get(); }
    void reset() noexcept { value_.reset(); }

private:
    std::unique_ptr<T> value_;
};

}  // namespace apollo_oauth::sansio
