"""An experiment on the real stack, as the experiments issue's "done when" sets it: a
private Redis, daphne, one training worker with 2 processes and the evaluate worker, as
`make run` starts them; `POST /api/experiments/` with 2 configurations x 2 seeds and
1-minute budgets, over HTTP with a signed-in session and its CSRF token. It must finish
on its own, evaluate every run, and answer IQM, interval and a curve with its band per
configuration. With `--kill`, the training worker is SIGKILLed once a run trains, and a
new one started: no configuration may be lost or trained twice.

    .venv/bin/python bench/experiment_stack.py [--minutes 1] [--kill] [--data-dir DIR]

Prints the answer's figures as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.private_stack import private_stack
from tetris_site import stack

PASSWORD = "experiment-check-1"


def signed_in(base: str, username: str) -> requests.Session:
    """A browser-like session: signed in through the login form, with its CSRF token."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30)
    token = session.cookies["csrftoken"]
    answer = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    answer.raise_for_status()
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Referer": base})
    return session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=1.0, help="each run's budget")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the training worker once")
    parser.add_argument("--data-dir", help="DATA_DIR (default: a new temporary folder)")
    args = parser.parse_args()

    started: list[stack.Service] = []
    settings = {"SWEEP_SECONDS": "2", "RUN_STALE_SECONDS": "15"}
    with private_stack("experiment-stack-", args.data_dir, **settings) as data_dir:
        try:
            from django.contrib.auth import get_user_model

            get_user_model().objects.create_user("lab", password=PASSWORD)

            def training_worker(name: str) -> stack.Service:
                worker = stack.start_worker(
                    os.environ,
                    name=name,
                    queues="training",
                    concurrency=2,
                    log_path=data_dir / f"{name}.log",
                )
                started.append(worker)
                return worker

            worker = training_worker("worker1")
            started.append(
                stack.start_worker(
                    os.environ,
                    name="evaluate",
                    queues="evaluate",
                    concurrency=2,
                    log_path=data_dir / "evaluate.log",
                )
            )
            daphne = stack.start_daphne(
                os.environ, port=stack.free_port(), log_path=data_dir / "daphne.log"
            )
            started.append(daphne)
            http = signed_in(daphne.url, "lab")
            body = {
                "name": "learning rate",
                "preset": "quick",
                "config": {"max_minutes": args.minutes, "frames_per_second": 0, "threads": 1},
                "grid": {"lr": [0.001, 0.0003]},
                "seeds": 2,
                "parallel": 2,
                "eval_games": 20,
                "eval_piece_cap": 20_000,
            }
            begun = time.monotonic()
            created = http.post(f"{daphne.url}/api/experiments/", json=body, timeout=60)
            assert created.status_code == 201, created.text
            url = f"{daphne.url}/api/experiments/{created.json()['id']}/"

            from trainer.models import Run

            if args.kill:
                while not Run.objects.filter(status=Run.Status.RUNNING, episodes__gt=0).exists():
                    time.sleep(0.5)
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()
                print("killed the training worker; starting another", file=sys.stderr)
                training_worker("worker2")
            while (answer := http.get(url, timeout=60).json())["status"] == "running":
                time.sleep(2)
            seconds = time.monotonic() - begun
            runs = list(Run.objects.filter(experiment_id=answer["id"]))
            print(
                f"\nexperiment {answer['id']}: {answer['status']} after {seconds:.0f} s; "
                f"{len(runs)} runs, retries {sum(run.retries for run in runs)}, "
                f"{os.cpu_count()} cores\n"
            )
            print("| configuration | runs | evaluated | IQM | 95% CI | curve points |")
            print("|---|---|---|---|---|---|")
            for c in answer["configurations"]:
                settings = ", ".join(f"{key}={value}" for key, value in c["params"].items())
                interval = f"{c['ci95_low']:,.1f} to {c['ci95_high']:,.1f}" if c["iqm"] else "-"
                iqm = f"{c['iqm']:,.1f}" if c["iqm"] is not None else "-"
                if c["censored"]:
                    iqm = f">= {iqm} ({c['censored']} at the cap)"
                print(
                    f"| {settings} | {len(c['runs'])} | {c['evaluated']} | {iqm} | {interval} "
                    f"| {len(c['curve']['x'])} |"
                )
            assert answer["status"] == "finished" and len(runs) == 4
            assert len({(run.trial_id, run.seed_index) for run in runs}) == 4
            assert all(
                c["evaluated"] == 2 and c["ci95_low"] is not None for c in answer["configurations"]
            )
        finally:
            for service in reversed(started):
                service.stop(grace=10)


if __name__ == "__main__":
    main()
