"""manage.py play RUN: watch a run's checkpoint (or a reference controller) play, here."""

from __future__ import annotations

import secrets
import time

from django.core.management.base import BaseCommand, CommandError

from trainer import checkpoint_files, plays, selectors
from trainer.management.commands._helpers import acting_user, find_run
from trainer.terminal import TerminalScreen, board_lines


class Command(BaseCommand):
    help = (
        "Watch a run's checkpoint play in the terminal, a piece at a time; RUN may also be a "
        "reference controller (dellacherie, bcts). Ctrl-C stops."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("run", metavar="RUN", help="run id, or dellacherie / bcts")
        parser.add_argument(
            "--checkpoint",
            type=int,
            metavar="EPISODE",
            help="the checkpoint written at this episode (default: the latest)",
        )
        parser.add_argument(
            "--pps",
            type=float,
            default=plays.DEFAULT_PPS,
            help=f"pieces per second, {plays.MIN_PPS} to {plays.MAX_PPS}",
        )
        parser.add_argument(
            "--pieces", type=int, default=0, help="stop after this many pieces (0 = game over)"
        )
        parser.add_argument("--seed", type=int, help="the game's seed (default: random)")
        parser.add_argument("--user", help="only if this user may see the run")

    def handle(self, *args: object, **options: object) -> None:
        if not plays.MIN_PPS <= options["pps"] <= plays.MAX_PPS:
            raise CommandError(f"--pps must be from {plays.MIN_PPS} to {plays.MAX_PPS}")
        if options["pieces"] < 0:
            raise CommandError("--pieces must be 0 (play to game over) or more")
        source, title, board = self._policy_source(options)
        try:
            self._play(source, title, board, options)
        except KeyboardInterrupt:  # Ctrl-C while the policy loads
            self.stdout.write("stopped")

    def _policy_source(self, options: dict) -> tuple[str, str, dict]:
        """What to play (a checkpoint file or a controller name), its title and its board."""
        name = options["run"]
        if name in plays.REFERENCE_CONTROLLERS:
            if options["checkpoint"] is not None:
                raise CommandError("--checkpoint is for runs, not reference controllers")
            return name, plays.REFERENCE_CONTROLLERS[name], {}
        run = find_run(name, acting_user(options["user"]))
        checkpoint = selectors.checkpoint_at_episode(run, options["checkpoint"])
        if checkpoint is None:
            episodes = [str(c.episode) for c in selectors.run_checkpoints(run)]
            if not episodes:
                raise CommandError(f"run {run.pk} has no checkpoint yet")
            raise CommandError(
                f"run {run.pk} has no checkpoint at episode {options['checkpoint']}; "
                f"it has episodes {', '.join(episodes)}"
            )
        title = f"run {run.pk} @ episode {checkpoint.episode:,}"
        return str(checkpoint_files.local_path(checkpoint)), title, run.config

    def _play(self, source: str, title: str, board: dict, options: dict) -> None:
        from trainer.player import GamePlayer
        from trainer.rl import load_policy
        from trainer.rl.policies import one_torch_thread

        try:
            policy = load_policy(source)
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(f"cannot load the checkpoint: {error}") from None
        width = board.get("width", 10)
        player = GamePlayer(
            policy,
            width=width,
            height=board.get("height", 20),
            randomizer=board.get("randomizer", "uniform"),
            seed=options["seed"] if options["seed"] is not None else secrets.randbelow(2**31),
        )
        # Redrawn in place on a terminal (or with --force-color); else only the last board.
        live = options["force_color"] or self.stdout.isatty()
        colour = live and not options["no_color"]
        screen = TerminalScreen(
            lambda text: self.stdout.write(text, ending=""), width=width, colour=colour, title=title
        )
        game, cap, interval = player.game, options["pieces"], 1.0 / options["pps"]
        how = "game over after"
        try:
            with one_torch_thread():
                next_at = time.monotonic()
                while True:
                    if live:
                        screen.draw(player.frame(), f"seed    {game.seed}")
                    if game.game_over or (cap and game.pieces >= cap):
                        how = "game over after" if game.game_over else "played"
                        break
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    player.step()
        except KeyboardInterrupt:
            how = "stopped by Ctrl-C after"
        finally:
            screen.close()
        if not live:
            self.stdout.write("\n".join(board_lines(player.frame(), width, colour)))
        self.stdout.write(
            f"{how} {game.pieces:,} pieces: {game.lines:,} lines, score {game.score:,} "
            f"(seed {game.seed})"
        )
