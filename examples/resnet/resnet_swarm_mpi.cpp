// resnet_swarm with one Swarm SGD node per MPI rank (any MPI library):
//   mpiexec -n 4 ./resnet_swarm_mpi [--dataset fashion-mnist|cifar10|cifar100] [--epochs 1] ...
// (Open MPI as root: add --allow-run-as-root; more ranks than cores: --oversubscribe.)
// Same options as resnet_swarm except --nodes: the swarm has one node per rank.
//
// Per-epoch evaluation without a global round: when a rank ends an epoch it starts a
// NON-BLOCKING reduction (MPI_Ireduce) of its model and counters to rank 0 and goes on
// training, testing the request after each step. The reduction completes once every rank has
// reached that epoch; rank 0 then hands the sum to an evaluator thread (mean model, Gamma,
// test accuracy of the mean and of rank 0's own snapshot), which makes no MPI call.
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "train/epoch_monitor.hpp"
#include "train/epoch_record.hpp"
#include "train/evaluation.hpp"
#include "train/options.hpp"
#include "train/plot.hpp"
#include "train/progress_bar.hpp"
#include "train/quantizer_choice.hpp"
#include "train/resnet_problem.hpp"
#include "train/training_setup.hpp"

namespace rn = swarmsgd::examples::resnet;

