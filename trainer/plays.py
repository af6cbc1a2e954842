"""Plays: a checkpoint or a reference controller playing at human speed for its viewers.

A play is short-lived state in Redis, not a database row: nothing about it outlives its
viewers. Its token names every key and the channel group its frames go to:

    tetris:play:<token>:spec      the PlaySpec (JSON), until PLAY_SPEC_TTL_SECONDS unused
    tetris:play:<token>:control   hash: pps, paused, steps and restarts (counters)
    tetris:play:<token>:viewers   sorted set: each viewer's consumer -> when it lapses
    tetris:play:<token>:status    the last status message, for a late viewer's snapshot
    tetris:play:<token>:queued    set by the viewer who enqueued the game task
    tetris:play:<token>:owner     held by the task that plays, refreshed while it plays
    tetris:plays:user:<id>        set: the user's plays handed to a task (capped)
    tetris:plays:user:<id>:page:<what>  the user's play of that page, which a reload reuses

The browser's commands reach the task through `control`, which the task polls a few times
a second; viewers keep their entry in `viewers` fresh while their socket is open, and the
task ends once none is left. Importable by web processes: no torch, no engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from django.conf import settings

# The reference controllers a play may use (trainer.rl.policies.REFERENCE_POLICIES).
REFERENCE_CONTROLLERS = {"dellacherie": "Dellacherie", "bcts": "BCTS"}
MIN_PPS, MAX_PPS, DEFAULT_PPS = 1, 60, 10
PLAY_SPEC_TTL_SECONDS = 3600
PLAY_MAX_SECONDS = 15 * 60  # the hard cap on one play, whoever still watches
VIEWER_TTL_SECONDS = 15  # a viewer whose consumer stopped refreshing is gone after this
VIEWER_REFRESH_SECONDS = 5
QUEUED_TTL_SECONDS = 120  # a task not started by then is enqueued again by the next viewer
OWNER_TTL_SECONDS = 10
MAX_STEPS_AT_ONCE = 10
REDIS_TIMEOUT_SECONDS = 2


class PlayNotFound(Exception):
    """No such play, or one this user may not watch (the two are not told apart)."""


@dataclass
class PlaySpec:
    """What a play plays: a run's checkpoint or a reference controller, on which board."""

    token: str
    user_id: int
    label: str
    width: int
    height: int
    randomizer: str
    seed: int
    pps: int
    run_id: int | None = None
    checkpoint_id: int | None = None
    controller: str = ""
    # Side by side: a second policy on the same pieces, as {label, run_id, checkpoint_id,
    # controller}; its board travels in each frame's `rival`.
    rival: dict | None = None

    def as_dict(self) -> dict:
        """JSON-safe dict."""
        return dataclasses.asdict(self)


def new_token() -> str:
    """An unguessable play token (URL- and group-name-safe)."""
    return secrets.token_urlsafe(16)


def _key(token: str, part: str) -> str:
    return f"tetris:play:{token}:{part}"


def clamp_pps(pps: float) -> int:
    """Pieces per second within MIN_PPS..MAX_PPS (infinities clamped, NaN the default)."""
    if math.isnan(pps):
        return DEFAULT_PPS
    return round(min(MAX_PPS, max(MIN_PPS, pps)))


def client() -> redis.Redis:
    """A Redis client for the plays' keys (sync code: services and the task)."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )


def async_client() -> aioredis.Redis:
    """A Redis client for the plays' keys (consumers)."""
    return aioredis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )


def save_spec(r: redis.Redis, spec: PlaySpec) -> None:
    """Store a new play with its initial controls."""
    with r.pipeline() as pipe:
        pipe.set(_key(spec.token, "spec"), json.dumps(spec.as_dict()), ex=PLAY_SPEC_TTL_SECONDS)
        pipe.delete(_key(spec.token, "control"))
        pipe.hset(_key(spec.token, "control"), mapping={"pps": spec.pps, "paused": 0, "steps": 0})
        pipe.expire(_key(spec.token, "control"), PLAY_SPEC_TTL_SECONDS)
        pipe.execute()


def _page_key(spec: PlaySpec) -> str:
    what = json.dumps(
        [spec.run_id, spec.checkpoint_id, spec.controller, spec.rival], sort_keys=True
    )
    digest = hashlib.sha256(what.encode()).hexdigest()[:32]
    return f"tetris:plays:user:{spec.user_id}:page:{digest}"


def reuse_or_save(r: redis.Redis, spec: PlaySpec) -> PlaySpec:
    """The user's unexpired play of the same policies, if any (a reload of a play page
    watches the same play); else `spec`, saved. Each GET of a page is not a new play."""
    token = r.get(_page_key(spec))
    if token is not None:
        kept = load_spec(r, token.decode())
        if kept is not None:
            keep_alive(r, kept.token)
            r.hset(_key(kept.token, "control"), "pps", spec.pps)  # the speed asked for now
            return dataclasses.replace(kept, pps=spec.pps)
    save_spec(r, spec)
    r.set(_page_key(spec), spec.token, ex=PLAY_SPEC_TTL_SECONDS)
    return spec


def _user_plays_key(user_id: int) -> str:
    return f"tetris:plays:user:{user_id}"


