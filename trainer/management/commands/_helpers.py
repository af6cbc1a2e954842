"""What the run commands share: finding the acting user and the run, printing tables."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError

from trainer import queues, selectors, services
from trainer.models import InvalidTransition, Run


def acting_user(username: str | None) -> AbstractBaseUser | None:
    """The --user, or None: then the command acts with the shell's full trust."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    return user


def owner_for_new_run(username: str | None) -> AbstractBaseUser:
    """The user who will own a new run: --user, or the only user there is."""
    user = acting_user(username)
    if user is not None:
        return user
    users = list(get_user_model().objects.order_by("pk")[:2])
    if len(users) == 1:
        return users[0]
    if not users:
        raise CommandError("no users yet: create one with `manage.py createsuperuser`")
    raise CommandError("several users exist: say who owns the run with --user NAME")


def find_run(run_ref: str, user: AbstractBaseUser | None) -> Run:
    """The run with this id, checked against --user's access when given."""
    try:
        run_id = int(run_ref)
    except ValueError:
        raise CommandError(f"RUN must be a run id (a number), got {run_ref!r}") from None
    try:
        if user is not None:
            return selectors.run_for_viewer(user, run_id)
        return Run.objects.select_related("owner").get(pk=run_id)
    except (selectors.RunNotFound, Run.DoesNotExist):
        raise CommandError(f"run {run_id} not found") from None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def add_run_options(parser: object) -> None:
    """--name, --algorithm, --preset, --set, --seed and --minutes."""
    parser.add_argument("--name", default="", help="run name (default: preset and algorithm)")
    parser.add_argument("--algorithm", choices=["dqn", "cem"], help="default: the preset's")
    parser.add_argument("--preset", default="quick", help="quick, standard or record")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config field"
    )
    parser.add_argument("--seed", type=int, help="training seed")
    parser.add_argument("--minutes", type=float, help="wall-clock budget (config max_minutes)")
    parser.add_argument("--public", action="store_true", help="let other users watch it")


class RunActionCommand(BaseCommand):
    """A command that applies one service to one run, as --user or as the run's owner."""

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id")
        parser.add_argument("--user", help="act as this user (default: as the run's owner)")

    def act(self, run: Run, user: AbstractBaseUser) -> Run:
        """Call the service; subclasses say which."""
        raise NotImplementedError

    def handle(self, *args: object, **options: object) -> None:
        user = acting_user(options["user"])
        run = find_run(options["run"], user)
        try:
            run = self.act(run, user or run.owner)
        except (
            InvalidTransition,
            selectors.NotAllowed,
            services.LimitReached,
            queues.QueueUnavailable,
        ) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"run {run.pk} is {run.status}")
