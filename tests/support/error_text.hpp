#pragma once
// What the tests check of an error: the message of the exception a call throws, and whether a
// text contains a part.

#include <string>

namespace test_support {

/// The message of the exception of type E that `fn` throws, or a placeholder.
template <class E, class Fn>
std::string what_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.what();
    }
    return "<no exception of the expected type>";
}

/// Whether `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace test_support
