"""manage.py experiment create|status|stop|visibility|export: seeds and sweeps from the shell."""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError

from trainer import experiments, queues, selectors, services
from trainer.experiment_summary import experiment_brief, experiment_figures
from trainer.management.commands._helpers import acting_user, owner_for_new_run, table
from trainer.models import Experiment
from trainer.rl.config import ConfigError, TrainConfig

EXAMPLE = (
    "manage.py experiment create --name 'lr sweep' --set max_minutes=1 "
    "--grid lr=0.001,0.0003 --seeds 3 --parallel 3"
)


class Command(BaseCommand):
    help = (
        "Create, follow, stop and export experiments: configurations of a preset, each "
        f"trained on several seeds by the workers. Example: {EXAMPLE}"
    )

    def add_arguments(self, parser: object) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create an experiment and start its runs")
        create.add_argument("--name", required=True)
        create.add_argument("--preset", default="quick", help="quick, standard or record")
        create.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="a base setting"
        )
        create.add_argument(
            "--grid",
            action="append",
            default=[],
            metavar="KEY=V1,V2",
            help="values of a setting; the grid sampler trains every combination",
        )
        create.add_argument(
            "--range",
            action="append",
            default=[],
            metavar="KEY=LOW:HIGH[:log]",
            help="a range for the random and tpe samplers",
        )
        create.add_argument("--sampler", choices=Experiment.Sampler.values)
        create.add_argument("--trials", type=int, help="configurations (default: the grid's)")
        create.add_argument("--seeds", type=int, default=3, help="runs per configuration")
        create.add_argument("--parallel", type=int, default=2, help="runs at once at most")
        create.add_argument("--pruner", choices=["none", "median", "successive_halving"])
        create.add_argument("--eval-games", type=int, default=experiments.DEFAULT_EVAL_GAMES)
        create.add_argument(
            "--eval-piece-cap", type=int, default=experiments.DEFAULT_EVAL_PIECE_CAP
        )
        create.add_argument("--public", action="store_true", help="let other users watch it")
        for name, text in (
            ("status", "an experiment's configurations and scores (no id: the list)"),
            ("stop", "stop an experiment's runs; it starts no more"),
            ("export", "an experiment's figures, as JSON or one CSV row per run"),
        ):
            sub = actions.add_parser(name, help=text)
            sub.add_argument(
                "experiment", nargs="?" if name == "status" else None, metavar="EXPERIMENT"
            )
            if name == "export":
                sub.add_argument("--format", choices=["json", "csv"], default="json")
                sub.add_argument("--output", "-o", help="file (default: standard output)")
        visibility = actions.add_parser(
            "visibility", help="make an experiment and its runs public or private"
        )
        visibility.add_argument("experiment", metavar="EXPERIMENT")
        visibility.add_argument("visibility", choices=["public", "private"])
        for sub in actions.choices.values():
            sub.add_argument("--user", help="act as this user (default: the owner)")
            sub.add_argument("--json", action="store_true", help="print data as JSON")

    def handle(self, *args: object, **options: object) -> None:
        action = options["action"]
        try:
            getattr(self, action)(options)
        except ConfigError as error:
            raise CommandError(f"invalid experiment: {error}") from None
        except (
            experiments.ExperimentNotFound,
            selectors.NotAllowed,
            services.LimitReached,
            queues.QueueUnavailable,
        ) as error:
            raise CommandError(str(error)) from None

    def create(self, options: dict) -> None:
        owner = owner_for_new_run(options["user"])
        experiment = experiments.experiment_create(
            owner=owner,
            name=options["name"],
            preset=options["preset"],
            config=TrainConfig.parse_overrides(options["set"]),
            grid=_grid(options["grid"]),
            space=_ranges(options["range"]),
            sampler=options["sampler"],
            trials=options["trials"],
            seeds=options["seeds"],
            parallel=options["parallel"],
            pruner=options["pruner"],
            visibility="public" if options["public"] else "private",
            eval_games=options["eval_games"],
            eval_piece_cap=options["eval_piece_cap"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(experiment_figures(experiment), indent=2))
            return
        self.stdout.write(
            f"experiment {experiment.pk} ({experiment.name}): {experiment.trials} "
            f"configurations x {experiment.seeds} seeds, {experiment.parallel} at a time; "
            f"follow it with `manage.py experiment status {experiment.pk}`"
        )

    def status(self, options: dict) -> None:
        user = acting_user(options["user"])
        if options["experiment"] is None:
            found = _visible(user)[:50]
            if options["json"]:
                self.stdout.write(json.dumps([experiment_brief(e) for e in found], indent=2))
                return
            rows = [_list_row(experiment_brief(e)) for e in found]
            self.stdout.write(table(["id", "name", "status", "runs", "best IQM"], rows))
            return
        figures = experiment_figures(_find(options["experiment"], user))
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        self.stdout.write(
            f"experiment {figures['id']} ({figures['name']}) is {figures['status']}: "
            f"{figures['sampler']} sampler, {figures['seeds']} seeds per configuration"
        )
        headers = ["#", "settings", "state", "runs", "evaluated", "IQM (95% CI)"]
        rows = [
            [
                c["trial"],
                _settings_text(c["params"]),
                c["state"],
                len(c["runs"]),
                c["evaluated"],
                _iqm_text(c),
            ]
            for c in figures["configurations"]
        ]
        self.stdout.write(table(headers, rows))
        if figures["ranking"]:
            self.stdout.write(
                f"best by the interval's lower bound: configuration {figures['ranking'][0]}"
            )

    def stop(self, options: dict) -> None:
        user = acting_user(options["user"])
        experiment = _find(options["experiment"], user)
        experiment = experiments.experiment_stop(
            experiment=experiment, user=user or experiment.owner
        )
        self.stdout.write(f"experiment {experiment.pk} is {experiment.status}")

    def visibility(self, options: dict) -> None:
        user = acting_user(options["user"])
        experiment = _find(options["experiment"], user)
        experiments.experiment_set_visibility(
            experiment=experiment, user=user or experiment.owner, visibility=options["visibility"]
        )
        self.stdout.write(f"experiment {experiment.pk} and its runs are {experiment.visibility}")

    def export(self, options: dict) -> None:
        figures = experiment_figures(_find(options["experiment"], acting_user(options["user"])))
        out = open(options["output"], "w", newline="") if options["output"] else self.stdout  # noqa: SIM115
        try:
            if options["format"] == "json":
                out.write(json.dumps(figures, indent=2) + "\n")
            else:
                _write_csv(out, figures)
        finally:
            if out is not self.stdout:
                out.close()


def _visible(user: AbstractBaseUser | None) -> Any:
    if user is None:
        return Experiment.objects.select_related("owner")
    return experiments.experiments_visible_to(user)


def _find(reference: str, user: AbstractBaseUser | None) -> Experiment:
    if not str(reference).isdigit():
        raise CommandError(f"EXPERIMENT must be an experiment id (a number), got {reference!r}")
    experiment = _visible(user).filter(pk=int(reference)).first()
    if experiment is None:
        raise CommandError(f"experiment {reference} not found")
    return experiment


def _grid(items: list[str]) -> dict[str, list]:
    grid, errors = {}, {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            errors[item] = "expected KEY=V1,V2"
            continue
        try:
            grid[key.strip()] = [
                TrainConfig.parse_overrides([f"{key}={value}"])[key.strip()]
                for value in text.split(",")
            ]
        except ConfigError as error:
            errors.update({f"grid.{name}": message for name, message in error.errors.items()})
    if errors:
        raise ConfigError(errors)
    return grid


def _ranges(items: list[str]) -> dict[str, dict]:
    space, errors = {}, {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = text.split(":")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            errors[item] = "expected KEY=LOW:HIGH or KEY=LOW:HIGH:log"
            continue
        try:
            low, high = (TrainConfig.parse_overrides([f"{key}={v}"])[key] for v in parts[:2])
        except ConfigError as error:
            errors.update({f"space.{name}": message for name, message in error.errors.items()})
            continue
        space[key] = {"low": low, "high": high, "log": len(parts) == 3}
    if errors:
        raise ConfigError(errors)
    return space


def _settings_text(params: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "(base)"


def _iqm_text(configuration: dict) -> str:
    if configuration["iqm"] is None:
        return "-"
    text = (
        f"{configuration['iqm']:,.1f} ({configuration['ci95_low']:,.1f}"
        f"-{configuration['ci95_high']:,.1f})"
    )
    if configuration.get("censored"):
        # Some runs played every game to the cap: the figures are lower bounds.
        text = f">= {text}, {configuration['censored']} run(s) at the piece cap"
    return text


def _list_row(brief: dict) -> list:
    best = brief["best"]
    score = "-" if best is None else _iqm_text(best)
    return [
        brief["id"],
        brief["name"],
        brief["status"],
        f"{brief['trials']}x{brief['seeds']}",
        score,
    ]


def _write_csv(out: Any, figures: dict) -> None:
    writer = csv.writer(out)
    names = sorted({name for c in figures["configurations"] for name in c["params"]})
    writer.writerow(
        [
            "configuration",
            *names,
            "run",
            "seed",
            "status",
            "pruned",
            "mean_lines",
            "ci95_low",
            "ci95_high",
            "games",
            "configuration_iqm",
            "configuration_ci95_low",
            "configuration_ci95_high",
        ]
    )
    for configuration in figures["configurations"]:
        for seed in configuration["seeds"]:
            evaluation = seed["evaluation"] or {}
            writer.writerow(
                [
                    configuration["trial"],
                    *[configuration["params"].get(name, "") for name in names],
                    seed["run"],
                    seed["seed"],
                    seed["status"],
                    seed["pruned"],
                    evaluation.get("mean_lines", ""),
                    evaluation.get("ci95_low", ""),
                    evaluation.get("ci95_high", ""),
                    evaluation.get("games", ""),
                    configuration["iqm"],
                    configuration["ci95_low"],
                    configuration["ci95_high"],
                ]
            )