def live_plays(r: redis.Redis, user_id: int) -> set[str]:
    """The user's plays that a task plays or is about to (the rest are pruned)."""
    key = _user_plays_key(user_id)
    tokens = [t.decode() for t in r.smembers(key)]
    with r.pipeline() as pipe:
        for token in tokens:
            pipe.exists(_key(token, "owner"), _key(token, "queued"))
        held = pipe.execute()
    gone = [token for token, count in zip(tokens, held, strict=True) if not count]
    if gone:
        r.srem(key, *gone)
    return set(tokens) - set(gone)


def note_live(r: redis.Redis, user_id: int, token: str) -> None:
    """Count the play among the user's live ones."""
    with r.pipeline() as pipe:
        pipe.sadd(_user_plays_key(user_id), token)
        pipe.expire(_user_plays_key(user_id), PLAY_SPEC_TTL_SECONDS)
        pipe.execute()


def load_spec(r: redis.Redis, token: str) -> PlaySpec | None:
    """The play's spec, or None if there is no such play (or it expired)."""
    text = r.get(_key(token, "spec"))
    return PlaySpec(**json.loads(text)) if text else None


def keep_alive(r: redis.Redis, token: str) -> None:
    """Push back the expiry of a play that is still used."""
    with r.pipeline() as pipe:
        pipe.expire(_key(token, "spec"), PLAY_SPEC_TTL_SECONDS)
        pipe.expire(_key(token, "control"), PLAY_SPEC_TTL_SECONDS)
        pipe.execute()


def mark_queued(r: redis.Redis, token: str) -> bool:
    """True if no task plays or waits for this play, and so the caller must enqueue one."""
    if r.exists(_key(token, "owner")):
        return False
    return bool(r.set(_key(token, "queued"), "1", nx=True, ex=QUEUED_TTL_SECONDS))


def claim(r: redis.Redis, token: str, task_id: str) -> bool:
    """Take the play for this task; False if another task already plays it."""
    if not r.set(_key(token, "owner"), task_id, nx=True, ex=OWNER_TTL_SECONDS):
        return False
    r.delete(_key(token, "queued"))
    return True


def release(r: redis.Redis, token: str, task_id: str) -> None:
    """Give the play up at the task's end, so a returning viewer starts a new one."""
    if r.get(_key(token, "owner")) == task_id.encode():
        r.delete(_key(token, "owner"))


@dataclass
class Controls:
    """The viewers' wishes and their number, as the task reads them."""

    pps: int
    paused: bool
    steps: int
    restarts: int
    viewers: int


def poll(r: redis.Redis, token: str, task_id: str) -> Controls:
    """Read the controls and count live viewers; keep the task's hold on the play."""
    with r.pipeline() as pipe:
        pipe.hgetall(_key(token, "control"))
        pipe.zcount(_key(token, "viewers"), time.time(), "+inf")
        pipe.set(_key(token, "owner"), task_id, ex=OWNER_TTL_SECONDS)
        control, viewers, _ = pipe.execute()
    return Controls(
        pps=clamp_pps(float(control.get(b"pps", DEFAULT_PPS))),
        paused=control.get(b"paused", b"0") == b"1",
        steps=int(control.get(b"steps", 0)),
        restarts=int(control.get(b"restarts", 0)),
        viewers=int(viewers),
    )


def pause(r: redis.Redis, token: str) -> None:
    """Pause the play, as a viewer's pause does (the task itself, at a disagreement)."""
    r.hset(_key(token, "control"), "paused", 1)


def save_status(r: redis.Redis, token: str, message: dict) -> None:
    """Keep the play's last status for viewers who join later."""
    r.set(_key(token, "status"), json.dumps(message), ex=PLAY_SPEC_TTL_SECONDS)


# --- the consumer's side (async) ---


async def viewer_seen(r: aioredis.Redis, token: str, viewer: str) -> None:
    """Record that a viewer is still watching, for VIEWER_TTL_SECONDS."""
    await r.zadd(_key(token, "viewers"), {viewer: time.time() + VIEWER_TTL_SECONDS})
    await r.expire(_key(token, "viewers"), PLAY_SPEC_TTL_SECONDS)


async def viewer_gone(r: aioredis.Redis, token: str, viewer: str) -> None:
    """Forget a viewer who left (lapsed entries are dropped too)."""
    await r.zrem(_key(token, "viewers"), viewer)
    await r.zremrangebyscore(_key(token, "viewers"), "-inf", time.time())


async def last_status(r: aioredis.Redis, token: str) -> dict | None:
    """The play's last status message, if it has one."""
    text = await r.get(_key(token, "status"))
    return json.loads(text) if text else None


async def set_speed(r: aioredis.Redis, token: str, pps: int) -> None:
    """Play `pps` pieces per second from now on."""
    await r.hset(_key(token, "control"), "pps", clamp_pps(pps))


async def set_paused(r: aioredis.Redis, token: str, paused: bool) -> None:
    """Pause or resume."""
    await r.hset(_key(token, "control"), "paused", int(paused))


async def step(r: aioredis.Redis, token: str) -> None:
    """Pause, then place one piece."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.hset(_key(token, "control"), "paused", 1)
        pipe.hincrby(_key(token, "control"), "steps", 1)
        await pipe.execute()


async def restart(r: aioredis.Redis, token: str) -> None:
    """Start a new game (with the next seed)."""
    await r.hincrby(_key(token, "control"), "restarts", 1)
