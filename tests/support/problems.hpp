#pragma once
// Convex test problems with a known optimum, shared by the semantic tests.

#include <Eigen/Dense>
#include <atomic>
#include <cmath>
#include <mutex>
#include <span>
#include <vector>

#include <swarmsgd/model.hpp>
#include <swarmsgd/random.hpp>

namespace test_support {

/// Node i minimizes 0.5 ||x - c_i||^2 with c_i[k] = i + k: the swarm optimum is the mean.
struct quadratic {
    double gradient(std::size_t node, const std::vector<double>& x, std::span<double> g,
                    swarmsgd::rng&) const {
        double loss = 0;
        for (std::size_t k = 0; k < x.size(); ++k) {
            g[k] = x[k] - static_cast<double>(node + k);
            loss += 0.5 * g[k] * g[k];
        }
        return loss;
    }
};

/// Zero gradient: pure gossip.
struct zero_gradient {
    template <class M, class V>
    double gradient(std::size_t, const M&, std::span<V> g, swarmsgd::rng&) const {
        for (auto& v : g) v = 0;
        return 0;
    }
};

/// Linear regression (least squares), data split over n nodes, mini-batches of `batch` rows.
/// The optimum of the pooled objective is computed exactly from the normal equations.
struct least_squares {
    least_squares(std::size_t nodes, std::size_t rows_per_node, std::size_t dim, std::uint64_t seed,
                  std::size_t batch = 4)
        : n(nodes), m(rows_per_node), d(dim), batch(batch) {
        swarmsgd::rng r(seed);
        auto gauss = [&] {
            const double u1 = 1.0 - r.uniform01(), u2 = r.uniform01();
            return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
        };
        Eigen::VectorXd truth(d);
        for (auto& v : truth) v = gauss();
        A = Eigen::MatrixXd(n * m, d);
        b = Eigen::VectorXd(n * m);
        for (Eigen::Index i = 0; i < A.rows(); ++i) {
            for (Eigen::Index k = 0; k < A.cols(); ++k) A(i, k) = gauss();
            b[i] = A.row(i).dot(truth) + 0.1 * gauss();
        }
        optimum = (A.transpose() * A).ldlt().solve(A.transpose() * b);
    }
    template <class M, class V>
    double gradient(std::size_t node, const M& model, std::span<V> g, swarmsgd::rng& r) const {
        std::vector<double> x(d);
        swarmsgd::for_each_part(model, [&](auto part, std::size_t off) {
            for (std::size_t k = 0; k < part.size(); ++k) x[off + k] = part[k];
        });
        std::vector<double> acc(d, 0.0);
        double loss = 0;
        for (std::size_t s = 0; s < batch; ++s) {
            const auto row = static_cast<Eigen::Index>(node * m + r.uniform(m));
            double pred = 0;
            for (std::size_t k = 0; k < d; ++k) pred += A(row, Eigen::Index(k)) * x[k];
            const double err = pred - b[row];
            loss += 0.5 * err * err;
            for (std::size_t k = 0; k < d; ++k) acc[k] += err * A(row, Eigen::Index(k));
        }
        for (std::size_t k = 0; k < d; ++k) g[k] = static_cast<V>(acc[k] / double(batch));
        return loss / double(batch);
    }
    std::size_t n, m, d, batch;
    Eigen::MatrixXd A;
    Eigen::VectorXd b;
    Eigen::VectorXd optimum;
};

/// L2-regularized logistic regression, labels in {0,1}; optimum by Newton's method.
struct logistic {
    logistic(std::size_t nodes, std::size_t rows_per_node, std::size_t dim, std::uint64_t seed,
             double l2 = 0.01, std::size_t batch = 4)
        : n(nodes), m(rows_per_node), d(dim), lambda(l2), batch(batch) {
        swarmsgd::rng r(seed);
        auto gauss = [&] {
            const double u1 = 1.0 - r.uniform01(), u2 = r.uniform01();
            return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
        };
        Eigen::VectorXd truth(d);
        for (auto& v : truth) v = gauss();
        A = Eigen::MatrixXd(n * m, d);
        y = Eigen::VectorXd(n * m);
        for (Eigen::Index i = 0; i < A.rows(); ++i) {
            for (Eigen::Index k = 0; k < A.cols(); ++k) A(i, k) = gauss();
            const double p = 1 / (1 + std::exp(-A.row(i).dot(truth)));
            y[i] = r.uniform01() < p ? 1.0 : 0.0;
        }
        optimum = Eigen::VectorXd::Zero(d);
        for (int it = 0; it < 50; ++it) {
            const Eigen::VectorXd p = (1.0 / (1.0 + (-(A * optimum)).array().exp())).matrix();
            const Eigen::VectorXd grad =
                A.transpose() * (p - y) / double(A.rows()) + lambda * optimum;
            const Eigen::VectorXd w = (p.array() * (1 - p.array())).matrix();
            Eigen::MatrixXd H = A.transpose() * w.asDiagonal() * A / double(A.rows());
            H.diagonal().array() += lambda;
            optimum -= H.ldlt().solve(grad);
        }
    }
    template <class M, class V>
    double gradient(std::size_t node, const M& model, std::span<V> g, swarmsgd::rng& r) const {
        std::vector<double> x(d);
        swarmsgd::for_each_part(model, [&](auto part, std::size_t off) {
            for (std::size_t k = 0; k < part.size(); ++k) x[off + k] = part[k];
        });
        std::vector<double> acc(d, 0.0);
        double loss = 0;
        for (std::size_t s = 0; s < batch; ++s) {
            const auto row = static_cast<Eigen::Index>(node * m + r.uniform(m));
            double z = 0;
            for (std::size_t k = 0; k < d; ++k) z += A(row, Eigen::Index(k)) * x[k];
            const double p = 1 / (1 + std::exp(-z));
            loss += -(y[row] * std::log(p + 1e-12) + (1 - y[row]) * std::log(1 - p + 1e-12));
            for (std::size_t k = 0; k < d; ++k) acc[k] += (p - y[row]) * A(row, Eigen::Index(k));
        }
        for (std::size_t k = 0; k < d; ++k)
            g[k] = static_cast<V>(acc[k] / double(batch) + lambda * x[k]);
        return loss / double(batch);
    }
    std::size_t n, m, d;
    double lambda;
    std::size_t batch;
    Eigen::MatrixXd A;
    Eigen::VectorXd y;
    Eigen::VectorXd optimum;
};

/// Wraps a problem and records, per node, the sum of the gradients it returned, so a test
/// knows every update plain SGD (no momentum, no weight decay) applied: -lr * sum.
template <class Problem>
struct recording {
    recording(Problem& p, std::size_t nodes, std::size_t dim)
        : inner(&p), sums(nodes, std::vector<double>(dim, 0.0)) {}
    template <class M, class V>
    double gradient(std::size_t node, const M& x, std::span<V> g, swarmsgd::rng& r) {
        const double loss = inner->gradient(node, x, g, r);
        for (std::size_t k = 0; k < g.size(); ++k) sums[node][k] += static_cast<double>(g[k]);
        return loss;
    }
    Problem* inner;
    std::vector<std::vector<double>> sums;  // one writer per row: node i's own thread
};

}  // namespace test_support
