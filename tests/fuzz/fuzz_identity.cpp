// libFuzzer target: identity_quantizer<float/double>::decode (and encode/decode round trips).
// Input layout and checks: see fuzz_common.hpp.
#include <swarmsgd/quantizers/identity.hpp>

#include "fuzz_common.hpp"

namespace {

struct identity_target : fuzz::target_defaults {
    static constexpr const char* name = "identity";

    template <class V>
    static swarmsgd::identity_quantizer<V> make(const std::uint8_t* /*cfg*/) {
        return {};
    }

    static std::vector<std::array<std::uint8_t, 3>> seed_configs() { return {{0, 0, 0}}; }

    /// header (id 1) + exactly n raw values.
    template <class V>
    static fuzz::expectation<V> oracle(std::span<const std::byte> p, std::span<const V> /*ref*/,
                                       std::size_t n, bool /*overlap*/) {
        fuzz::expectation<V> e;
        e.valid = fuzz::check_header<V>(p, 1, n).ok && p.size() == 16 + n * sizeof(V);
        if (!e.valid) return e;
        e.values.resize(n);
        for (std::size_t k = 0; k < n; ++k)
            e.values[k] = fuzz::load<V>(p.data() + 16 + k * sizeof(V));
        return e;
    }

    /// The exact-reconstruction capability (write_raw_header / check_raw_payload) must agree
    /// with decode.
    template <class V>
    static void extra_decode_checks(std::span<const std::byte> p, std::size_t n) {
        const swarmsgd::identity_quantizer<V> q;
        const bool valid = oracle<V>(p, {}, n, false).valid;
        bool accepted = true;
        try {
            q.check_raw_payload(p, n);
        } catch (const swarmsgd::message_error&) {
            accepted = false;
        } catch (const swarmsgd::size_mismatch_error&) {
            accepted = false;
        }
        FUZZ_CHECK(accepted == valid, "identity check_raw_payload %s a payload decode %s",
                   accepted ? "accepts" : "rejects", valid ? "accepts" : "rejects");
        if (n <= fuzz::max_elements) {
            std::vector<std::byte> h(q.max_encoded_size(n) - n * sizeof(V));
            q.write_raw_header(h, n);
            FUZZ_CHECK(h.size() == 16 && fuzz::check_header<V>(h, 1, n).ok, "raw header");
        }
    }

    template <class V>
    static void roundtrip(const fuzz::prefix& p, std::vector<V> x) {
        auto q = make<V>(p.cfg);
        const std::vector<V> original = x;
        std::vector<std::byte> payload;
        if (!fuzz::checked_encode(q, x, payload, p.b5, name)) {
            fuzz::fail_at(__FILE__, __LINE__, "identity encode threw");
        }
        FUZZ_CHECK(fuzz::all_bits_equal<V>(x, original), "identity encode changed its input");
        const auto want = oracle<V>(payload, {}, x.size(), false);
        std::vector<V> out(x.size());
        const auto r = fuzz::must_decode<decltype(q), V>(q, payload, {}, out, name);
        fuzz::check_success<V>(want, out, r, "identity round trip");
        FUZZ_CHECK(fuzz::all_bits_equal<V>(out, original), "identity round trip is not exact");
    }
};

}  // namespace

SWARMSGD_FUZZ_TARGET(identity_target)
