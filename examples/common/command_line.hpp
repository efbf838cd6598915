#pragma once
// The examples' command-line reader: one option at a time, with checked numbers and choices.
// Every invalid option is a usage_error whose message names the option and the value given;
// each program prints it with its usage text and exits with status 2.
//
//   command_line args(argc, argv);
//   while (args.next()) {
//       if (args.is("--nodes")) nodes = args.whole_number(1, 4096);
//       else if (args.is("--mode")) mode = args.choice({"nonblocking", "blocking", "pull"});
//       else if (args.is("--geometric")) geometric = true;
//       else args.unknown();
//   }

#include <swarmsgd/errors.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "checks.hpp"

namespace swarmsgd::examples {

/// An invalid command line.
class usage_error : public invalid_argument_error {
public:
    using invalid_argument_error::invalid_argument_error;
};

/// Throws usage_error(what).
[[noreturn]] inline void bad_usage(const std::string& what) { throw usage_error(what); }

/// Walks argv (argv[0], the program, is skipped).
class command_line {
public:
    command_line(int argc, const char* const* argv) : argc_(argc), argv_(argv) {}

    /// Moves to the next option; false when there is none left.
    bool next() {
        if (++i_ >= argc_) return false;
        option_ = argv_[i_];
        return true;
    }
    /// The current option, e.g. "--nodes".
    [[nodiscard]] const std::string& option() const noexcept { return option_; }
    /// True when the current option is `name`.
    [[nodiscard]] bool is(const char* name) const { return option_ == name; }

    /// The option's value (the next argument).
    [[nodiscard]] std::string value() {
        if (i_ + 1 >= argc_) bad_usage("option " + option_ + " needs a value");
        return argv_[++i_];
    }
    /// The option's value as a finite number in [lo, hi].
    [[nodiscard]] double number(double lo, double hi) { return parse(lo, hi, false); }
    /// The option's value as a whole number in [lo, hi].
    [[nodiscard]] double whole_number(double lo, double hi) { return parse(lo, hi, true); }
    /// The option's value, which must be one of `allowed`.
    [[nodiscard]] std::string choice(const std::vector<std::string>& allowed) {
        const std::string v = value();
        std::string list;
        for (const auto& a : allowed) {
            if (v == a) return v;
            list += (list.empty() ? "" : ", ") + a;
        }
        bad_usage("unknown " + option_ + " '" + v + "' (expected one of: " + list + ")");
    }
    /// The last value read (for messages of checks made after reading it).
    [[nodiscard]] std::string last_value() const { return argv_[i_]; }

    /// Throws usage_error "unknown option '<option>'".
    [[noreturn]] void unknown() const { bad_usage("unknown option '" + option_ + "'"); }

private:
    double parse(double lo, double hi, bool integer) {
        const std::string v = value();
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        const bool ok = end != v.c_str() && *end == '\0' && std::isfinite(d) && d >= lo &&
                        d <= hi && (!integer || d == std::floor(d));
        if (!ok)
            bad_usage(concat(option_, " needs ", integer ? "a whole number" : "a number", " in [",
                             lo, ", ", hi, "], got '", v, "'"));
        return d;
    }

    int argc_;
    const char* const* argv_;
    int i_ = 0;
    std::string option_;
};

}  // namespace swarmsgd::examples
