// resnet_torch_swarm with one node per MPI rank (any MPI library):
//   mpiexec -n 4 ./resnet_torch_swarm_mpi [--epochs 1] [--quantizer lattice8] ...   (--help: all)
// (Open MPI as root: add --allow-run-as-root; more ranks than cores: --oversubscribe.)
// Each rank trains its own torch::nn ResNet with its own torch::optim::SGD on its shard; after
// each step, node.after_local_step() averages with one random neighbour when H steps are due.
// Evaluation costs the training nothing: each rank keeps its model at every epoch boundary, and
// after training (and finish(), which has no collective) rank 0 receives their sums (one
// reduction per boundary) and evaluates the mean model and its own.
#include <swarmsgd/communicators/mpi.hpp>
#include <swarmsgd/swarmsgd.hpp>
#include <swarmsgd/torch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../common/mpi_reductions.hpp"
#include "../resnet/train/epoch_record.hpp"
#include "../resnet/train/mpi_program.hpp"
#include "../resnet/train/options.hpp"
#include "../resnet/train/plot.hpp"
#include "../resnet/train/progress_bar.hpp"
#include "../resnet/train/quantizer_choice.hpp"
#include "../resnet/train/schedule.hpp"
#include "../resnet/train/training_setup.hpp"
#include "torch_training.hpp"

namespace rn = swarmsgd::examples::resnet;
namespace tr = swarmsgd::examples::torch_resnet;
using swarmsgd::examples::concat;

