#pragma once
/// \file progress_bar.hpp
/// One progress line on stderr: bar, percentage, epoch, loss, images/s, the share of time
/// spent averaging and the ETA. On a terminal it is one line refreshed in place with \r
/// (at most 5 times a second); otherwise (a log file, CI) a plain line every `log_period`.
/// Thread-safe: any node's thread may call update(); a caller that finds another one
/// printing skips its update instead of waiting.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <string>

namespace swarmsgd::examples::resnet {

/// What the line shows.
struct progress_state {
    double fraction = 0;         ///< of the whole run, 0..1
    double epoch = 0;            ///< epochs done (fractional)
    double epochs = 0;           ///< epochs of the run
    double loss = 0;             ///< recent training loss
    double images_per_s = 0;     ///< over all nodes
    double averaging_share = 0;  ///< of the nodes' time, 0..1
};

/// "1h02m", "2m13s" or "42s".
[[nodiscard]] inline std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const long s = std::lround(seconds);
    char out[32];
    if (s >= 3600)
        std::snprintf(out, sizeof out, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        std::snprintf(out, sizeof out, "%ldm%02lds", s / 60, s % 60);
    else
        std::snprintf(out, sizeof out, "%lds", s);
    return out;
}

/// The progress line on a stream (stderr by default).
class progress_bar {
public:
    /// `tty` defaults to whether `out` is a terminal.
    explicit progress_bar(std::FILE* out = stderr, int tty = -1,
                          std::chrono::milliseconds log_period = std::chrono::seconds(10))
        : out_(out),
          tty_(tty < 0 ? isatty(fileno(out)) != 0 : tty != 0),
          log_period_(log_period),
          start_(std::chrono::steady_clock::now()) {}

    /// Seconds since construction.
    [[nodiscard]] double elapsed() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

    /// Shows `s` if the last line is old enough (or `force`). Never blocks on another printer.
    void update(const progress_state& s, bool force = false) {
        std::unique_lock lock(mutex_, std::try_to_lock);
        if (!lock.owns_lock()) return;
        const auto now = std::chrono::steady_clock::now();
        const auto period = tty_ ? std::chrono::milliseconds(200) : log_period_;
        if (!force && printed_ && now - last_ < period) return;
        last_ = now;
        printed_ = true;
        const std::string text = render(s, elapsed());
        if (tty_) {
            std::fprintf(out_, "\r%s\033[K", text.c_str());
            shown_ = true;
        } else {
            std::fprintf(out_, "%s\n", text.c_str());
        }
        std::fflush(out_);
    }

    /// Prints a whole line on `to` (stdout, say) without mangling the progress line: on a
    /// terminal the line is cleared first and redrawn by the next update.
    void print_line(const std::string& text, std::FILE* to = stdout) {
        std::lock_guard lock(mutex_);
        if (tty_ && shown_) {
            std::fprintf(out_, "\r\033[K");
            std::fflush(out_);
            shown_ = false;
        }
        std::fprintf(to, "%s\n", text.c_str());
        std::fflush(to);
    }

    /// Ends the progress line (a newline on a terminal).
    void finish() {
        std::lock_guard lock(mutex_);
        if (tty_ && shown_) std::fprintf(out_, "\n");
        shown_ = false;
        std::fflush(out_);
    }

    /// The text of the line for `s` after `elapsed` seconds.
    [[nodiscard]] static std::string render(const progress_state& s, double elapsed) {
        constexpr int width = 24;
        const double f = std::clamp(s.fraction, 0.0, 1.0);
        const int filled = static_cast<int>(f * width);
        const double eta = f > 0 ? elapsed * (1 - f) / f : NAN;
        char text[256];
        std::snprintf(text, sizeof text,
                      "[%.*s%*s] %5.1f%%  epoch %.2f/%g  loss %.3f  %.0f img/s  averaging %.1f%%  "
                      "ETA %s",
                      filled, "########################", width - filled, "", 100 * f, s.epoch,
                      s.epochs, s.loss, s.images_per_s, 100 * s.averaging_share,
                      format_duration(eta).c_str());
        return text;
    }

private:
    std::FILE* out_;
    bool tty_;
    std::chrono::milliseconds log_period_;
    std::chrono::steady_clock::time_point start_, last_{};
    bool printed_ = false;
    bool shown_ = false;
    std::mutex mutex_;
};

}  // namespace swarmsgd::examples::resnet
