"""The live stream, framework-free: stream names, the message protocol, bridge and publisher.

Workers publish through `live.bridge`; each web process's hub (visualizer/hub.py) reads
the stream and hands it to its WebSocket viewers. Nothing here imports Django, Channels,
Celery, Twisted or autobahn, so a training worker loads none of them. The protocol is
documented in docs/ARCHITECTURE.md.
"""
