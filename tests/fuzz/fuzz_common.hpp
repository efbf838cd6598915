#pragma once
// Shared machinery of the libFuzzer targets in tests/fuzz/ (one binary per decoder, see
// tests/CMakeLists.txt, section "Fuzzers").
//
// Input layout of a decoder target (fuzz_<quantizer>.cpp):
//   byte 0  mode   bit 0: V = double (else float)
//                  bit 1: round-trip mode (else decode mode)
//                  bit 2: decode mode: n = the payload's count field when it is <= max_elements
//                  bit 3: round-trip mode: values are int16 * 2^(byte 4 - 128) (else raw V bytes)
//                  bit 4: round-trip mode: each byte picks an edge value (special_value), so
//                         the extremes of every range are reached quickly
//   bytes 1-3      quantizer configuration (bits, bucket, levels, stochastic, ... per target)
//   decode mode:   bytes 4-5 n (u16, mod max_elements + 1), byte 6 reference mode (see
//                  reference_spec), byte 7 reference seed; bytes 8.. the payload given to
//                  q.decode(payload, reference, out)
//   round trip:    byte 4 scale exponent, byte 5 rng seed, byte 6 reference delta mode,
//                  byte 7 delta seed; bytes 8.. the values (at most max_elements)
//
// Decode mode: the payload is decoded into an `out` filled with a sentinel (a signalling NaN
// no arithmetic produces). The target's ORACLE, an independent, straightforward reading of the
// wire format, says whether the payload must be accepted and what must come out:
//   - a throw must be message_error / size_mismatch_error / invalid_argument_error, only when
//     the oracle rejects the payload, and `out` (and the reference) must be untouched;
//   - a success only when the oracle accepts it, with every element written and equal (bit for
//     bit; any NaN for a NaN) to the oracle's value, and (lattice) the failed buckets the
//     oracle predicts.
// ASan checks that nothing outside the payload / out / reference is read or written: the
// payload sits at the very end of its allocation, misaligned by 0..7 bytes, with the bytes in
// front of it poisoned.
//
// Round-trip mode: encode(values) into an exactly sized buffer (twice, into buffers filled
// with different patterns: every byte must be written, deterministically), then the payload
// must pass the oracle and decode to the sender's reconstruction bit for bit (lattice: outside
// the reported failed buckets, and with no failure at all when the reference is within the
// decoding radius), and the reconstruction must satisfy the quantizer's error bound.
//
// Seeds: with SWARMSGD_FUZZ_SEED_DIR set, LLVMFuzzerInitialize writes valid inputs of both
// modes (every configuration the target lists, float and double, several sizes and value
// patterns) into that directory, which is then given to the fuzzer as its corpus (see
// tests/fuzz/run_fuzzer.cmake). Nothing binary is committed.

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <sanitizer/asan_interface.h>

#include <swarmsgd/errors.hpp>
#include <swarmsgd/message.hpp>
#include <swarmsgd/quantizer.hpp>
#include <swarmsgd/random.hpp>

