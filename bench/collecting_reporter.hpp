#pragma once
// The benchmarks' reporter: prints as google benchmark's console reporter does and keeps each
// run's time per iteration (seconds) and counters, keyed by (function name, size argument), so
// a program can print ratios against its memcpy baseline measured in the same run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

/// Collects runs; with repetitions, medians are used.
class collecting_reporter : public benchmark::ConsoleReporter {
public:
    using benchmark::ConsoleReporter::ConsoleReporter;

    void ReportRuns(const std::vector<Run>& runs) override {
        benchmark::ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            if (r.error_occurred) continue;
            // Every repetition is kept; with --benchmark_display_aggregates_only only the
            // aggregates arrive here, and then the "median" aggregate is used.
            auto* table = &runs_;
            if (r.run_type == Run::RT_Aggregate) {
                if (r.aggregate_name != "median") continue;
                table = &medians_;
            } else if (r.iterations <= 0) {
                continue;
            }
            std::size_t n = 0;
            try {
                n = static_cast<std::size_t>(std::stoull(r.run_name.args));
            } catch (const std::exception&) {
                continue;
            }
            const double to_seconds = 1.0 / benchmark::GetTimeUnitMultiplier(r.time_unit);
            auto& e = (*table)[{r.run_name.function_name, n}];
            e.seconds.push_back(r.GetAdjustedRealTime() * to_seconds);
            e.cpu_seconds.push_back(r.GetAdjustedCPUTime() * to_seconds);
            for (const auto& [name, counter] : r.counters)
                e.counters[name].push_back(counter.value);
        }
    }

    /// Median seconds per iteration of `name` at size n, or a negative value when not run.
    [[nodiscard]] double seconds(const std::string& name, std::size_t n) const {
        const entry* e = find(name, n);
        return e == nullptr ? -1.0 : median(e->seconds);
    }
    /// Median CPU seconds per iteration (meaningless for the manual-time benchmarks).
    [[nodiscard]] double cpu_seconds(const std::string& name, std::size_t n) const {
        const entry* e = find(name, n);
        return e == nullptr ? -1.0 : median(e->cpu_seconds);
    }
    /// Median of a counter, or a negative value when absent.
    [[nodiscard]] double counter(const std::string& name, std::size_t n,
                                 const std::string& counter_name) const {
        const entry* e = find(name, n);
        if (e == nullptr) return -1.0;
        const auto c = e->counters.find(counter_name);
        return c == e->counters.end() ? -1.0 : median(c->second);
    }
    /// Sum of a counter over the repetitions, negative when absent.
    [[nodiscard]] double counter_sum(const std::string& name, std::size_t n,
                                     const std::string& counter_name) const {
        const entry* e = find(name, n);
        if (e == nullptr) return -1.0;
        const auto c = e->counters.find(counter_name);
        if (c == e->counters.end()) return -1.0;
        double s = 0;
        for (const double v : c->second) s += v;
        return s;
    }
    /// Model sizes that have a memcpy baseline.
    [[nodiscard]] std::vector<std::size_t> sizes_run() const {
        std::vector<std::size_t> out;
        for (const auto* table : {&runs_, &medians_})
            for (const auto& [key, value] : *table)
                if (key.first == "BM_memcpy" &&
                    std::find(out.begin(), out.end(), key.second) == out.end())
                    out.push_back(key.second);
        std::sort(out.begin(), out.end());
        return out;
    }

private:
    struct entry {
        std::vector<double> seconds;
        std::vector<double> cpu_seconds;
        std::map<std::string, std::vector<double>> counters;
    };
    static double median(std::vector<double> v) {
        if (v.empty()) return -1.0;
        std::sort(v.begin(), v.end());
        const std::size_t m = v.size() / 2;
        return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
    }
    using table_type = std::map<std::pair<std::string, std::size_t>, entry>;
    [[nodiscard]] const entry* find(const std::string& name, std::size_t n) const {
        for (const auto* table : {&runs_, &medians_}) {
            const auto it = table->find({name, n});
            if (it != table->end()) return &it->second;
        }
        return nullptr;
    }
    table_type runs_;     // one entry per repetition
    table_type medians_;  // "median" aggregates (only used when repetitions are not shown)
};
