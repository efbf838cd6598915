// libFuzzer target: detail::read_fallback (the full-precision fallback section that follows a
// reply's quantized payload, and a fixup message's payload) and copy_fallback_values, for
// float and double models.
// Input: byte 0 bit 0: V = double; bytes 1-2: model size (u16, mod max_elements + 1);
// bytes 3.. the section. An independent check of the documented format says whether the
// section must be accepted; an accepted one is copied into a sentinel-filled, exactly sized
// model (ASan bounds) and must write exactly its ranges, with the values that follow the
// range table.
#include <swarmsgd/detail/fallback.hpp>

#include "fuzz_common.hpp"

namespace {

using fuzz::load;

template <class V>
void run(std::span<const std::byte> in, std::size_t size) {
    // Independent reading: u32 count | count * (u64 begin, u64 end, u8 0/1) | values.
    bool valid = in.size() >= 4;
    std::vector<swarmsgd::detail::fallback_range> ranges;
    std::size_t elements = 0;
    if (valid) {
        const std::uint64_t count = load<std::uint32_t>(in.data());
        valid = 4 + count * 17 <= in.size();
        std::uint64_t previous_end = 0;
        for (std::uint64_t i = 0; valid && i < count; ++i) {
            const std::byte* p = in.data() + 4 + 17 * i;
            const auto begin = load<std::uint64_t>(p), end = load<std::uint64_t>(p + 8);
            const unsigned fix = load<std::uint8_t>(p + 16);
            valid = fix <= 1 && begin < end && end <= size && begin >= previous_end;
            previous_end = end;
            elements += static_cast<std::size_t>(end - begin);
            ranges.push_back(
                {static_cast<std::size_t>(begin), static_cast<std::size_t>(end), fix == 1});
        }
        valid = valid && in.size() == 4 + count * 17 + elements * sizeof(V);
    }
    swarmsgd::detail::fallback_section s;
    try {
        s = swarmsgd::detail::read_fallback<V>(in, size, "fuzz");
    } catch (const swarmsgd::message_error& e) {
        FUZZ_CHECK(!valid, "read_fallback rejected a valid section: %s", e.what());
        return;
    }
    FUZZ_CHECK(valid, "read_fallback accepted an invalid section (%zu bytes, model %zu)", in.size(),
               size);
    FUZZ_CHECK(s.ranges == ranges, "read_fallback misreports the ranges");
    FUZZ_CHECK(s.values == in.data() + 4 + 17 * ranges.size(), "values pointer");
    FUZZ_CHECK(swarmsgd::detail::range_elements(s.ranges) == elements, "range_elements");
    std::vector<V> out(size, fuzz::sentinel<V>());
    swarmsgd::detail::copy_fallback_values<V>(s, std::span<V>(out));
    std::size_t next = 0, offset = 0;
    for (const auto& r : ranges) {
        for (std::size_t k = next; k < r.begin; ++k)
            FUZZ_CHECK(fuzz::bits(out[k]) == fuzz::bits(fuzz::sentinel<V>()),
                       "element %zu outside every range was written", k);
        for (std::size_t k = r.begin; k < r.end; ++k, ++offset)
            FUZZ_CHECK(fuzz::bits(out[k]) == fuzz::bits(load<V>(s.values + offset * sizeof(V))),
                       "element %zu of range [%zu, %zu) has the wrong value", k, r.begin, r.end);
        next = r.end;
    }
    for (std::size_t k = next; k < size; ++k)
        FUZZ_CHECK(fuzz::bits(out[k]) == fuzz::bits(fuzz::sentinel<V>()),
                   "element %zu after the last range was written", k);
    // append_fallback writes the same section back.
    std::vector<std::byte> again;
    std::vector<V> model(size, V(0));
    swarmsgd::detail::copy_fallback_values<V>(s, std::span<V>(model));
    swarmsgd::detail::append_fallback<V>(again, s.ranges, std::span<const V>(model));
    FUZZ_CHECK(again.size() == in.size() &&
                   (in.empty() || std::memcmp(again.data(), in.data(), in.size()) == 0),
               "append_fallback(read_fallback(s)) differs from s");
}

void write_seeds(const std::filesystem::path& dir) {
    fuzz::seed_writer w(dir);
    for (const std::uint8_t type : {std::uint8_t{0}, std::uint8_t{1}}) {
        const std::size_t width = type == 0 ? 4 : 8;
        const std::size_t size = 300;
        const std::vector<std::vector<swarmsgd::detail::fallback_range>> sets = {
            {},
            {{0, 1, false}},
            {{0, 256, true}, {256, 300, false}},
            {{8, 16, false}, {40, 48, true}, {299, 300, false}}};
        for (const auto& ranges : sets) {
            std::vector<std::byte> section;
            if (width == 4) {
                std::vector<float> model(size);
                for (std::size_t k = 0; k < size; ++k) model[k] = float(k) * 0.5f;
                swarmsgd::detail::append_fallback<float>(section, ranges, model);
            } else {
                std::vector<double> model(size);
                for (std::size_t k = 0; k < size; ++k) model[k] = double(k) * 0.25;
                swarmsgd::detail::append_fallback<double>(section, ranges, model);
            }
            std::vector<std::uint8_t> in = {type, static_cast<std::uint8_t>(size & 0xFF),
                                            static_cast<std::uint8_t>(size >> 8)};
            const auto* b = reinterpret_cast<const std::uint8_t*>(section.data());
            in.insert(in.end(), b, b + section.size());
            w.add(in);
        }
    }
    std::fprintf(stderr, "swarmsgd fuzz (fallback): wrote %zu seeds to %s\n", w.count(),
                 dir.string().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("SWARMSGD_FUZZ_SEED_DIR"); dir != nullptr && *dir != 0)
        write_seeds(dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const bool is_double = (data[0] & 1u) != 0;
    const std::size_t model =
        (std::size_t{data[1]} | std::size_t{data[2]} << 8) % (fuzz::max_elements + 1);
    const fuzz::payload_buffer buf(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data) + 3, size - 3),
        data[0] >> 1);
    if (is_double)
        run<double>(buf.span(), model);
    else
        run<float>(buf.span(), model);
    return 0;
}
