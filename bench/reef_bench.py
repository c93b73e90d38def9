"""Helpers shared by the bench scripts: running reef, reading a run's metrics, and the default paths.

The scripts run as `python bench/<name>.py`, so this module is found beside them.
"""
import json, os, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REEF = os.path.join(ROOT, "build/bin/reef")


def run(cmd, cwd=ROOT):
    """Runs cmd to completion (exits with its output tail if it fails); returns (output, peak RSS
    in bytes of that process alone)."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(cmd)}\n{out[-3000:]}")
    return out, usage.ru_maxrss * 1024  # Linux reports KiB


def step_rows(run_dir):
    """The metrics.jsonl records of training steps (those with a loss)."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return [r for r in rows if "loss" in r]


def median_tokens_per_s(rows):
    """Median tokens/s over the steps after the first two (warm-up), or all when there are fewer."""
    return statistics.median(r["tokens_per_s"] for r in rows[2:] or rows)


def start_serve(argv, log_path):
    """Starts `reef serve` (argv, with --port 0) logging to log_path; returns (process, port).
    Exits with the log when it does not start listening."""
    import re, subprocess, sys, time
    log = open(log_path, "w+")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        log.seek(0)
        m = re.search(r"listening on http://[0-9.]+:(\d+)", log.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    log.seek(0)
    sys.exit("reef serve did not start:\n" + log.read())
