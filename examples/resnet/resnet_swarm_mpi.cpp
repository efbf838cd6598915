// resnet_swarm with one Swarm SGD node per MPI rank (any MPI library):
//   mpiexec -n 4 ./resnet_swarm_mpi [--dataset fashion-mnist|cifar10|cifar100] [--epochs 1] ...
// (Open MPI as root: add --allow-run-as-root; more ranks than cores: --oversubscribe.)
// Same options as resnet_swarm except --nodes: the swarm has one node per rank. Under MPI only:
// --algorithm allreduce|local runs a baseline of <swarmsgd/baselines.hpp> instead (allreduce
// SGD, local SGD with --period H) on the same data, model and schedule, and --export-plan DIR
// writes what every rank would train on for bench/ddp_resnet20.py (PyTorch DDP) and exits.
// At the end every rank's time is split into computing (gradients and optimizer), communicating
// (inside the node's calls) and waiting (blocked until a collective completes):
//   rank_times rank=<r> compute=<s> communicate=<s> wait=<s> wall=<s> steps=<n>
//
// Per-epoch evaluation without a global round: when a rank ends an epoch it starts a
// NON-BLOCKING reduction (MPI_Ireduce) of its model and counters to rank 0 and goes on
// training, testing the request after each step. The reduction completes once every rank has
// reached that epoch; rank 0 then hands the sum to an evaluator thread (mean model, Gamma,
// test accuracy of the mean and of rank 0's own snapshot), which makes no MPI call.
#include <swarmsgd/baselines.hpp>
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../common/checks.hpp"
#include "../common/mpi_reductions.hpp"
#include "train/epoch_monitor.hpp"
#include "train/epoch_record.hpp"
#include "train/evaluation.hpp"
#include "train/mpi_program.hpp"
#include "train/options.hpp"
#include "train/plan_export.hpp"
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
    double reached = 0;  // when this rank reached the boundary (seconds since the start)
    std::vector<double> send, receive;                    // model elements, then the counters
    std::vector<float> own;                               // rank 0: its own snapshot
    swarmsgd::examples::mpi_reductions::request request;  // the reduction in flight
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

// Where one rank's time goes (its rank_times line).
struct time_split {
    double compute = 0;      // gradients (forward, backward) and the optimizer's steps
    double communicate = 0;  // inside the node's calls, less the optimizer steps they take
    double wait = 0;         // blocked until a collective completes, less the optimizer steps
};

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// One local step's exchange: begin_step, then for the synchronous baselines complete_step,
// timed apart; the optimizer's own time inside them counts as computing.
template <class Node>
void exchange(Node& node, std::span<const float> grad, time_split& t) {
    const double optimizer_before = node.stats().seconds_optimizer;
    const auto t0 = std::chrono::steady_clock::now();
    node.begin_step(grad);
    auto t1 = std::chrono::steady_clock::now();
    double optimizer = node.stats().seconds_optimizer;
    t.communicate += seconds_between(t0, t1) - (optimizer - optimizer_before);
    if constexpr (requires { node.complete_step(); }) {
        node.complete_step();
        const auto t2 = std::chrono::steady_clock::now();
        const double after = node.stats().seconds_optimizer;
        t.wait += seconds_between(t1, t2) - (after - optimizer);
        optimizer = after;
    }
    t.compute += optimizer - optimizer_before;
}

// Builds the node of --algorithm over `model` and calls body(node): swarm_node, or a baseline
// with the same optimizer, schedule and timeouts. The baselines put the quantizer on the ring's
// wire (identity: the native MPI_Iallreduce).
template <class Quant, class Body>
int with_node(const rn::run_options& o, std::vector<float>& model, swarmsgd::mpi_communicator& comm,
              const swarmsgd::topology& graph, const swarmsgd::swarm_options& options,
              Quant quantizer, Body body) {
    if (o.algorithm == "swarm") {
        swarmsgd::swarm_node node(model, comm, graph, options, std::move(quantizer));
        return body(node);
    }
    auto common = [&](auto& b) {
        b.sgd = options.sgd;
        b.seed = o.seed;
        b.timeout = options.reply_timeout;
        b.shutdown_timeout = options.shutdown_timeout;
    };
    if (o.algorithm == "allreduce") {
        swarmsgd::allreduce_sgd_options a;
        common(a);
        swarmsgd::allreduce_sgd_node node(model, comm, graph, a, std::move(quantizer));
        return body(node);
    }
    swarmsgd::local_sgd_options l;
    common(l);
    l.period = o.period;
    swarmsgd::local_sgd_node node(model, comm, graph, l, std::move(quantizer));
    return body(node);
}