namespace fuzz {

/// Largest model the targets build (elements).
inline constexpr std::size_t max_elements = 4096;
/// Bytes before the payload / values.
inline constexpr std::size_t prefix_size = 8;

[[noreturn]] inline void fail_v(const char* file, int line, const char* cond, const char* fmt,
                                va_list args) {
    std::fprintf(stderr, "\n==== swarmsgd fuzz check failed at %s:%d\n", file, line);
    if (cond != nullptr) std::fprintf(stderr, "     check: %s\n", cond);
    std::fprintf(stderr, "     ");
    std::vfprintf(stderr, fmt, args);
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
    std::abort();
}

/// Reports a failed check and aborts (libFuzzer then saves the input as a crash).
[[noreturn, gnu::format(printf, 3, 4)]] inline void fail_at(const char* file, int line,
                                                            const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fail_v(file, line, nullptr, fmt, args);
}

[[noreturn, gnu::format(printf, 4, 5)]] inline void fail_check(const char* file, int line,
                                                               const char* cond, const char* fmt,
                                                               ...) {
    va_list args;
    va_start(args, fmt);
    fail_v(file, line, cond, fmt, args);
}

/// FUZZ_CHECK(condition, printf-format, args...): aborts with the message when false.
#define FUZZ_CHECK(cond, ...)                                           \
    do {                                                                \
        if (!(cond)) [[unlikely]]                                       \
            ::fuzz::fail_check(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

template <class T>
[[nodiscard]] T load(const std::byte* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class V>
using bits_of = std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>;

template <class V>
[[nodiscard]] bits_of<V> bits(V v) noexcept {
    return std::bit_cast<bits_of<V>>(v);
}

/// Sentinel: a signalling NaN with a payload no arithmetic produces.
template <class V>
[[nodiscard]] V sentinel() noexcept {
    if constexpr (sizeof(V) == 4)
        return std::bit_cast<float>(std::uint32_t{0x7FBADBADu});
    else
        return std::bit_cast<double>(std::uint64_t{0x7FF5DEADBEEFBAD5ull});
}

/// Same bits, or both NaN.
template <class V>
[[nodiscard]] bool same_value(V a, V b) noexcept {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return bits(a) == bits(b);
}

/// 64-bit hash (SplitMix64 finalizer), independent of the library's.
[[nodiscard]] constexpr std::uint64_t hash64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
/// Uniform in [-1, 1) from (seed, k).
[[nodiscard]] inline double hash_unit(std::uint64_t seed, std::uint64_t k) noexcept {
    return static_cast<double>(hash64(seed * 0x1000193ull + k) >> 11) * 0x1.0p-52 - 1.0;
}

/// Bits [pos, pos + width) of an LSB-first bit stream (width <= 16).
[[nodiscard]] inline unsigned read_bits(const std::byte* p, std::size_t pos, unsigned width) {
    unsigned v = 0;
    for (unsigned i = 0; i < width; ++i) {
        const std::size_t b = pos + i;
        v |= ((static_cast<unsigned>(p[b / 8]) >> (b % 8)) & 1u) << i;
    }
    return v;
}
/// ceil(n * bits / 8).
[[nodiscard]] constexpr std::size_t packed(std::size_t n, unsigned width) noexcept {
    return (n * width + 7) / 8;
}
/// The bits after the last code of a stream of n codes are zero.
[[nodiscard]] inline bool tail_zero(const std::byte* p, std::size_t n, unsigned width) {
    const std::size_t total = 8 * packed(n, width);
    for (std::size_t b = n * width; b < total; ++b)
        if (((static_cast<unsigned>(p[b / 8]) >> (b % 8)) & 1u) != 0) return false;
    return true;
}

/// Unit in the last place of |x| in type T (for error bounds; ulp of 0 is the smallest
/// subnormal).
template <class T>
[[nodiscard]] double ulp(double x) {
    const T a = static_cast<T>(std::fabs(x));
    if (!std::isfinite(a)) return std::numeric_limits<double>::infinity();
    const T up = std::nextafter(a, std::numeric_limits<T>::infinity());
    // At the largest finite value, the step below it (never infinity: bounds stay finite).
    if (!std::isfinite(up)) return static_cast<double>(a) - double(std::nextafter(a, T(0)));
    return static_cast<double>(up) - static_cast<double>(a);
}

/// The payload header as a receiver with n elements of V expects it (read independently).
struct header_view {
    bool ok = false;          ///< long enough, id, width and count as expected
    std::uint64_t count = 0;  ///< the count field (when the payload has 16 bytes)
};
template <class V>
[[nodiscard]] header_view check_header(std::span<const std::byte> p, std::uint16_t id,
                                       std::size_t n) {
    header_view h;
    if (p.size() < 16) return h;
    h.count = load<std::uint64_t>(p.data() + 8);
    h.ok = load<std::uint16_t>(p.data()) == id && load<std::uint8_t>(p.data() + 2) == sizeof(V) &&
           h.count == n;
    return h;
}

// ---------------------------------------------------------------------------------------------
// What the oracle expects of a decode
// ---------------------------------------------------------------------------------------------

/// Per-bucket verdict of the lattice checksum.
enum class verdict : std::uint8_t { ok, fail, unknown };

template <class V>
struct expectation {
    bool valid = false;               ///< decode must succeed (else it must throw)
    std::vector<V> values;            ///< expected output (valid only)
    std::vector<std::uint8_t> check;  ///< per element: 1 = must equal values (empty: all)
    std::size_t bucket = 0;           ///< lattice: elements per checksum bucket (0: no buckets)
    std::vector<verdict> buckets;     ///< lattice: expected verdict per bucket
};

/// How the reference (the receiver's own model) is built in decode mode (byte 6).
///   bits 0-2  pattern: 0 zeros, 1 hash in [-1, 1), 2 hash * 2^(seed % 64 - 32),
///             3 specials (NaN, inf, FLT_MAX, subnormals) among hash values, 4 hash * 2^(seed-128),
///             5 a constant, 6 integers * 2^(seed % 32 - 16), 7 hash * 1e30
///   bits 3-4  aliasing: 1 out IS the reference (in-place), 2 out overlaps it (shifted by one)
///   bits 5-6  reference size: 2 -> n + 1, 3 -> n - 1 (when n > 0), else n
struct reference_spec {
    unsigned pattern = 0;
    unsigned alias = 0;
    unsigned size_mode = 0;
    std::uint8_t seed = 0;
    static reference_spec from(std::uint8_t mode, std::uint8_t seed) {
        return {mode & 7u, (mode >> 3) & 3u, (mode >> 5) & 3u, seed};
    }
};

template <class V>
[[nodiscard]] V reference_value(const reference_spec& s, std::size_t k) {
    const double h = hash_unit(s.seed, k);
    switch (s.pattern) {
        case 0: return V(0);
        case 1: return static_cast<V>(h);
        case 2: return static_cast<V>(std::ldexp(h, int(s.seed % 64) - 32));
        case 3: {
            const std::uint64_t r = hash64(s.seed + 977 * k) % 16;
            constexpr V inf = std::numeric_limits<V>::infinity();
            switch (r) {
                case 0: return std::numeric_limits<V>::quiet_NaN();
                case 1: return inf;
                case 2: return -inf;
                case 3: return static_cast<V>(FLT_MAX);
                case 4: return -std::numeric_limits<V>::max();
                case 5: return std::numeric_limits<V>::denorm_min();
                case 6: return static_cast<V>(-0.0);
                default: return static_cast<V>(h);
            }
        }
        case 4: return static_cast<V>(std::ldexp(h, int(s.seed) - 128));
        case 5: return static_cast<V>(std::ldexp(1.0 + s.seed, -4));
        case 6: return static_cast<V>(std::ldexp(std::floor(h * 1000), int(s.seed % 32) - 16));
        default: return static_cast<V>(h * 1e30);
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------------------------

/// A copy of `bytes` at the very end of its allocation, `shift` (0..7) bytes past an aligned
/// address, with the bytes before it poisoned: ASan flags any read outside [begin, end).
class payload_buffer {
public:
    payload_buffer(std::span<const std::byte> bytes, unsigned shift)
        : shift_(shift % 8), storage_(new std::byte[shift_ + bytes.size() + 1]) {
        // +1 then -1: `new std::byte[0]` would give no room to point into.
        std::byte* p = storage_ + shift_;
        if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
        size_ = bytes.size();
        // The byte after the payload (the +1) is poisoned too.
        ASAN_POISON_MEMORY_REGION(storage_, shift_);
        ASAN_POISON_MEMORY_REGION(p + size_, 1);
    }
    ~payload_buffer() {
        ASAN_UNPOISON_MEMORY_REGION(storage_, shift_ + size_ + 1);
        delete[] storage_;
    }
    payload_buffer(const payload_buffer&) = delete;
    payload_buffer& operator=(const payload_buffer&) = delete;
    [[nodiscard]] std::span<const std::byte> span() const noexcept {
        return {storage_ + shift_, size_};
    }

private:
    unsigned shift_;
    std::byte* storage_;
    std::size_t size_ = 0;
};

/// `out` and `reference` of a decode, laid out as the spec's aliasing mode asks, in an exactly
/// sized heap allocation (ASan bounds).
template <class V>
struct decode_buffers {
    std::vector<V> storage;
    std::span<const V> reference;
    std::span<V> out;
    std::vector<V> reference_copy;  // what reference held before the decode

    decode_buffers(std::size_t n, const reference_spec& s) {
        std::size_t ref_n = n;
        if (s.size_mode == 2) ref_n = n + 1;
        if (s.size_mode == 3 && n > 0) ref_n = n - 1;
        if (s.alias == 1 && ref_n == n) {
            storage.resize(n);
            for (std::size_t k = 0; k < n; ++k) storage[k] = reference_value<V>(s, k);
            reference = std::span<const V>(storage);
            out = std::span<V>(storage);
        } else if (s.alias == 2 && n > 0) {
            // out = storage[1, n + 1), reference = storage[0, ref_n): overlapping, not equal.
            storage.resize(std::max(n + 1, ref_n));
            for (std::size_t k = 0; k < storage.size(); ++k) storage[k] = reference_value<V>(s, k);
            reference = std::span<const V>(storage.data(), ref_n);
            out = std::span<V>(storage.data() + 1, n);
            for (auto& v : out) v = sentinel<V>();
        } else {
            storage.resize(n + ref_n);
            for (std::size_t k = 0; k < ref_n; ++k) storage[n + k] = reference_value<V>(s, k);
            out = std::span<V>(storage.data(), n);
            reference = std::span<const V>(storage.data() + n, ref_n);
            for (auto& v : out) v = sentinel<V>();
        }
        reference_copy.assign(reference.begin(), reference.end());
    }
    [[nodiscard]] bool in_place() const noexcept {
        return !out.empty() &&
               static_cast<const void*>(out.data()) == static_cast<const void*>(reference.data());
    }
    [[nodiscard]] bool partial_overlap() const noexcept {
        return !out.empty() && !in_place() && out.data() < reference.data() + reference.size() &&
               reference.data() < out.data() + out.size();
    }
};

template <class V>
[[nodiscard]] bool all_bits_equal(std::span<const V> a, std::span<const V> b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

/// Checks decode_result::failed: sorted, disjoint, inside [0, n), and (when bucket > 0)
/// whole buckets; returns the per-bucket flags.
inline std::vector<bool> failed_buckets(const swarmsgd::decode_result& r, std::size_t n,
                                        std::size_t bucket) {
    std::vector<bool> flags(bucket == 0 ? 0 : (n + bucket - 1) / bucket, false);
    std::size_t prev_end = 0;
    for (const auto& range : r.failed) {
        FUZZ_CHECK(range.begin < range.end && range.end <= n && range.begin >= prev_end,
                   "bad failed range [%zu, %zu) (n %zu, previous end %zu)", range.begin, range.end,
                   n, prev_end);
        prev_end = range.end;
        if (bucket != 0) {
            FUZZ_CHECK(range.begin % bucket == 0 && range.end == std::min(n, range.begin + bucket),
                       "failed range [%zu, %zu) is not one bucket of %zu (n %zu)", range.begin,
                       range.end, bucket, n);
            flags[range.begin / bucket] = true;
        }
    }
    return flags;
}

/// Compares a successful decode with the oracle's expectation.
template <class V>
void check_success(const expectation<V>& want, std::span<const V> out,
                   const swarmsgd::decode_result& r, const char* what) {
    FUZZ_CHECK(want.valid, "%s: decode accepted a payload the oracle rejects", what);
    const std::size_t n = out.size();
    FUZZ_CHECK(want.values.size() == n, "%s: oracle size %zu vs out %zu", what, want.values.size(),
               n);
    for (std::size_t k = 0; k < n; ++k) {
        const bool must = want.check.empty() || want.check[k] != 0;
        // (Unless the expected value has the sentinel's bits: identity copies raw bytes.)
        if (!must || bits(want.values[k]) != bits(sentinel<V>()))
            FUZZ_CHECK(bits(out[k]) != bits(sentinel<V>()), "%s: element %zu of %zu not written",
                       what, k, n);
        if (must)
            FUZZ_CHECK(same_value(out[k], want.values[k]),
                       "%s: element %zu of %zu decoded to %.17g (bits %llx), oracle %.17g "
                       "(bits %llx)",
                       what, k, n, double(out[k]), (unsigned long long)bits(out[k]),
                       double(want.values[k]), (unsigned long long)bits(want.values[k]));
    }
    const auto flags = failed_buckets(r, n, want.bucket);
    if (want.bucket == 0) {
        FUZZ_CHECK(r.ok(),
                   "%s: a quantizer without failure detection reported %zu failed "
                   "elements",
                   what, r.failed_elements());
    } else {
        for (std::size_t b = 0; b < flags.size(); ++b) {
            if (want.buckets[b] == verdict::unknown) continue;
            FUZZ_CHECK(flags[b] == (want.buckets[b] == verdict::fail),
                       "%s: bucket %zu (of %zu elements, n %zu) reported %s, the oracle's "
                       "checksum says %s",
                       what, b, want.bucket, n, flags[b] ? "failed" : "ok",
                       want.buckets[b] == verdict::fail ? "failed" : "ok");
        }
    }
}

/// Runs q.decode and checks it against the oracle's expectation (decode mode).
template <class V, class Q>
void checked_decode(Q& q, std::span<const std::byte> payload, decode_buffers<V>& buf,
                    const expectation<V>& want, const char* what) {
    std::vector<V> out_before(buf.out.begin(), buf.out.end());
    swarmsgd::decode_result r;
    const char* caught = nullptr;
    std::string message;
    try {
        r = q.decode(payload, buf.reference, buf.out);
    } catch (const swarmsgd::message_error& e) {
        caught = "message_error";
        message = e.what();
    } catch (const swarmsgd::size_mismatch_error& e) {
        caught = "size_mismatch_error";
        message = e.what();
    } catch (const swarmsgd::invalid_argument_error& e) {
        caught = "invalid_argument_error";
        message = e.what();
    } catch (const std::exception& e) {
        fail_at(__FILE__, __LINE__, "%s: decode threw an unexpected exception: %s", what, e.what());
    }
    if (caught != nullptr) {
        FUZZ_CHECK(!want.valid,
                   "%s: decode threw %s (\"%s\") for a payload the oracle accepts "
                   "(n %zu, %zu payload bytes)",
                   what, caught, message.c_str(), buf.out.size(), payload.size());
        FUZZ_CHECK(!message.empty(), "%s: %s with an empty message", what, caught);
        FUZZ_CHECK(all_bits_equal<V>(buf.out, out_before),
                   "%s: decode threw %s (\"%s\") but modified its output", what, caught,
                   message.c_str());
        FUZZ_CHECK(all_bits_equal<V>(buf.reference, buf.reference_copy),
                   "%s: decode threw %s (\"%s\") but modified the reference", what, caught,
                   message.c_str());
        return;
    }
    check_success<V>(want, buf.out, r, what);
    if (!buf.in_place() && !buf.partial_overlap())
        FUZZ_CHECK(all_bits_equal<V>(buf.reference, buf.reference_copy),
                   "%s: decode modified the reference", what);
}

/// Encodes `values` twice (buffers prefilled with 0x00 and 0xFF): both must give the same
/// bytes and the same reconstruction, with the documented size. Returns false when encode
/// threw an expected exception (non_finite_error / invalid_argument_error).
template <class Q, class V>
bool checked_encode(Q q, std::vector<V>& values, std::vector<std::byte>& payload,
                    std::uint64_t seed, const char* what) {
    const std::size_t n = values.size();
    const std::size_t size = q.max_encoded_size(n);
    std::vector<V> second = values;
    std::vector<std::byte> a(size, std::byte{0x00}), b(size, std::byte{0xFF});
    std::size_t wrote = 0;
    Q q2 = q;
    try {
        swarmsgd::rng r(seed);
        wrote = q.encode(std::span<V>(values), std::span<std::byte>(a), r);
    } catch (const swarmsgd::non_finite_error&) {
        return false;
    } catch (const swarmsgd::invalid_argument_error&) {
        return false;
    } catch (const std::exception& e) {
        fail_at(__FILE__, __LINE__, "%s: encode threw an unexpected exception: %s", what, e.what());
    }
    FUZZ_CHECK(wrote == size, "%s: encode wrote %zu bytes, max_encoded_size(%zu) = %zu", what,
               wrote, n, size);
    std::size_t wrote2 = 0;
    try {
        swarmsgd::rng r(seed);
        wrote2 = q2.encode(std::span<V>(second), std::span<std::byte>(b), r);
    } catch (const std::exception& e) {
        fail_at(__FILE__, __LINE__, "%s: second identical encode threw: %s", what, e.what());
    }
    FUZZ_CHECK(wrote2 == wrote, "%s", what);
    for (std::size_t i = 0; i < size; ++i)
        FUZZ_CHECK(a[i] == b[i],
                   "%s: payload byte %zu of %zu differs between two identical encodes into "
                   "buffers prefilled with 0x00 / 0xFF (left unwritten or nondeterministic)",
                   what, i, size);
    FUZZ_CHECK(all_bits_equal<V>(values, second),
               "%s: two identical encodes reconstruct "
               "differently",
               what);
    payload = std::move(a);
    return true;
}

/// Decodes a payload the encoder produced into a sentinel-filled `out`; it must be accepted.
template <class Q, class V>
swarmsgd::decode_result must_decode(Q& q, std::span<const std::byte> payload,
                                    std::span<const V> reference, std::span<V> out,
                                    const char* what) {
    for (auto& v : out) v = sentinel<V>();
    try {
        return q.decode(payload, reference, out);
    } catch (const std::exception& e) {
        fail_at(__FILE__, __LINE__,
                "%s: decode rejected a payload its own encoder produced (n %zu): %s", what,
                out.size(), e.what());
    }
}

// ---------------------------------------------------------------------------------------------
// Input parsing and the driver
// ---------------------------------------------------------------------------------------------

struct prefix {
    std::uint8_t mode = 0;
    std::uint8_t cfg[3] = {};
    std::uint8_t b4 = 0, b5 = 0, b6 = 0, b7 = 0;
    [[nodiscard]] bool is_double() const noexcept { return (mode & 1u) != 0; }
    [[nodiscard]] bool roundtrip() const noexcept { return (mode & 2u) != 0; }
    [[nodiscard]] bool n_from_count() const noexcept { return (mode & 4u) != 0; }
    [[nodiscard]] bool scaled_values() const noexcept { return (mode & 8u) != 0; }
    [[nodiscard]] bool special_values() const noexcept { return (mode & 16u) != 0; }
};

inline prefix read_prefix(const std::uint8_t* data, std::size_t size) {
    std::uint8_t b[prefix_size] = {};
    std::memcpy(b, data, std::min(size, prefix_size));
    prefix p;
    p.mode = b[0];
    p.cfg[0] = b[1];
    p.cfg[1] = b[2];
    p.cfg[2] = b[3];
    p.b4 = b[4];
    p.b5 = b[5];
    p.b6 = b[6];
    p.b7 = b[7];
    return p;
}

/// Decode mode for value type V: builds n, the buffers and runs the target's oracle + decode.
template <class T, class V>
void run_decode(const prefix& p, std::span<const std::byte> raw_payload) {
    std::size_t n = (std::size_t{p.b4} | std::size_t{p.b5} << 8) % (max_elements + 1);
    if (p.n_from_count() && raw_payload.size() >= 16) {
        const auto count = load<std::uint64_t>(raw_payload.data() + 8);
        if (count <= max_elements) n = static_cast<std::size_t>(count);
    }
    const payload_buffer payload(raw_payload, p.b7);
    const auto spec = reference_spec::from(p.b6, p.b7);
    decode_buffers<V> buf(n, spec);
    const expectation<V> want = T::template oracle<V>(
        payload.span(), std::span<const V>(buf.reference_copy), n, buf.partial_overlap());
    auto q = T::template make<V>(p.cfg);
    checked_decode<V>(q, payload.span(), buf, want, T::name);
    T::template extra_decode_checks<V>(payload.span(), n);
}

/// Edge values of the ranges the quantizers care about, picked by a byte: bit 7 the sign,
/// bits 0-6 the entry (entries past the table: small integers).
template <class V>
[[nodiscard]] V special_value(std::uint8_t b) {
    const double table[] = {
        0.0,
        1.0,
        double(FLT_MAX),
        double(std::nextafter(FLT_MAX, 0.0f)),
        double(FLT_MAX) * (1 - 0x1.0p-12),
        double(FLT_MIN),
        double(std::numeric_limits<float>::denorm_min()),
        42 * double(std::numeric_limits<float>::denorm_min()),
        65504.0,
        65519.99,
        65520.0,
        0x1.FEp127,
        0x1.FFp127,
        0x1.0p-14,
        0x1.0p-24,
        0x1.0p-25,
        0x1.0p21,
        0x1.0p50,
        0x1.0p60,
        1e25,
        1e30,
        0.5,
        1.5,
        2.5,
        std::numeric_limits<double>::quiet_NaN(),
        std::numeric_limits<double>::infinity(),
        DBL_MAX,
        DBL_MIN,
        std::numeric_limits<double>::denorm_min(),
        1e280,
        1e-300,
        0.1,
    };
    constexpr std::size_t entries = sizeof(table) / sizeof(table[0]);
    const std::size_t i = b & 0x7Fu;
    const double v = i < entries ? table[i] : double(i - entries) - 20.0;
    return static_cast<V>((b & 0x80u) != 0 ? -v : v);
}

/// Round-trip mode for value type V: values from the input, then the target's checks.
template <class T, class V>
void run_roundtrip(const prefix& p, std::span<const std::byte> rest) {
    const std::size_t width = p.special_values() ? 1 : (p.scaled_values() ? 2 : sizeof(V));
    std::size_t n = std::min(max_elements, rest.size() / width);
    std::vector<V> x(n);
    if (p.special_values()) {
        for (std::size_t k = 0; k < n; ++k)
            x[k] = special_value<V>(static_cast<std::uint8_t>(rest[k]));
    } else if (p.scaled_values()) {
        for (std::size_t k = 0; k < n; ++k)
            x[k] = static_cast<V>(
                std::ldexp(double(load<std::int16_t>(rest.data() + 2 * k)), int(p.b4) - 128));
    } else if (n != 0) {
        std::memcpy(x.data(), rest.data(), n * sizeof(V));
    }
    T::template roundtrip<V>(p, std::move(x));
}

template <class T>
int test_one_input(const std::uint8_t* data, std::size_t size) {
    const prefix p = read_prefix(data, size);
    const std::size_t skip = std::min(size, prefix_size);
    const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + skip,
                                          size - skip);
    if (p.roundtrip()) {
        if (p.is_double())
            run_roundtrip<T, double>(p, rest);
        else
            run_roundtrip<T, float>(p, rest);
    } else {
        if (p.is_double())
            run_decode<T, double>(p, rest);
        else
            run_decode<T, float>(p, rest);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

class seed_writer {
public:
    explicit seed_writer(std::filesystem::path dir) : dir_(std::move(dir)) {
        std::filesystem::create_directories(dir_);
    }
    void add(const std::vector<std::uint8_t>& bytes) {
        const std::string name = "seed-" + std::to_string(count_++);
        std::ofstream f(dir_ / name, std::ios::binary);
        f.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    }
    [[nodiscard]] std::size_t count() const noexcept { return count_; }

private:
    std::filesystem::path dir_;
    std::size_t count_ = 0;
};

/// Writes, for every configuration of the target, float and double, several sizes and
/// value patterns: a decode-mode input carrying a valid payload (n taken from its count
/// field, the reference = the pattern the values were built around) and a round-trip input
/// carrying the values. Inputs stay below max_len (8192).
template <class T>
void write_seeds(const std::filesystem::path& dir) {
    seed_writer w(dir);
    auto for_type = [&](auto tag) {
        using V = decltype(tag);
        constexpr std::uint8_t type_bit = sizeof(V) == 8 ? 1 : 0;
        const std::size_t sizes[] = {0, 1, 7, 8, 9, 64, 257, 900 / sizeof(V) * 4};
        for (const auto& cfg : T::seed_configs()) {
            for (const std::size_t n : sizes) {
                for (std::uint8_t pattern : {std::uint8_t{1}, std::uint8_t{2}, std::uint8_t{6}}) {
                    const std::uint8_t ref_seed = static_cast<std::uint8_t>(n * 7 + pattern);
                    const auto spec = reference_spec::from(pattern, ref_seed);
                    auto q = T::template make<V>(cfg.data());
                    std::vector<V> x(n);
                    const double noise = T::template seed_noise<V>(q);
                    for (std::size_t k = 0; k < n; ++k)
                        x[k] = static_cast<V>(double(reference_value<V>(spec, k)) +
                                              noise * hash_unit(ref_seed + 1000, k));
                    // Round-trip input.
                    std::vector<std::uint8_t> rt = {static_cast<std::uint8_t>(type_bit | 2u),
                                                    cfg[0],
                                                    cfg[1],
                                                    cfg[2],
                                                    128,
                                                    static_cast<std::uint8_t>(n),
                                                    std::uint8_t(2),
                                                    ref_seed};
                    const auto* xb = reinterpret_cast<const std::uint8_t*>(x.data());
                    rt.insert(rt.end(), xb, xb + n * sizeof(V));
                    if (rt.size() <= 8192) w.add(rt);
                    // Decode-mode input.
                    std::vector<std::byte> payload(q.max_encoded_size(n));
                    swarmsgd::rng r(n);
                    try {
                        (void)q.encode(std::span<V>(x), std::span<std::byte>(payload), r);
                    } catch (const swarmsgd::error&) {
                        continue;
                    }
                    std::vector<std::uint8_t> dm = {static_cast<std::uint8_t>(type_bit | 4u),
                                                    cfg[0],
                                                    cfg[1],
                                                    cfg[2],
                                                    static_cast<std::uint8_t>(n),
                                                    static_cast<std::uint8_t>(n >> 8),
                                                    pattern,
                                                    ref_seed};
                    const auto* pb = reinterpret_cast<const std::uint8_t*>(payload.data());
                    dm.insert(dm.end(), pb, pb + payload.size());
                    if (dm.size() <= 8192) w.add(dm);
                }
            }
        }
    };
    for_type(float{});
    for_type(double{});
    // Edge values (special_value): every entry alone among zeros, in groups of 8 and 64
    // elements (so alone in its bucket for small buckets), and every entry among its
    // neighbours.
    for (const auto& cfg : T::seed_configs()) {
        for (const std::uint8_t type_bit : {std::uint8_t{0}, std::uint8_t{1}}) {
            for (const unsigned group : {8u, 64u}) {
                std::vector<std::uint8_t> in = {static_cast<std::uint8_t>(type_bit | 2u | 16u),
                                                cfg[0],
                                                cfg[1],
                                                cfg[2],
                                                128,
                                                1,
                                                2,
                                                3};
                for (unsigned b = 0; b < 128 && in.size() + group <= 8192; ++b)
                    for (unsigned j = 0; j < group; ++j)
                        in.push_back(static_cast<std::uint8_t>(j == 0 ? b : 0));
                w.add(in);
            }
            std::vector<std::uint8_t> in = {static_cast<std::uint8_t>(type_bit | 2u | 16u),
                                            cfg[0],
                                            cfg[1],
                                            cfg[2],
                                            128,
                                            1,
                                            2,
                                            3};
            for (unsigned b = 0; b < 256; ++b) in.push_back(static_cast<std::uint8_t>(b));
            w.add(in);
        }
    }
    std::fprintf(stderr, "swarmsgd fuzz (%s): wrote %zu seeds to %s\n", T::name, w.count(),
                 dir.string().c_str());
}

template <class T>
void initialize() {
    if (const char* dir = std::getenv("SWARMSGD_FUZZ_SEED_DIR"); dir != nullptr && *dir != 0)
        write_seeds<T>(dir);
}

/// Defaults a target may override.
struct target_defaults {
    template <class V>
    static void extra_decode_checks(std::span<const std::byte>, std::size_t) {}
    template <class V, class Q>
    static double seed_noise(const Q&) {
        return 0.25;
    }
};

}  // namespace fuzz

/// Defines the libFuzzer entry points for target T.
#define SWARMSGD_FUZZ_TARGET(T)                                                         \
    extern "C" int LLVMFuzzerInitialize(int*, char***) {                                \
        ::fuzz::initialize<T>();                                                        \
        return 0;                                                                       \
    }                                                                                   \
    extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
        return ::fuzz::test_one_input<T>(data, size);                                   \
    }
