#pragma once

// A tiny stand-in for std::expected (C++23): a value or a list of errors.
// Control-plane code returns these instead of throwing across area borders.

#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace switchyard {

struct Error {
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::move(value)) {}
    Result(Error error) : data_(std::vector<Error>{std::move(error)}) {}
    Result(std::vector<Error> errors) : data_(std::move(errors)) {}

    static Result failure(std::string message) { return Result(Error{std::move(message)}); }

    bool ok() const { return std::holds_alternative<T>(data_); }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<T>(data_); }
    const T& value() const& { return std::get<T>(data_); }
    T&& value() && { return std::get<T>(std::move(data_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const std::vector<Error>& errors() const { return std::get<std::vector<Error>>(data_); }

    // All error messages, one per line.
    std::string errorText() const {
        std::string text;
        if (ok()) return text;
        for (const auto& e : errors()) {
            if (!text.empty()) text += '\n';
            text += e.message;
        }
        return text;
    }

private:
    std::variant<T, std::vector<Error>> data_;
};

} // namespace switchyard
