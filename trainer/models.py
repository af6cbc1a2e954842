"""Runs, their per-episode metrics, their checkpoints and their best games."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from trainer.storage import CheckpointStorage


class InvalidTransition(Exception):
    """A status change that DESIGN.md's state machine does not allow."""


class RunLost(Exception):
    """This worker no longer holds the run: it was reaped, stopped for it, or taken over."""


class Run(models.Model):
    """One training run: who started it, with what config, how it went."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        STOPPING = "stopping"
        STOPPED = "stopped"
        FINISHED = "finished"
        FAILED = "failed"

    class Visibility(models.TextChoices):
        PRIVATE = "private"
        PUBLIC = "public"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.STOPPING)
    # A worker holds the run (its `task_id`) while it is running or stopping.
    HELD = (Status.RUNNING, Status.STOPPING)
    # queued -> running -> (stopping) -> stopped | finished | failed;
    # resume takes stopped | failed back to queued.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.QUEUED: frozenset({Status.RUNNING, Status.STOPPED, Status.FAILED}),
        Status.RUNNING: frozenset(
            {Status.STOPPING, Status.STOPPED, Status.FINISHED, Status.FAILED}
        ),
        Status.STOPPING: frozenset({Status.STOPPED, Status.FINISHED, Status.FAILED}),
        Status.STOPPED: frozenset({Status.QUEUED}),
        Status.FAILED: frozenset({Status.QUEUED}),
        Status.FINISHED: frozenset(),
    }

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    name = models.CharField(max_length=200)
    algorithm = models.CharField(max_length=16)
    preset = models.CharField(max_length=32, blank=True)
    config = models.JSONField()
    seed = models.BigIntegerField()
    visibility = models.CharField(
        max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    # When it last went into the queue (created or resumed): the sweep sends again a run
    # that has waited a while and is in no queue.
    queued_at = models.DateTimeField(null=True, blank=True)

    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    code_version = models.CharField(max_length=64, blank=True)

    episodes = models.BigIntegerField(default=0)
    total_pieces = models.BigIntegerField(default=0)
    best_lines = models.BigIntegerField(default=0)
    recent_mean_lines = models.FloatField(default=0.0)
    wall_time = models.FloatField(default=0.0, help_text="seconds trained, over all attempts")
    # An experiment's run: the configuration (trial) it trains and which of its seeds.
    experiment = models.ForeignKey(
        "Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    trial = models.ForeignKey(
        "ExperimentTrial", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    seed_index = models.PositiveSmallIntegerField(null=True, blank=True)
    pruned = models.BooleanField(
        default=False, help_text="stopped by its experiment's pruner: its curve lagged"
    )
    retries = models.PositiveSmallIntegerField(
        default=0, help_text="times its experiment resumed it after its worker was lost"
    )
    final_evaluation = models.ForeignKey(
        "Evaluation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A few dozen (episode, mean lines) points, so lists can draw a curve without a query.
    curve = models.JSONField(default=list, blank=True)
    # The figures of the evaluation that chose the kept `best` checkpoint, so lists show the
    # run's score and its interval without a query; null until a periodic evaluation ran.
    best_evaluation = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["algorithm"]),
        ]
        constraints = [
            # An experiment never starts the same seed of a configuration twice.
            models.UniqueConstraint(fields=["trial", "seed_index"], name="run_unique_trial_seed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def is_active(self) -> bool:
        """Queued, running or stopping: a worker holds it or will."""
        return self.status in self.ACTIVE

    def _transition(self, to: str, *, holder: str | None = None, **fields: object) -> None:
        # One conditional UPDATE: the check and the change are atomic, so two workers (or
        # a worker and the reaper) can never both move the same run. With `holder`, only
        # while the worker with that task id still holds it.
        sources = [source for source, targets in self.TRANSITIONS.items() if to in targets]
        rows = Run.objects.filter(pk=self.pk, status__in=sources)
        if holder is not None:
            rows = rows.filter(task_id=holder)
        updated = rows.update(status=to, **fields)
        if not updated:
            current = Run.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            raise InvalidTransition(f"run {self.pk} cannot go from {current} to {to}")
        self.status = to
        computed = [name for name, value in fields.items() if hasattr(value, "resolve_expression")]
        for name, value in fields.items():
            if name not in computed:
                setattr(self, name, value)
        if computed:  # the database's clock (`Now()`): read back what it wrote
            self.refresh_from_db(fields=computed)

    def mark_running(self, *, worker: str, task_id: str = "") -> None:
        """A worker took the run."""
        now = timezone.now()
        self._transition(
            self.Status.RUNNING,
            worker=worker,
            task_id=task_id or self.task_id,
            started_at=now,
            heartbeat_at=Now(),  # heartbeats and the sweep use the database's clock
            finished_at=None,
            error="",
        )

    def request_stop(self, *, note: str = "") -> None:
        """Ask the worker to checkpoint and stop; a queued run stops at once. `note` says
        why, if not its owner's wish; the run keeps it once stopped."""
        now = timezone.now()
        why = {"error": note[:10_000]} if note else {}
        if self.status == self.Status.QUEUED:
            self._transition(self.Status.STOPPED, stop_requested_at=now, finished_at=now, **why)
        else:
            # The database's clock: the sweep that enforces the stop compares with it.
            self._transition(self.Status.STOPPING, stop_requested_at=Now(), **why)

    def mark_stopped(self, *, holder: str | None = None, note: str = "") -> None:
        """The worker stopped on request, after its checkpoint (`note`: how, if unusual;
        without one, the request's own note stays)."""
        how = {"error": note[:10_000]} if note else {}
        self._transition(self.Status.STOPPED, holder=holder, finished_at=timezone.now(), **how)

    def mark_finished(self, *, holder: str | None = None) -> None:
        """The run used its whole budget."""
        self._transition(self.Status.FINISHED, holder=holder, finished_at=timezone.now())

    def mark_failed(self, reason: str, *, holder: str | None = None) -> None:
        """The run ended with an error, or its worker was lost."""
        self._transition(
            self.Status.FAILED, holder=holder, finished_at=timezone.now(), error=reason[:10_000]
        )

    def requeue(self, *, task_id: str) -> None:
        """Resume: back to the queue, to continue from the last checkpoint."""
        self._transition(
            self.Status.QUEUED,
            task_id=task_id,
            queued_at=Now(),
            stop_requested_at=None,
            finished_at=None,
            error="",
            worker="",
        )

    @property
    def duration_seconds(self) -> float:
        """Seconds trained so far."""
        return self.wall_time


