"""Loaded into a test worker with `--include`: the broker sweeps for messages past their
visibility timeout every second (the default is every ~100 s), so a test sees at once
whatever would be handed out again."""

from tetris_site.celery import app

app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