// The integer in `path` (--traffic-counter); usage_error naming the file if it has none.
unsigned long long read_counter(const std::string& path) {
    std::ifstream in(path);
    unsigned long long value = 0;
    if (!(in >> value))
        throw rn::usage_error("--traffic-counter " + path + " holds no byte counter");
    return value;
}

// "Swarm SGD on ring, nonblocking averaging, H = 2, quantizer lattice8" and the like.
template <class Node>
std::string describe(const rn::run_options& o, const Node& node,
                     const swarmsgd::swarm_options& options, const swarmsgd::topology& graph) {
    using swarmsgd::examples::concat;
    if constexpr (requires { node.engine(); }) {
        const std::string wire = node.engine().native()
                                     ? std::string("MPI_Iallreduce")
                                     : concat("a ring with quantizer ", o.quantizer);
        if (o.algorithm == "allreduce")
            return concat("allreduce SGD (the mean gradient every step, over ", wire, ")");
        return concat("local SGD (the mean model every ", o.period, " steps, over ", wire, ")");
    } else {
        return concat("Swarm SGD on ", graph.name(), ", ", o.mode,
                      " averaging, H = ", options.steps.describe(), ", quantizer ", o.quantizer);
    }
}

template <class Quant>
int train(const rn::run_options& o, swarmsgd::mpi_communicator& comm, Quant quantizer) {
    const std::size_t rank = comm.rank(), n = comm.size();
    const bool root = rank == 0;
    // The example's own collectives (evaluation reductions), checked, on a communicator of
    // their own (constructing it is collective).
    swarmsgd::examples::mpi_reductions reductions;
    const rn::training_data d = rn::load_training_data(o);
    if (n > d.train.count())
        throw rn::usage_error(swarmsgd::examples::concat(n, " ranks exceed the ", d.train.count(),
                                                         " training images"));
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
    if (!o.export_plan.empty()) {
        rn::export_plan(o, d, config, plan, rank, n, model, trainer.net.trainable_count());
        reductions.barrier();
        if (root)
            std::printf("Plan of %zu ranks x %zu steps of batch %d written to %s\n", n,
                        plan.steps_per_node, o.batch,
                        std::filesystem::absolute(o.export_plan).c_str());
        return 0;
    }
    return with_node(o, model, comm, graph, options, std::move(quantizer), [&](auto& node) {
        if (root)
            std::printf(
                "%s: %zu MPI ranks\n"
                "ResNet-%d (width %d, %zu parameters) on %s: %zu training images, %zu test images; "
                "batch %d per rank, lr %g (%s), %g epochs = %zu local steps per rank\n",
                describe(o, node, options, graph).c_str(), n, config.depth, config.base_width,
                params, d.train.name.c_str(), d.train.count(), d.test.count(), o.batch, o.lr,
                o.schedule.c_str(), o.epochs, plan.steps_per_node);

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
            r.acc_mean =
                static_cast<double>(rn::count_correct(*eval_net, s.models[0], d.test, d.norm, 0,
                                                      d.test.count(), eval_chunk)) /
                count;
            r.acc_node0 =
                static_cast<double>(rn::count_correct(*eval_net, s.models[1], d.test, d.norm, 0,
                                                      d.test.count(), eval_chunk)) /
                count;
            publish(r);
        });

        swarmsgd::rng data(o.seed, n + rank);  // as run_in_process: stream n + i
        std::deque<pending_epoch> pending;
        double loss_sum = 0, loss_count = 0, averaging_at = 0, time_at = 0, recent = -1;
        const unsigned long long traffic_at =
            root && !o.traffic_counter.empty() ? read_counter(o.traffic_counter) : 0;
        const auto start = std::chrono::steady_clock::now();
        auto seconds = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        };
        // Rank 0: a reduced boundary, the mean model there at time `when`, to the evaluator.
        auto hand_over = [&](pending_epoch& p, double when) {
            rn::epoch_snapshot set;
            set.index = p.index;
            set.models.resize(2);
            partial[p.index] =
                record_of(p, params, static_cast<double>(n), plan, when, set.models[0]);
            set.models[1] = std::move(p.own);
            evaluator.submit(std::move(set));
        };
        auto collect = [&](bool wait) {
            while (!pending.empty()) {
                if (wait)
                    pending.front().request.wait();
                else if (!pending.front().request.test())
                    return;
                if (root) hand_over(pending.front(), seconds());
                pending.pop_front();
            }
        };
        // --deferred-evaluation: the boundaries' reductions after training, each timed at the
        // moment the last rank reached it.
        auto reduce_deferred = [&] {
            for (pending_epoch& p : pending) {
                reductions.sum_to_root(p.send, p.receive);
                const double last = reductions.max_to_root(p.reached);
                if (root) hand_over(p, last);
            }
            pending.clear();
        };
        // The model (in double) and the counters since the last boundary, to be reduced; starts
        // the next period's counters.
        auto pack = [&](double now) {
            std::vector<double> send(params + c_count);
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
            c[c_seconds] = now - time_at;
            loss_sum = loss_count = 0;
            averaging_at = node.stats().seconds_averaging;
            time_at = now;
            return send;
        };
        time_split times;
        for (std::size_t s = 0; s < plan.steps_per_node; ++s) {
            const auto computing = std::chrono::steady_clock::now();
            const double loss = trainer.step(model, grad, data);
            times.compute += seconds_between(computing, std::chrono::steady_clock::now());
            exchange(node, std::span<const float>(grad), times);
            loss_sum += loss;
            loss_count += 1;
            recent = recent < 0 ? loss : 0.9 * recent + 0.1 * loss;
            for (std::size_t k = 0; k + 1 < plan.boundaries.size(); ++k) {
                if (s + 1 != plan.boundaries[k]) continue;
                const double now = seconds();
                pending_epoch p;
                p.index = k;
                p.send = pack(now);
                if (root) {
                    p.receive.resize(p.send.size());
                    p.own = model;
                }
                p.reached = now;
                pending.push_back(std::move(p));
                if (o.deferred_evaluation) continue;
                pending_epoch& q = pending.back();
                q.request = reductions.start_sum_to_root(q.send, q.receive);
            }
            if (!o.deferred_evaluation) collect(false);
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
        const double wall = seconds();
        if (root && !o.traffic_counter.empty())
            std::printf("traffic bytes=%llu\n", read_counter(o.traffic_counter) - traffic_at);
        if (o.deferred_evaluation)
            reduce_deferred();
        else
            collect(true);
        if (root) {
            bar->finish();
            evaluator.stop();
        }

        // The last row: the final models (after finish()), one blocking reduction at the end.
        const std::vector<double> send = pack(wall);
        std::vector<double> receive(root ? send.size() : 0);
        reductions.sum_to_root(send, receive);
        double total_averaging = 0, mine = node.stats().seconds_averaging / wall;
        reductions.sum_to_root(std::span<const double>(&mine, 1),
                               std::span<double>(&total_averaging, root ? 1 : 0));
        const double split[4] = {times.compute, times.communicate, times.wait, wall};
        std::vector<double> splits(root ? 4 * n : 0);
        reductions.gather_to_root(split, splits);
        if (!root) return 0;
        for (std::size_t r = 0; r < n; ++r)
            std::printf(
                "rank_times rank=%zu compute=%.3f communicate=%.3f wait=%.3f wall=%.3f "
                "steps=%zu\n",
                r, splits[4 * r], splits[4 * r + 1], splits[4 * r + 2], splits[4 * r + 3],
                plan.steps_per_node);

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
        const std::string algorithm = o.algorithm == "swarm"       ? "Swarm SGD"
                                      : o.algorithm == "allreduce" ? "allreduce SGD"
                                                                   : "local SGD";
        rn::report_outputs(o.csv, o.plot,
                           algorithm + ", " + std::to_string(n) + " MPI ranks, " + o.quantizer +
                               ", ResNet-" + std::to_string(config.depth) + " on " + d.train.name,
                           records);
        std::printf("Test accuracy: mean model %.2f%%, rank 0 %.2f%%\n", 100 * r.acc_mean,
                    100 * r.acc_node0);
        return 0;
    });
}

}  // namespace

int main(int argc, char** argv) {
    return rn::mpi_main(argc, argv, "resnet_swarm_mpi", rn::run_options{},
                        [](const rn::run_options& o) {
                            swarmsgd::mpi_communicator comm;
                            return rn::with_quantizer(
                                o.quantizer, [&](auto q) { return train(o, comm, std::move(q)); });
                        });
}