class Metric(models.Model):
    """One training episode's figures."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    episode = models.BigIntegerField()
    lines = models.BigIntegerField()
    score = models.BigIntegerField()
    pieces = models.BigIntegerField()
    reward = models.FloatField()
    loss = models.FloatField(null=True)
    epsilon = models.FloatField(null=True)
    placements_per_second = models.FloatField()
    total_pieces = models.BigIntegerField()
    wall_time = models.FloatField()
    extra = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "episode"]
        constraints = [
            # A retried batch or a resumed run can never write an episode twice.
            models.UniqueConstraint(fields=["run", "episode"], name="metric_unique_episode"),
        ]


def checkpoint_storage() -> Storage:
    """Checkpoints' storage, `STORAGES["checkpoints"]`: files, or the database (a lab's choice)."""
    return CheckpointStorage()


def checkpoint_upload_to(instance: Checkpoint, filename: str) -> str:
    """Checkpoints live under MEDIA_ROOT/runs/<run id>/."""
    return f"runs/{instance.run_id}/{filename}"


class Checkpoint(models.Model):
    """A saved model of a run, as a file under the media root."""

    class Kind(models.TextChoices):
        LATEST = "latest", "latest (resumable)"
        BEST = "best", "best evaluated"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LATEST)
    file = models.FileField(
        upload_to=checkpoint_upload_to, storage=checkpoint_storage, max_length=500
    )
    episode = models.BigIntegerField()
    total_pieces = models.BigIntegerField()
    wall_time = models.FloatField()
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "-episode", "-id"]
        indexes = [models.Index(fields=["run", "-created_at"])]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} checkpoint @ episode {self.episode}"


class Evaluation(models.Model):
    """Greedy games of one of a run's policies on held-out seeds, with a 95% interval.

    `periodic` evaluations run inside training on the selection seeds and choose the kept
    `best` checkpoint; `requested` ones (manage.py evaluate, the API) play the evaluation
    seeds, in chunks on the `evaluate` workers, and are the unbiased score of a policy.
    """

    class Kind(models.TextChoices):
        PERIODIC = "periodic"
        REQUESTED = "requested"

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="evaluations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DONE)
    checkpoint = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    episode = models.BigIntegerField(help_text="training games played when the policy was taken")
    total_pieces = models.BigIntegerField()
    wall_time = models.FloatField(help_text="seconds trained when the policy was taken")
    games = models.PositiveIntegerField()
    games_done = models.PositiveIntegerField(default=0)
    piece_cap = models.BigIntegerField(help_text="0 = none")
    mean_lines = models.FloatField(null=True, blank=True)
    ci95_low = models.FloatField(null=True, blank=True)
    ci95_high = models.FloatField(
        null=True, blank=True, help_text="null when no game ended: only a lower bound"
    )
    ended = models.PositiveIntegerField(null=True, blank=True)
    median_lines = models.FloatField(null=True, blank=True)
    min_lines = models.BigIntegerField(null=True, blank=True)
    max_lines = models.BigIntegerField(null=True, blank=True)
    seconds = models.FloatField(default=0.0)
    best = models.BooleanField(
        default=False, help_text="periodic: this policy became the run's kept best"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "created_at", "id"]
        indexes = [models.Index(fields=["run", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} evaluation @ episode {self.episode}"


class BestGame(models.Model):
    """A run's best game of a kind, as its seed and placements: enough to replay it exactly.

    Replaying: `TetrisGame(width, height, randomizer, seed)`, then `step(a)` for each byte
    `a` of `actions` (rotation * width + column). A game longer than the replay limit keeps
    its first placements; `pieces` counts them all.
    """

    class Kind(models.TextChoices):
        TRAIN = "train", "best training game"
        EVAL = "eval", "best evaluation game"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="best_games")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    seed = models.BigIntegerField(
        help_text="the game's seed; the engine reads it modulo 2**64, so one of 2**63 or more "
        "is stored less 2**64"
    )
    width = models.PositiveSmallIntegerField()
    height = models.PositiveSmallIntegerField()
    randomizer = models.CharField(max_length=16)
    actions = models.BinaryField()
    lines = models.BigIntegerField()
    score = models.BigIntegerField()
    pieces = models.BigIntegerField()
    episode = models.BigIntegerField(
        help_text="the training game's episode, or the evaluation game's number"
    )
    policy = models.JSONField(
        null=True,
        blank=True,
        help_text='the linear policy that played it, {"kind": "linear", "feature_set", '
        '"weights"}, for a replay to show its options; empty for a value network',
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind"], name="best_game_unique_kind"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.get_kind_display()}: {self.lines} lines"


class EvaluationChunk(models.Model):
    """A few games of a requested evaluation, played by one task on the `evaluate` queue.

    Game i of the evaluation plays evaluation seed i, so a chunk's games are the same
    whichever worker plays them. A chunk is done once: its figures are written by a
    conditional UPDATE, and a second delivery of it (a lost worker's, redone) changes
    nothing, so no game is counted twice or lost.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_game = models.PositiveIntegerField()
    games = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lines = models.JSONField(default=list, blank=True)
    pieces = models.JSONField(default=list, blank=True)
    ended = models.JSONField(default=list, blank=True, help_text="per game: ended before the cap")
    seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["evaluation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "index"], name="chunk_unique_index"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"evaluation {self.evaluation_id} chunk {self.index}"


class GameChunk(models.Model):
    """Some games of one cem generation, played by a task on the `evaluate` queue.

    The run's process writes the chunks of a generation (its `batch`), waits for them and
    deletes them: a chunk holds its games as plain data (seeds, weights, cap), so any worker
    on any machine plays the games the run's own process would. It is stored once, by a
    conditional UPDATE; a second delivery (a lost worker's, redone) changes nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="game_chunks")
    batch = models.CharField(max_length=200, help_text="the generation: task id and number")
    index = models.PositiveIntegerField()
    games = models.JSONField(help_text="trainer.rl.batches.LinearBatch.to_dict()")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    worker = models.CharField(max_length=200, blank=True, help_text="host and process id")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lines = models.JSONField(default=list, blank=True)
    scores = models.JSONField(default=list, blank=True)
    pieces = models.JSONField(default=list, blank=True)
    ended = models.JSONField(default=list, blank=True, help_text="per game: ended before the cap")

    class Meta:
        ordering = ["batch", "index"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "index"], name="game_chunk_unique_index"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"run {self.run_id} games {self.batch}/{self.index}"


class StoredFile(models.Model):
    """A file kept in the database (trainer.storage.DatabaseStorage); its bytes are chunks."""

    name = models.CharField(max_length=500, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.size:,} bytes)"


class StoredFileChunk(models.Model):
    """One piece of a stored file, in order of `index`."""

    file = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="chunks")
    index = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "index"], name="stored_chunk_unique_index")
        ]


class Experiment(models.Model):
    """Seeds and sweeps: configurations of a base config, each trained on several seeds as
    ordinary runs, at most `parallel` at a time, and compared by their final evaluations'
    interquartile mean (IQM) with a 95% stratified-bootstrap interval.

    Its state lives in these rows (its trials, its runs), never in the sampler: each
    decision rebuilds Optuna's study from them (`trainer.experiments`).
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        STOPPED = "stopped"

    class Sampler(models.TextChoices):
        GRID = "grid"
        RANDOM = "random"
        TPE = "tpe"

    class Pruner(models.TextChoices):
        NONE = "", "none"
        MEDIAN = "median"
        SUCCESSIVE_HALVING = "successive_halving"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiments"
    )
    name = models.CharField(max_length=200)
    visibility = models.CharField(
        max_length=8, choices=Run.Visibility.choices, default=Run.Visibility.PRIVATE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    preset = models.CharField(max_length=32)
    config = models.JSONField(default=dict, help_text="TrainConfig fields over the preset's")
    grid = models.JSONField(default=dict, blank=True, help_text="{field: [value, ...]}")
    space = models.JSONField(
        default=dict,
        blank=True,
        help_text='{field: {"low", "high", "log"}} or {field: {"choices": [...]}}',
    )
    sampler = models.CharField(max_length=8, choices=Sampler.choices, default=Sampler.GRID)
    sampler_seed = models.BigIntegerField(default=0)
    trials = models.PositiveIntegerField(help_text="configurations to train")
    seeds = models.PositiveSmallIntegerField(help_text="runs per configuration")
    parallel = models.PositiveSmallIntegerField(help_text="runs queued or running at most")
    pruner = models.CharField(max_length=20, choices=Pruner.choices, default="", blank=True)
    eval_games = models.PositiveIntegerField(help_text="games of each run's final evaluation")
    eval_piece_cap = models.BigIntegerField(help_text="0 = none")

    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The statistics as last computed (`trainer.experiments.experiment_summary`), so a page
    # or the API answers without recomputing bootstraps on every request.
    summary = models.JSONField(default=dict, blank=True)
    summarized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"experiment #{self.pk} {self.name}"


class ExperimentTrial(models.Model):
    """One configuration of an experiment: the sampler's parameters and, once all its
    seeds are evaluated, its value (the IQM of their final scores) for the sampler."""

    class State(models.TextChoices):
        RUNNING = "running"
        COMPLETE = "complete"
        PRUNED = "pruned"
        FAILED = "failed"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="trial_set")
    number = models.PositiveIntegerField()
    params = models.JSONField(default=dict)
    # What the sampler noted on the trial (GridSampler's grid id), for rebuilding the study.
    system_attrs = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    value = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="why a failed configuration could not run")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="trial_unique_number"),
        ]

    def __str__(self) -> str:
        return f"experiment {self.experiment_id} trial {self.number}"
