// A page's live WebSocket: it reconnects by itself with backoff, parses each message and
// hands it to the page's handler for its type, and reports the connection's state. The
// server's close codes for a signed-out or refused viewer are known only here.
"use strict";

window.TetrisTrainer = window.TetrisTrainer || {};

(function (ns) {
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 4000; // so viewers are back within 5 s of a restarted server
  const TOO_MANY_RETRY_MS = 30000; // past the per-user socket cap (4429)

  // The labels of the connection indicator; a page may word "reconnecting" its own way.
  const LABELS = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" };

  // `path` is the socket's path on this host; `handlers` maps a message's type to the
  // function that takes it. The hooks, all optional:
  //   onState(state, label, waitMs): "connecting", "live" (a snapshot came), "reconnecting"
  //     (waitMs until the next try), or "offline" with the reason as label ("signed out",
  //     "no access"), after which the socket stays closed until reconnectNow();
  //   onOpen(), onClose(event): on any open and any close;
  //   onForbidden(event): the server refused this viewer (after the "no access" state).
  // `loginUrl`: where a signed-out viewer is sent, with this page as `next`.
  class LiveSocket {
    constructor({ path, handlers, loginUrl, onState, onOpen, onClose, onForbidden }) {
      this.path = path;
      this.handlers = handlers;
      this.loginUrl = loginUrl;
      this.hooks = { onState, onOpen, onClose, onForbidden };
      this.socket = null;
      this.attempt = 0;
      this.reconnectTimer = null;
    }

    static url(path) {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${window.location.host}${path}`;
    }

    connect() {
      window.clearTimeout(this.reconnectTimer);
      this.setState("connecting", LABELS.connecting);
      const socket = new WebSocket(LiveSocket.url(this.path));
      this.socket = socket;
      socket.addEventListener("open", () => this.call("onOpen"));
      socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
      socket.addEventListener("close", (event) => {
        this.socket = null;
        this.call("onClose", event);
        if (event.code === LiveSocket.CLOSE_UNAUTHENTICATED) {
          this.setState("offline", "signed out");
          const next = encodeURIComponent(window.location.pathname);
          window.location.href = `${this.loginUrl}?next=${next}`;
        } else if (event.code === LiveSocket.CLOSE_FORBIDDEN) {
          this.setState("offline", "no access");
          this.call("onForbidden", event);
        } else if (event.code === LiveSocket.CLOSE_TOO_MANY) {
          // Too many open views for this account: try again slowly, saying why.
          this.setState("reconnecting", "too many open views", TOO_MANY_RETRY_MS);
          this.reconnectTimer = window.setTimeout(() => this.connect(), TOO_MANY_RETRY_MS);
        } else {
          this.scheduleReconnect();
        }
      });
    }

    // A snapshot re-syncs the page: the connection is live again and the backoff restarts.
    receive(message) {
      if (message.type === "snapshot") {
        this.resetBackoff();
        this.setState("live", LABELS.live);
      }
      const handle = this.handlers[message.type];
      if (handle) handle(message);
    }

    // Exponential backoff with jitter: 0.5 s doubling to 4 s, each wait between half and
    // all of its step, so viewers of a restarted server do not all come back at once.
    scheduleReconnect() {
      const step = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.attempt);
      const wait = step / 2 + Math.random() * (step / 2);
      this.attempt += 1;
      this.setState("reconnecting", LABELS.reconnecting, wait);
      this.reconnectTimer = window.setTimeout(() => this.connect(), wait);
    }

    resetBackoff() {
      this.attempt = 0;
    }

    // Try again at once (the browser is back online), unless a socket is open or opening.
    reconnectNow() {
      if (this.socket === null) {
        this.resetBackoff();
        this.connect();
      }
    }

    isOpen() {
      return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
    }

    // Sends `payload` as JSON if the socket is open; answers whether it was sent.
    send(payload) {
      if (!this.isOpen()) return false;
      this.socket.send(JSON.stringify(payload));
      return true;
    }

    setState(state, label, waitMs) {
      this.call("onState", state, label, waitMs);
    }

    call(hook, ...args) {
      if (this.hooks[hook]) this.hooks[hook](...args);
    }
  }

  LiveSocket.CLOSE_UNAUTHENTICATED = 4401;
  LiveSocket.CLOSE_FORBIDDEN = 4403;
  LiveSocket.CLOSE_TOO_MANY = 4429;

  ns.LiveSocket = LiveSocket;
})(window.TetrisTrainer);