namespace {

/// Trains this rank's node with `quantizer`; rank 0 reports. Returns the exit status.
template <class Quant>
int run(const rn::run_options& o, const rn::training_data& d, Quant quantizer) {
    swarmsgd::mpi_communicator comm;
    const std::size_t n = comm.size(), me = comm.rank();
    const bool root = me == 0;
    if (n > d.train.count())
        throw rn::usage_error(concat(n, " ranks exceed the ", d.train.count(), " training images"));
    at::set_num_threads(1);
    const rn::resnet_config config = rn::make_resnet_config(o, d.train);
    const rn::training_plan plan = rn::make_plan(o, d.train.count(), n);
    const swarmsgd::swarm_options options = tr::make_node_options(o, plan);
    const swarmsgd::topology graph = rn::make_topology(o.topology, n);
    const auto schedule = rn::make_schedule(o.schedule, plan.steps_per_node, plan.warmup_steps);

    std::vector<float> initial;
    {
        tr::resnet net = tr::make_module(config);
        tr::initialize(net, o.seed);  // same seed: the same model on every rank
        const swarmsgd::torch_model<float> view(*net);
        initial.resize(view.elements());
        gather(view, std::span<float>(initial));
    }
    tr::node_trainer trainer(
        config, o, rn::batch_sampler(rn::node_shard(d.train, me, n, o.seed), d.norm, o.augment),
        initial);
    if (root)
        std::printf(
            "Swarm SGD in LibTorch %s: %zu MPI ranks (torch::optim::SGD each) on %s, %s "
            "averaging, H = %g, quantizer %s\n"
            "ResNet-%d (width %d, torch::nn, %zu parameters) on %s: %zu training images, %zu "
            "test images; batch %d per rank, lr %g (%s), %g epochs = %zu local steps per rank\n",
            TORCH_VERSION, n, graph.name().c_str(), o.mode.c_str(), o.h, o.quantizer.c_str(),
            config.depth, config.base_width, initial.size(), d.train.name.c_str(), d.train.count(),
            d.test.count(), o.batch, o.lr, o.schedule.c_str(), o.epochs, plan.steps_per_node);
    std::fflush(stdout);

    std::unique_ptr<rn::progress_bar> bar;
    if (root) bar = std::make_unique<rn::progress_bar>();
    // At each boundary: this rank's model, the loss sum and count of the epoch, its bytes sent
    // and averaging seconds so far, and when it got there.
    struct boundary {
        std::vector<float> model;
        double loss_sum = 0, loss_count = 0, bytes = 0, averaging = 0, reached = 0;
    };
    std::vector<boundary> boundaries;
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    swarmsgd::node_stats stats;
    {
        swarmsgd::swarm_node node(trainer.model, comm, graph, options, std::move(quantizer));
        swarmsgd::rng random(o.seed ^ 0x746f726368ULL, me);  // the batches' stream
        double loss_sum = 0, loss_count = 0, recent = 0;
        for (std::size_t step = 0; step < plan.steps_per_node; ++step) {
            const double loss = trainer.step(schedule(step, o.lr), random);
            node.after_local_step();  // averaging, when due: the Swarm SGD part
            loss_sum += loss;
            ++loss_count;
            recent = step == 0 ? loss : 0.9 * recent + 0.1 * loss;
            if (step + 1 == plan.boundaries[boundaries.size()]) {
                boundary b;
                b.model.resize(initial.size());
                trainer.copy_model(b.model);
                b.loss_sum = loss_sum;
                b.loss_count = loss_count;
                b.bytes = static_cast<double>(node.stats().bytes_sent);
                b.averaging = node.stats().seconds_averaging;
                b.reached = seconds();
                boundaries.push_back(std::move(b));
                loss_sum = loss_count = 0;
            }
            if (root) {
                const double elapsed = std::max(seconds(), 1e-9);
                rn::progress_state st;
                st.fraction =
                    static_cast<double>(step + 1) / static_cast<double>(plan.steps_per_node);
                st.epochs = o.epochs;
                st.epoch = st.fraction * o.epochs;
                st.loss = recent;
                st.images_per_s = static_cast<double>((step + 1) * n) * o.batch / elapsed;
                st.averaging_share = node.stats().seconds_averaging / elapsed;
                bar->update(st, step + 1 == plan.steps_per_node);
            }
        }
        node.finish();
        stats = node.stats();
    }
    const double wall = seconds();
    if (root) bar->finish();
    // The final models replace the last boundary's (finish() applied the last averages).
    trainer.copy_model(boundaries.back().model);

    // Deferred evaluation: per boundary, the sum of the models and of the counters on rank 0.
    swarmsgd::examples::mpi_reductions reductions;
    std::unique_ptr<rn::epoch_csv> csv;
    std::unique_ptr<tr::evaluator> eval;
    if (root) {
        csv = std::make_unique<rn::epoch_csv>(o.csv);
        eval = std::make_unique<tr::evaluator>(config);
    }
    std::vector<rn::epoch_record> records;
    double previous_averaging = 0, previous_reached = 0;
    for (std::size_t k = 0; k < boundaries.size(); ++k) {
        const boundary& b = boundaries[k];
        const std::size_t p = initial.size();
        std::vector<double> send(p + 5), sum(root ? p + 5 : 0), squares(root ? p : 0);
        for (std::size_t j = 0; j < p; ++j) send[j] = b.model[j];
        send[p] = b.loss_sum;
        send[p + 1] = b.loss_count;
        send[p + 2] = b.bytes;
        send[p + 3] = b.averaging - previous_averaging;
        send[p + 4] = b.reached - previous_reached;
        previous_averaging = b.averaging;
        previous_reached = b.reached;
        reductions.sum_to_root(send, sum);
        // Gamma = sum_i ||x_i||^2 - n ||mean||^2.
        std::vector<double> sq(p);
        for (std::size_t j = 0; j < p; ++j) sq[j] = send[j] * send[j];
        reductions.sum_to_root(sq, squares);
        double reached = b.reached;
        MPI_Allreduce(MPI_IN_PLACE, &reached, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (!root) continue;
        std::vector<float> mean(p);
        double gamma = 0;
        for (std::size_t j = 0; j < p; ++j) {
            const double mu = sum[j] / static_cast<double>(n);
            mean[j] = static_cast<float>(mu);
            gamma += squares[j] - static_cast<double>(n) * mu * mu;
        }
        rn::epoch_record r;
        r.epoch = plan.epochs[k];
        r.train_loss = sum[p + 1] > 0 ? sum[p] / sum[p + 1] : 0;
        r.bytes_sent = static_cast<std::uint64_t>(sum[p + 2]);
        r.averaging_share = sum[p + 4] > 0 ? sum[p + 3] / sum[p + 4] : 0;
        r.seconds = k + 1 == boundaries.size() ? wall : reached;
        r.gamma = std::max(gamma, 0.0);
        r.acc_mean = eval->accuracy(mean, d.test, d.norm);
        r.acc_node0 = eval->accuracy(b.model, d.test, d.norm);
        records.push_back(r);
        csv->append(r);
        std::printf("%s\n", rn::describe(r).c_str());
    }
    unsigned long long local[2] = {stats.local_steps, stats.interactions_completed}, total[2] = {};
    MPI_Reduce(local, total, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    double averaging = stats.seconds_averaging, averaging_total = 0;
    MPI_Reduce(&averaging, &averaging_total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (!root) return 0;
    std::printf("Finished in %.1f s (%.0f images/s over all ranks), %zu parameters per model\n",
                wall, static_cast<double>(total[0]) * o.batch / wall, initial.size());
    std::printf("Interactions: %llu completed; averaging share of time %.2f%%\n", total[1],
                100 * averaging_total / (wall * static_cast<double>(n)));
    rn::report_outputs(o.csv, o.plot,
                       concat("Swarm SGD in LibTorch, ", n, " MPI ranks, ", o.quantizer,
                              ", ResNet-", config.depth, " on ", d.train.name),
                       records);
    std::printf("Test accuracy: mean model %.2f%%, rank 0 %.2f%%\n", 100 * records.back().acc_mean,
                100 * records.back().acc_node0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    rn::run_options defaults;
    defaults.csv = "resnet_torch_swarm_mpi.csv";
    defaults.plot = "resnet_torch_swarm_mpi.png";
    return rn::mpi_main(
        argc, argv, "resnet_torch_swarm_mpi", defaults, [](const rn::run_options& o) {
            if (o.algorithm != "swarm" || !o.export_plan.empty() || o.checkpoint_every != 0 ||
                o.resume)
                throw rn::usage_error(
                    "--algorithm, --export-plan, --checkpoint-every and --resume belong to "
                    "resnet_swarm_mpi (the Eigen example); this program runs Swarm SGD only");
            const rn::training_data d = rn::load_training_data(o);
            return rn::with_quantizer(o.quantizer, [&](auto q) { return run(o, d, std::move(q)); });
        });
}
