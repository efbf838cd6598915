#pragma once
/// \file evaluation.hpp
/// Test accuracy of a parameter buffer (inference: BatchNorm with the running statistics
/// stored in the buffer).

#include <swarmsgd/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <thread>
#include <vector>

#include "../../common/checks.hpp"
#include "../data/batch_sampler.hpp"
#include "../data/image_dataset.hpp"
#include "../data/normalization.hpp"
#include "resnet.hpp"

namespace swarmsgd::examples::resnet {

/// Images of `set` in [first, last) that `net` classifies correctly with `params` (the
/// largest logit, ties to the lowest class), `chunk` images per predict() call (chunk must
/// not exceed the network's max_batch).
[[nodiscard]] inline std::size_t count_correct(resnet& net, std::span<const float> params,
                                               const image_dataset& set,
                                               const channel_normalization& norm, std::size_t first,
                                               std::size_t last, int chunk) {
    const std::size_t stride = set.image_bytes();
    const auto classes = static_cast<std::size_t>(net.config().classes);
    std::vector<float> images(static_cast<std::size_t>(chunk) * stride);
    std::vector<float> logits(static_cast<std::size_t>(chunk) * classes);
    std::size_t correct = 0;
    for (std::size_t begin = first; begin < last; begin += static_cast<std::size_t>(chunk)) {
        const std::size_t n = std::min(static_cast<std::size_t>(chunk), last - begin);
        for (std::size_t b = 0; b < n; ++b)
            normalize_image(set, set.image(begin + b), norm, images.data() + b * stride);
        net.predict(params, images.data(), static_cast<int>(n), logits.data());
        for (std::size_t b = 0; b < n; ++b) {
            const float* row = logits.data() + b * classes;
            const auto best = static_cast<std::int32_t>(std::max_element(row, row + classes) - row);
            if (best == set.labels[begin + b]) ++correct;
        }
    }
    return correct;
}

/// Fraction of `set` classified correctly by a network of configuration `config` with
/// `params`, using `threads` threads (one network each, `chunk` images per call). Throws
/// invalid_argument_error for an empty set.
[[nodiscard]] inline double test_accuracy(const resnet_config& config,
                                          std::span<const float> params, const image_dataset& set,
                                          const channel_normalization& norm, unsigned threads = 1,
                                          int chunk = 100) {
    swarmsgd::examples::require<invalid_argument_error>(set.count() > 0,
                                                        "test_accuracy: ", set.name, " is empty");
    threads = std::max(1U, std::min<unsigned>(threads, static_cast<unsigned>(set.count())));
    std::vector<std::size_t> correct(threads, 0);
    std::vector<std::exception_ptr> errors(threads);
    auto work = [&](unsigned t) {
        try {
            resnet net(config, chunk);
            const std::size_t first = set.count() * t / threads;
            const std::size_t last = set.count() * (t + 1) / threads;
            correct[t] = count_correct(net, params, set, norm, first, last, chunk);
        } catch (...) {
            errors[t] = std::current_exception();
        }
    };
    if (threads == 1) {
        work(0);
    } else {
        std::vector<std::jthread> pool;
        for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work, t);
    }
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
    std::size_t total = 0;
    for (std::size_t c : correct) total += c;
    return static_cast<double>(total) / static_cast<double>(set.count());
}

}  // namespace swarmsgd::examples::resnet
