#pragma once
/// \file plot.hpp
/// The PNG plot of a run's per-epoch CSV, drawn by gnuplot (Debian package gnuplot-nox):
/// training loss, test accuracy (mean model and node 0), consensus distance Gamma and the
/// averaging share of time, against the epoch. The gnuplot script is kept next to the PNG
/// (<png>.gp) so the figure can be redrawn or edited. gnuplot is $SWARMSGD_GNUPLOT if set,
/// else `gnuplot` on the PATH.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "epoch_record.hpp"

namespace swarmsgd::examples::resnet {

/// What plot_epochs() did.
struct plot_outcome {
    bool made = false;    ///< the PNG was written
    std::string message;  ///< why not, when !made
};

/// The gnuplot executable: $SWARMSGD_GNUPLOT if set (even if it does not exist, so a test can
/// take it away), else the first `gnuplot` on the PATH; "" when there is none.
[[nodiscard]] inline std::string find_gnuplot() {
    if (const char* env = std::getenv("SWARMSGD_GNUPLOT"); env != nullptr)
        return access(env, X_OK) == 0 ? std::string(env) : std::string();
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/gnuplot";
        if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

/// `s` as a single-quoted gnuplot string ('' stands for a quote inside).
[[nodiscard]] inline std::string gnuplot_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

/// `s` as a single-quoted shell word.
[[nodiscard]] inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

/// The gnuplot script that draws `csv` into `png` (2 x 2 panels). Gamma gets a log scale
/// when every row's Gamma is > 0 (a single node has Gamma = 0).
[[nodiscard]] inline std::string gnuplot_script(const std::string& csv, const std::string& png,
                                                const std::string& title,
                                                const std::vector<epoch_record>& rows) {
    bool log_gamma = !rows.empty();
    for (const auto& r : rows) log_gamma = log_gamma && r.gamma > 0;
    const std::string data = gnuplot_quote(csv);
    std::ostringstream s;
    s << "set datafile separator ','\n"
      << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
      << "    set terminal pngcairo size 1200,900 font ',10'\n"
      << "} else {\n"
      << "    set terminal png size 1200,900\n"
      << "}\n"
      << "set output " << gnuplot_quote(png) << "\n"
      << "set multiplot layout 2,2 title " << gnuplot_quote(title) << "\n"
      << "set grid\n"
      << "set key bottom right\n"
      << "set xlabel 'epoch'\n"
      << "set title 'training loss (mean over nodes)'\n"
      << "plot " << data << " skip 1 using 1:2 with linespoints pt 7 notitle\n"
      << "set title 'test accuracy (%)'\n"
      << "plot " << data
      << " skip 1 using 1:($3*100) with linespoints pt 7 title 'mean model', \\\n"
      << "     " << data << " skip 1 using 1:($4*100) with linespoints pt 5 title 'node 0'\n"
      << "set title 'consensus distance Gamma = sum_i |X_i - mean|^2'\n"
      << (log_gamma ? "set logscale y\n" : "") << "plot " << data
      << " skip 1 using 1:5 with linespoints pt 7 notitle\n"
      << "unset logscale y\n"
      << "set yrange [0:*]\n"
      << "set title 'share of the nodes'' time spent averaging (%)'\n"
      << "plot " << data << " skip 1 using 1:($7*100) with linespoints pt 7 notitle\n"
      << "unset multiplot\n";
    return s.str();
}

/// Draws `rows` (already written to `csv`) into `png` with gnuplot. Never throws for a missing
/// gnuplot: the outcome says what happened.
[[nodiscard]] inline plot_outcome plot_epochs(const std::string& csv, const std::string& png,
                                              const std::string& title,
                                              const std::vector<epoch_record>& rows) {
    plot_outcome out;
    const std::string gnuplot = find_gnuplot();
    if (gnuplot.empty()) {
        out.message =
            "gnuplot not found, no plot made (install it with: apt-get install gnuplot-nox)";
        return out;
    }
    const std::string script_path = png + ".gp";
    {
        std::ofstream script(script_path);
        script << gnuplot_script(csv, png, title, rows);
        if (!script) {
            out.message = "cannot write the gnuplot script " + script_path;
            return out;
        }
    }
    std::error_code ec;
    std::filesystem::remove(png, ec);
    const std::string command =
        shell_quote(gnuplot) + " " + shell_quote(script_path) + " > /dev/null 2>&1";
    const int status = std::system(command.c_str());
    if (status != 0 || !std::filesystem::exists(png, ec)) {
        out.message = "gnuplot failed (exit status " +
                      std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : status) +
                      "); run it by hand to see why: gnuplot " + script_path;
        return out;
    }
    out.made = true;
    return out;
}

/// What the programs print at the end about their files: where the CSV is, and the plot of
/// `rows` titled `title` (none when `png` is empty; when gnuplot is missing or fails, why).
inline void report_outputs(const std::string& csv, const std::string& png, const std::string& title,
                           const std::vector<epoch_record>& rows) {
    std::printf("Per-epoch results: %s\n", std::filesystem::absolute(csv).c_str());
    if (png.empty()) return;
    const plot_outcome p = plot_epochs(csv, png, title, rows);
    if (p.made)
        std::printf("Plot: %s\n", std::filesystem::absolute(png).c_str());
    else
        std::printf("Plot: none: %s; the figures are in the CSV above\n", p.message.c_str());
}

}  // namespace swarmsgd::examples::resnet
