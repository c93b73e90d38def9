// `reef launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]
// -- reef pretrain ...` (start the local ranks) and `reef launch --slurm --nodes M
// --gpus-per-node G [...] -- reef pretrain ...` (write an sbatch script). The work is in
// parallel/launcher.
#include <iostream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/cli/subcommands.h"
#include "reef/parallel/launcher.h"

namespace reef::cli {

void add_launch(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand(
      "launch",
      "start the ranks of a distributed run on this node (or write a Slurm script): "
      "reef launch --nproc-per-node 2 -- reef pretrain --config X");
  auto local = std::make_shared<LaunchOptions>();
  auto slurm = std::make_shared<SlurmOptions>();
  auto use_slurm = std::make_shared<bool>(false);
  auto sbatch_file = std::make_shared<std::string>();
  auto command = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--nproc-per-node", local->nproc_per_node, "ranks to start on this node")
      ->capture_default_str();
  cmd->add_option("--nnodes", local->nnodes, "nodes in the run (one reef launch per node)")
      ->capture_default_str();
  cmd->add_option("--node-rank", local->node_rank, "this node's index, 0..nnodes-1")
      ->capture_default_str();
  cmd->add_option("--master-addr", local->master_addr, "rank 0's host (the rendezvous)")
      ->capture_default_str();
  cmd->add_option("--master-port", local->master_port,
                  "rendezvous TCP port; 0 picks a free one (single node)")
      ->capture_default_str();
  cmd->add_option("--grace-s", local->grace_s,
                  "seconds between SIGTERM and SIGKILL when stopping ranks")
      ->capture_default_str();
  cmd->add_flag("--slurm", *use_slurm,
                "print (or write with --sbatch-file) an sbatch script instead of running");
  cmd->add_option("--nodes", slurm->nodes, "--slurm: nodes")->capture_default_str();
  cmd->add_option("--gpus-per-node", slurm->gpus_per_node,
                  "--slurm: GPUs per node (one rank each); 0 = CPU nodes")
      ->capture_default_str();
  cmd->add_option("--tasks-per-node", slurm->tasks_per_node,
                  "--slurm: ranks per node; 0 = gpus-per-node (or 1)");
  cmd->add_option("--cpus-per-task", slurm->cpus_per_task,
                  "--slurm: CPUs per rank; 0 = Slurm's default");
  cmd->add_option("--partition", slurm->partition, "--slurm: partition");
  cmd->add_option("--account", slurm->account, "--slurm: account");
  cmd->add_option("--time", slurm->time, "--slurm: time limit (HH:MM:SS)");
  cmd->add_option("--job-name", slurm->job_name, "--slurm: job name")->capture_default_str();
  cmd->add_option("--sbatch-file", *sbatch_file,
                  "--slurm: write the script here instead of printing it");
  cmd->add_option("command", *command, "the command each rank runs, after --")->required();
  cmd->callback([&runs, local, slurm, use_slurm, sbatch_file, command] {
    runs.push_back([local, slurm, use_slurm, sbatch_file, command] {
      if (*use_slurm) {
        slurm->command = *command;
        if (local->master_port > 0) slurm->master_port = local->master_port;
        std::string script = slurm_script(*slurm);
        if (sbatch_file->empty()) {
          std::cout << script;
        } else {
          write_file_atomic(*sbatch_file, script);
          std::cerr << "reef launch: wrote " << *sbatch_file << " (submit with: sbatch "
                    << *sbatch_file << ")\n";
        }
        return 0;
      }
      local->command = *command;
      return launch_local(*local);
    });
  });
}

}  // namespace reef::cli