namespace {

// Counters reduced with the model at an epoch boundary (after the model's elements).
enum counter : std::size_t {
    c_squared_norm,
    c_loss_sum,
    c_loss_count,
    c_bytes,
    c_averaging,
    c_seconds,
    c_count
};

// One epoch's reduction in flight.
struct pending_epoch {
    std::size_t index = 0;
    std::vector<double> send, receive;  // model elements, then the counters
    std::vector<float> own;             // rank 0: its own snapshot
    MPI_Request request = MPI_REQUEST_NULL;
};

// Turns a completed sum into an epoch_snapshot-like record on rank 0.
rn::epoch_record record_of(const pending_epoch& p, std::size_t params, double n,
                           const rn::training_plan& plan, double now, std::vector<float>& mean) {
    const double* c = p.receive.data() + params;
    rn::epoch_record r;
    r.epoch = plan.epochs[p.index];
    r.train_loss = c[c_loss_count] > 0 ? c[c_loss_sum] / c[c_loss_count] : 0;
    r.bytes_sent = static_cast<std::uint64_t>(c[c_bytes]);
    r.averaging_share = c[c_seconds] > 0 ? c[c_averaging] / c[c_seconds] : 0;
    r.seconds = now;
    mean.resize(params);
    double mean_norm = 0;
    for (std::size_t k = 0; k < params; ++k) {
        const double mu = p.receive[k] / n;
        mean[k] = static_cast<float>(mu);
        mean_norm += mu * mu;
    }
    // sum_i ||x_i - mu||^2 = sum_i ||x_i||^2 - n ||mu||^2 (in double; Gamma << the norms).
    r.gamma = std::max(c[c_squared_norm] - n * mean_norm, 0.0);
    return r;
}

template <class Quant>
int train(const rn::run_options& o, swarmsgd::mpi_communicator& comm, Quant quantizer) {
    const std::size_t rank = comm.rank(), n = comm.size();
    const bool root = rank == 0;
    const rn::training_data d = rn::load_training_data(o);
    if (n > d.train.count())
        throw rn::usage_error(
            swarmsgd::detail::concat(n, " ranks exceed the ", d.train.count(), " training images"));
    const rn::resnet_config config = rn::make_resnet_config(o, d.train);
    const rn::training_plan plan = rn::make_plan(o, d.train.count(), n);
    const swarmsgd::swarm_options options = rn::make_swarm_options(o, plan);
    const swarmsgd::topology graph = rn::make_topology(o.topology, n);

    rn::node_trainer trainer(
        config, o.batch,
        rn::batch_sampler(rn::node_shard(d.train, rank, n, o.seed), d.norm, o.augment),
        static_cast<float>(o.weight_decay));
    std::vector<float> model(trainer.net.parameter_count()), grad(model.size());
    trainer.net.initialize(model, o.seed);  // the same start on every rank
    const std::size_t params = model.size();
    if (root)
        std::printf(
            "Swarm SGD: %zu MPI ranks on %s, %s averaging, H = %s, quantizer %s\n"
            "ResNet-%d (width %d, %zu parameters) on %s: %zu training images, %zu test images; "
            "batch %d per rank, lr %g (%s), %g epochs = %zu local steps per rank\n",
            n, graph.name().c_str(), o.mode.c_str(), options.steps.describe().c_str(),
            o.quantizer.c_str(), config.depth, config.base_width, params, d.train.name.c_str(),
            d.train.count(), d.test.count(), o.batch, o.lr, o.schedule.c_str(), o.epochs,
            plan.steps_per_node);

    std::unique_ptr<rn::epoch_csv> csv;
    std::unique_ptr<rn::progress_bar> bar;
    if (root) {
        csv = std::make_unique<rn::epoch_csv>(o.csv);
        bar = std::make_unique<rn::progress_bar>();
    }
    std::vector<rn::epoch_record> records;
    constexpr int eval_chunk = 100;
    auto publish = [&](const rn::epoch_record& r) {
        records.push_back(r);
        csv->append(r);
        bar->print_line(rn::describe(r));
    };
    // Rank 0's evaluator thread; each set it gets holds the reduced mean (models[0]) and rank
    // 0's own snapshot (models[1]), the rest of the record is in partial[index].
    std::unique_ptr<rn::resnet> eval_net;
    std::vector<rn::epoch_record> partial(plan.boundaries.size());
    rn::epoch_monitor evaluator(1, {}, [&](rn::epoch_snapshot& s) {
        if (!eval_net) eval_net = std::make_unique<rn::resnet>(config, eval_chunk);
        rn::epoch_record r = partial[s.index];
        const double count = static_cast<double>(d.test.count());
        r.acc_mean = static_cast<double>(rn::count_correct(*eval_net, s.models[0], d.test, d.norm,
                                                           0, d.test.count(), eval_chunk)) /
                     count;
        r.acc_node0 = static_cast<double>(rn::count_correct(*eval_net, s.models[1], d.test, d.norm,
                                                            0, d.test.count(), eval_chunk)) /
                      count;
        publish(r);
    });

    swarmsgd::swarm_node node(model, comm, graph, options, std::move(quantizer));
    swarmsgd::rng data(o.seed, n + rank);  // as run_in_process: stream n + i
    std::deque<pending_epoch> pending;
    double loss_sum = 0, loss_count = 0, averaging_at = 0, time_at = 0, recent = -1;
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    auto collect = [&](bool wait) {
        while (!pending.empty()) {
            int done = 0;
            if (wait)
                MPI_Wait(&pending.front().request, MPI_STATUS_IGNORE), done = 1;
            else
                MPI_Test(&pending.front().request, &done, MPI_STATUS_IGNORE);
            if (!done) return;
            if (root) {
                pending_epoch& p = pending.front();
                rn::epoch_snapshot set;
                set.index = p.index;
                set.models.resize(2);
                partial[p.index] =
                    record_of(p, params, static_cast<double>(n), plan, seconds(), set.models[0]);
                set.models[1] = std::move(p.own);
                evaluator.submit(std::move(set));
            }
            pending.pop_front();
        }
    };
    for (std::size_t s = 0; s < plan.steps_per_node; ++s) {
        const double loss = trainer.step(model, grad, data);
        node.apply_gradient(grad);
        node.after_local_step();
        loss_sum += loss;
        loss_count += 1;
        recent = recent < 0 ? loss : 0.9 * recent + 0.1 * loss;
        for (std::size_t k = 0; k + 1 < plan.boundaries.size(); ++k) {
            if (s + 1 != plan.boundaries[k]) continue;
            const double now = seconds();
            pending_epoch p;
            p.index = k;
            p.send.resize(params + c_count);
            double norm = 0;
            for (std::size_t e = 0; e < params; ++e) {
                p.send[e] = model[e];
                norm += static_cast<double>(model[e]) * model[e];
            }
            double* c = p.send.data() + params;
            c[c_squared_norm] = norm;
            c[c_loss_sum] = loss_sum;
            c[c_loss_count] = loss_count;
            c[c_bytes] = static_cast<double>(node.stats().bytes_sent);
            c[c_averaging] = node.stats().seconds_averaging - averaging_at;
            c[c_seconds] = now - time_at;
            loss_sum = loss_count = 0;
            averaging_at = node.stats().seconds_averaging;
            time_at = now;
            if (root) {
                p.receive.resize(p.send.size());
                p.own = model;
            }
            pending.push_back(std::move(p));
            pending_epoch& q = pending.back();
            MPI_Ireduce(q.send.data(), root ? q.receive.data() : nullptr,
                        static_cast<int>(q.send.size()), MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD,
                        &q.request);
        }
        collect(false);
        if (root) {
            const double elapsed = std::max(seconds(), 1e-9);
            rn::progress_state st;
            st.fraction = static_cast<double>(s + 1) / static_cast<double>(plan.steps_per_node);
            st.epochs = o.epochs;
            st.epoch = st.fraction * o.epochs;
            st.loss = recent;
            st.images_per_s = static_cast<double>((s + 1) * n) * o.batch / elapsed;
            st.averaging_share = node.stats().seconds_averaging / elapsed;
            bar->update(st, s + 1 == plan.steps_per_node);
        }
    }
    node.finish();
    collect(true);
    const double wall = seconds();
    if (root) {
        bar->finish();
        evaluator.stop();
    }

    // The last row: the final models (after finish()), one blocking reduction at the end.
    std::vector<double> send(params + c_count), receive(root ? send.size() : 0);
    double norm = 0;
    for (std::size_t e = 0; e < params; ++e) {
        send[e] = model[e];
        norm += static_cast<double>(model[e]) * model[e];
    }
    double* c = send.data() + params;
    c[c_squared_norm] = norm;
    c[c_loss_sum] = loss_sum;
    c[c_loss_count] = loss_count;
    c[c_bytes] = static_cast<double>(node.stats().bytes_sent);
    c[c_averaging] = node.stats().seconds_averaging - averaging_at;
    c[c_seconds] = wall - time_at;
    MPI_Reduce(send.data(), root ? receive.data() : nullptr, static_cast<int>(send.size()),
               MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    double total_averaging = 0, mine = node.stats().seconds_averaging / wall;
    MPI_Reduce(&mine, &total_averaging, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (!root) return 0;

    pending_epoch last;
    last.index = plan.boundaries.size() - 1;
    last.receive = std::move(receive);
    std::vector<float> mean;
    rn::epoch_record r = record_of(last, params, static_cast<double>(n), plan, wall, mean);
    const unsigned threads = 1;  // the other ranks' cores may still be busy
    r.acc_mean = rn::test_accuracy(config, mean, d.test, d.norm, threads, eval_chunk);
    r.acc_node0 = rn::test_accuracy(config, model, d.test, d.norm, threads, eval_chunk);
    publish(r);
    std::printf(
        "Finished in %.1f s; averaging share of time %.2f%% (mean over ranks); bytes "
        "sent %s\n",
        wall, 100 * total_averaging / static_cast<double>(n),
        rn::format_bytes(static_cast<double>(r.bytes_sent)).c_str());
    std::printf("Per-epoch results: %s\n", std::filesystem::absolute(o.csv).c_str());
    if (!o.plot.empty()) {
        const std::string title = "Swarm SGD, " + std::to_string(n) + " MPI ranks, " + o.quantizer +
                                  ", ResNet-" + std::to_string(config.depth) + " on " +
                                  d.train.name;
        const rn::plot_outcome p = rn::plot_epochs(o.csv, o.plot, title, records);
        if (p.made)
            std::printf("Plot: %s\n", std::filesystem::absolute(o.plot).c_str());
        else
            std::printf("Plot: none: %s; the figures are in the CSV above\n", p.message.c_str());
    }
    std::printf("Test accuracy: mean model %.2f%%, rank 0 %.2f%%\n", 100 * r.acc_mean,
                100 * r.acc_node0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    swarmsgd::mpi_environment env(argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        const rn::run_options o = rn::parse_run_options(argc, argv, true);
        swarmsgd::mpi_communicator comm;
        return rn::with_quantizer(o.quantizer,
                                  [&](auto q) { return train(o, comm, std::move(q)); });
    } catch (const rn::usage_error& e) {
        if (rank == 0) {
            if (std::string(e.what()) == "help")
                std::printf("%s", rn::usage_text("resnet_swarm_mpi", true).c_str());
            else
                std::fprintf(stderr, "resnet_swarm_mpi: %s\n%s", e.what(),
                             rn::usage_text("resnet_swarm_mpi", true).c_str());
        }
        return std::string(e.what()) == "help" ? 0 : 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "resnet_swarm_mpi (rank %d): %s\n", rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}
