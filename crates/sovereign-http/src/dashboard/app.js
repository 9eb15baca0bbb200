// Sovereign's dashboard: the script. It signs in (GET /api/auth/me), then reads the same API
// and server-sent event streams as any other client; the server enforces every permission,
// the page only leaves out the buttons a role may not use.
//
// Rules this file keeps:
// - Every request goes through api(); every stream through stream() (fetch + ReadableStream,
//   because EventSource cannot send an Authorization header).
// - Text reaches the page only through textContent / text nodes, never innerHTML.
// - Prices, money and quantities are shown as the exact strings the API sent. Numbers are
//   parsed only to draw sparklines and to pick a colour.
// - No polling: panels with a stream refetch their snapshot when the stream (re)connects;
//   the others fetch when opened and on Refresh.
// - Streams run for the open panel only (and /sse/services always): a browser keeps at most
//   six HTTP/1.1 connections to one server, and every open stream holds one.
(() => {
  "use strict";

  // ----- constants ----------------------------------------------------------------------

  const KEY = "sov_key"; // sessionStorage: the API key, when signed in with one
  const ME = "/api/auth/me";
  const PANELS = ["overview", "trading", "services", "tasks", "alerts", "audit", "truth", "gateways", "deploys"];
  const RANK = { viewer: 0, trader: 1, admin: 2 };
  const OPEN = new Set(["submitted", "accepted", "partially_filled"]);
  const ALIVE = new Set(["starting", "running", "healthy", "unhealthy", "stopping"]);
  const MAX_ORDERS = 200;
  const MAX_FILLS = 100;
  const MAX_LISTED = 50; // alerts and task results shown
  const SPARK_POINTS = 120;
  const MAX_LOG_LINES = 500;
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 10000;

  // Colour of a state, by kind (tone-ok, -warn, -bad, -info, -muted in app.css).
  const TONES = {
    trading: { active: "ok", reducing: "warn", halted: "bad" },
    order: {
      filled: "ok", submitted: "info", accepted: "info", partially_filled: "info",
      canceled: "muted", expired: "muted", rejected: "bad", denied: "bad",
    },
    service: {
      healthy: "ok", running: "ok", starting: "warn", stopping: "warn", backoff: "warn",
      unhealthy: "bad", failed: "bad", stopped: "muted", exited: "muted",
    },
    health: { healthy: "ok", degraded: "warn", unhealthy: "bad" },
    result: { success: "ok", error: "bad", timeout: "bad", skipped: "muted", running: "info" },
    delivery: { delivered: "ok", pending: "warn", dropped: "bad", dead: "bad", skipped: "muted" },
    priority: { P0: "bad", P1: "warn", P2: "info", P3: "muted" },
    connection: { connected: "ok", disconnected: "bad", unknown: "muted" },
    recon: { ok: "ok", pending: "warn", mismatch: "bad", unread: "warn", none: "muted" },
    deploy: {
      succeeded: "ok", succeeded_partial: "warn", failed: "bad", rolled_back: "bad", aborted: "muted",
      pending: "info", deploying: "info", verifying: "info", promoting: "info", paused: "warn", rolling_back: "bad",
      waiting: "muted", deployed: "ok", deploy_failed: "bad", rollback_failed: "bad",
    },
  };

  // ----- state ----------------------------------------------------------------------------

  const S = {
    me: null, // the answer of /api/auth/me
    epoch: 0, // bumped at sign-out: answers of an earlier session are dropped
    panel: null,
    lastMode: null,
    accounts: [],
    quotes: new Map(), // symbol -> {symbol, last, bid, ask, dir}
    history: new Map(), // symbol -> [number] (sparklines only)
    sparkDirty: new Set(),
    orders: new Map(), // id -> order
    positions: new Map(), // "account:symbol" -> position
    fills: [], // newest first
    services: [],
    streams: new Map(), // key -> stream handle
    logService: "",
    logLines: [],
    alerts: [], // newest first, as /api/alerts lists them
    results: [], // newest first
    tasksDue: 0, // a timer: the tasks table is read again after a burst of results
    channelsDue: 0, // the same for the channels' counters after deliveries
    deploysDue: 0, // the plans are read again after a burst of deploy events
  };

  // Parts a role may not use are taken out of the page (placeActions); they stay reachable
  // here, so code that fills them in needs no role checks of its own.
  const detached = [];
  const $ = (id) => {
    const el = document.getElementById(id);
    if (el) return el;
    for (const root of detached) {
      const inner = root.querySelector("#" + id);
      if (inner) return inner;
    }
    return null;
  };

  // ----- small DOM helpers -----------------------------------------------------------------

  /** An element: `props` are attributes ("class", "text" and "on" are special); children are
   *  nodes or strings (strings become text nodes, never markup). */
  function h(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  }

  /** What to show for a value: its exact text, or a dash when there is none. */
  const shown = (v) => (v == null || v === "" ? "—" : String(v));

  function setText(el, v) {
    const t = shown(v);
    if (el.textContent !== t) el.textContent = t;
  }

  function setClass(el, cls) {
    if (el.className !== cls) el.className = cls;
  }

  function setTitle(el, t) {
    if (t) {
      if (el.title !== t) el.title = t;
    } else if (el.hasAttribute("title")) el.removeAttribute("title");
  }

  const toneOf = (kind, v) => (TONES[kind] && TONES[kind][v] ? "tone-" + TONES[kind][v] : "");
  const signTone = (v) => (typeof v === "string" && v.startsWith("-") ? "tone-bad" : "");

  /** An RFC 3339 time in the reader's zone; the UTC text as it came, on hover. */
  function localTime(iso) {
    // Date parses at most milliseconds reliably; the API sends microseconds.
    const d = new Date(String(iso).replace(/(\.\d{3})\d+/, "$1"));
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function timeEl(iso) {
    if (!iso) return document.createTextNode("—");
    return h("time", { datetime: iso, title: iso }, localTime(iso));
  }

  function setTime(el, iso) {
    if (el.sovIso === iso && el.firstChild) return;
    el.sovIso = iso;
    el.replaceChildren(timeEl(iso));
  }

  /** A duration in whole seconds as "3d 4h", "2h 05m", "4m 09s", "12s". */
  function duration(s) {
    if (s == null) return null;
    s = Math.max(0, Math.floor(s));
    const pad = (n) => String(n).padStart(2, "0");
    const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${pad(m)}m`;
    if (m) return `${m}m ${pad(sec)}s`;
    return `${sec}s`;
  }

  /** Order and fill ids are decimal strings: compare them as numbers without a float. */
  function cmpId(a, b) {
    a = String(a);
    b = String(b);
    if (/^\d+$/.test(a) && /^\d+$/.test(b) && a.length !== b.length) return a.length - b.length;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Replace a select's options ([value, label] pairs) only when they changed, keeping the
   *  choice when it is still offered (rebuilding an open select would close it). */
  function setOptions(select, options) {
    const sig = JSON.stringify(options);
    if (select.sovSig === sig) return;
    select.sovSig = sig;
    const current = select.value;
    select.replaceChildren(...options.map(([v, label]) => h("option", { value: v }, label)));
    if (options.some(([v]) => v === current)) select.value = current;
  }

  const enc = encodeURIComponent;

  // ----- results and errors ----------------------------------------------------------------

  /** Write an outcome where the action was taken; tone: "", "ok", "error" or "denied". */
  function say(el, text, tone) {
    if (!el) return;
    el.textContent = text || "";
    el.className = "result" + (tone ? " " + tone : "");
    el.sovLoadError = false;
  }

  const isOk = (r) => r.status >= 200 && r.status < 300;

  /** The error of an answer: the body's {error:{code,message,field}}, or one made up for a
   *  network failure or an answer that is not the API's. */
  function errorOf(r) {
    const e = r.body && r.body.error;
    if (e && typeof e === "object" && e.code) return e;
    return { code: r.status ? `http_${r.status}` : "network", message: "unexpected answer", field: null };
  }

  function errorText(r) {
    const e = errorOf(r);
    return `${e.code}: ${e.message}` + (e.field ? ` (field ${e.field})` : "");
  }

  const why = (e) => (e && e.message) || String(e);

  // ----- the API ---------------------------------------------------------------------------

  const storedKey = () => {
    try {
      return sessionStorage.getItem(KEY);
    } catch {
      return null; // storage disabled: sessions (cookies) still work
    }
  };

  /** The headers every request carries: the key, and a session's CSRF token on changes. */
  function authHeaders(method) {
    const headers = {};
    const key = storedKey();
    if (key) headers.Authorization = "Bearer " + key;
    if (method !== "GET" && method !== "HEAD" && S.me && S.me.csrf_token) {
      headers["X-CSRF-Token"] = S.me.csrf_token;
    }
    return headers;
  }

  /**
   * One request to this engine → {status, body}. Never throws: a network failure is status 0
   * with an error body. With `out`, an error's code and message are written there.
   */
  async function api(method, path, body, out) {
    const headers = { Accept: "application/json", ...authHeaders(method) };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      const res = await fetch(path, init);
      let text = "";
      try {
        text = await res.text();
      } catch {
        // the answer was cut off: treated as no body
      }
      let parsed = null;
      if (text) {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { error: { code: `http_${res.status}`, message: "the answer is not JSON", field: null } };
        }
      }
      r = { status: res.status, body: parsed };
    } catch (e) {
      r = { status: 0, body: { error: { code: "network", message: "the engine did not answer (" + why(e) + ")", field: null } } };
    }
    // A credential that stops working (revoked key, ended session) ends the page's session.
    if (r.status === 401 && S.me && path !== ME) signedOut(errorText(r));
    if (out && !isOk(r)) say(out, errorText(r), "error");
    return r;
  }

  /** GET for a panel: the body, or null (error written to `out`, or the session changed). A
   *  load error is cleared by the next successful load. */
  async function load(path, out) {
    const epoch = S.epoch;
    const r = await api("GET", path);
    if (epoch !== S.epoch || !S.me) return null;
    if (!isOk(r)) {
      if (out) {
        say(out, errorText(r), "error");
        out.sovLoadError = true;
      }
      return null;
    }
    if (out && out.sovLoadError) say(out, "");
    return r.body;
  }

  const can = (role) => !!S.me && (RANK[S.me.role] ?? -1) >= RANK[role];

  // ----- server-sent events ----------------------------------------------------------------

  /** A parser of the event-stream format: feed it text as it arrives; it calls
   *  dispatch(event, data) per event and setId(id) for each id field. */
  function sseParser(dispatch, setId) {
    let buf = "", event = "", data = [], hasData = false;
    return (text) => {
      buf += text;
      // A chunk ending in \r may be the first half of \r\n: keep it for the next chunk.
      const cut = buf.endsWith("\r") ? buf.length - 1 : buf.length;
      const lines = buf.slice(0, cut).split(/\r\n|\r|\n/);
      buf = lines.pop() + buf.slice(cut);
      for (const line of lines) {
        if (line === "") {
          if (hasData) dispatch(event || "message", data.join("\n"));
          event = "";
          data = [];
          hasData = false;
          continue;
        }
        if (line[0] === ":") continue; // a comment (the server's keep-alive)
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") {
          data.push(value);
          hasData = true;
        } else if (field === "id") {
          if (!value.includes("\0")) setId(value);
        }
        // "retry" and unknown fields are ignored: the reconnect delay is ours.
      }
    };
  }

  /**
   * Read the event stream at `path`, calling onEvent(event, data) with data parsed as JSON
   * (the raw text with opts.raw, or when it is not JSON). On every (re)connect it calls
   * opts.snapshot() so the panel refetches what it may have missed; so do the server's
   * `reset` and `lagged` events. A dropped stream reconnects after 1 s, doubling to 10 s,
   * with Last-Event-ID when the server sent ids. A 404 ends it (opts.onFatal); a 401 ends
   * the page's session. Returns a handle with close().
   */
  function stream(path, onEvent, opts = {}) {
    const s = { path, conn: "connecting", error: "", closed: false, lastId: null, ctrl: null, timer: 0, delay: RETRY_FIRST_MS };
    s.close = () => {
      s.closed = true;
      clearTimeout(s.timer);
      if (s.ctrl) s.ctrl.abort();
    };
    const dispatch = (name, data) => {
      if (name === "reset" || name === "lagged") {
        if (opts.snapshot) opts.snapshot();
        return;
      }
      let value = data;
      if (!opts.raw) {
        try {
          value = JSON.parse(data);
        } catch {
          // not JSON: handed over as text
        }
      }
      onEvent(name, value);
    };
    const connect = async () => {
      if (s.closed) return;
      s.ctrl = new AbortController();
      const headers = { Accept: "text/event-stream", ...authHeaders("GET") };
      if (s.lastId !== null) headers["Last-Event-ID"] = s.lastId;
      let fatal = false;
      try {
        const res = await fetch(path, { headers, credentials: "same-origin", cache: "no-store", signal: s.ctrl.signal });
        if (!res.ok || !res.body) {
          let body = null;
          try {
            body = await res.json();
          } catch {
            // no JSON error body
          }
          const r = { status: res.status, body };
          if (res.status === 401) {
            signedOut(errorText(r));
            return;
          }
          fatal = res.status === 404;
          throw new Error(errorText(r));
        }
        s.conn = "live";
        s.error = "";
        updateConn();
        if (opts.snapshot) opts.snapshot();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        const feed = sseParser(dispatch, (id) => (s.lastId = id));
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          s.delay = RETRY_FIRST_MS; // it works: a later drop retries after 1 s again
          feed(decoder.decode(value, { stream: true }));
        }
        s.error = "the stream ended";
      } catch (e) {
        if (s.closed) return;
        s.error = why(e);
      }
      if (s.closed) return;
      if (fatal) {
        s.conn = "failed";
        updateConn();
        if (opts.onFatal) opts.onFatal(s.error);
        return;
      }
      s.conn = "reconnecting";
      updateConn();
      s.timer = setTimeout(connect, s.delay);
      s.delay = Math.min(s.delay * 2, RETRY_MAX_MS);
    };
    connect();
    return s;
  }

  /** The header's indicator: live when every open stream is, else reconnecting (why on hover). */
  function updateConn() {
    const el = $("conn");
    const open = [...S.streams.values()].filter((s) => s.conn !== "failed");
    const waiting = open.filter((s) => s.conn !== "live");
    const live = waiting.length === 0;
    el.dataset.conn = live ? "live" : "reconnecting";
    el.textContent = live ? "live" : waiting.some((s) => s.conn === "reconnecting") ? "reconnecting…" : "connecting…";
    el.title = live
      ? `${open.length} live stream${open.length === 1 ? "" : "s"}`
      : waiting.map((s) => `${s.path}: ${s.error || "connecting"}`).join("\n");
  }

  // Which streams each view needs; syncStreams() opens and closes to match.
  const STREAMS = {
    services: () => stream("/sse/services", onServiceEvent, { snapshot: loadServices }),
    // Prices, orders, fills and positions on one connection, conflated: at most four messages
    // a second, each with every symbol's latest price.
    trading: () => stream("/sse/trading?every=250ms", onTradingEvent, { snapshot: loadTrading }),
    alerts: () => stream("/sse/alerts", onAlertEvent, { snapshot: loadAlerts }),
    results: () => stream("/sse/results", onResult, { snapshot: loadResults }),
    deploys: () => stream("/sse/deploys", onDeployEvent, { snapshot: loadDeploys }),
  };

  function onTradingEvent(name, v) {
    if (name === "tick") onTick(v);
    else if (name === "order") upsertOrders([v]);
    else if (name === "fill") addFills([v]);
    else if (name === "position") upsertPositions([v]);
  }

  function loadTrading() {
    loadQuotes();
    loadOrders();
    loadFills();
    loadPositions();
  }

  function wantedStreams() {
    const want = new Set();
    if (!S.me || document.hidden) return want; // a hidden tab holds no connections
    want.add("services"); // the overview's counts and the services table
    if (S.panel === "trading") want.add("trading");
    if (S.panel === "overview" || S.panel === "alerts") want.add("alerts");
    if (S.panel === "tasks") want.add("results");
    if (S.panel === "deploys") want.add("deploys");
    if (S.panel === "services" && S.logService) want.add("log:" + S.logService);
    return want;
  }

  function syncStreams() {
    const want = wantedStreams();
    for (const [k, s] of S.streams) {
      if (!want.has(k)) {
        s.close();
        S.streams.delete(k);
      }
    }
    for (const k of want) {
      if (!S.streams.has(k)) S.streams.set(k, k.startsWith("log:") ? logStream(k.slice(4)) : STREAMS[k]());
    }
    updateConn();
  }

  // ----- rendering in frames -----------------------------------------------------------------

  // Streams may deliver many events a second; tables are redrawn at most once a frame.
  const dirty = new Set();
  let frame = 0;

  function schedule(what) {
    dirty.add(what);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    const jobs = [...dirty];
    dirty.clear();
    for (const job of jobs) RENDER[job]();
  }

  /**
   * Bring a table body in line with `items` (in order), updating rows in place so focus and
   * scroll stay put. A column is {c: classes, v: item → text} or {t: item → RFC 3339 time} or
   * {f: (td, item) → fill the cell}; optional x: item → extra classes, title: item → hover text.
   */
  function syncRows(tbody, items, keyOf, cols, init) {
    const old = new Map();
    for (const tr of tbody.rows) old.set(tr.sovKey, tr);
    items.forEach((item, i) => {
      const key = keyOf(item);
      let tr = old.get(key);
      if (tr) old.delete(key);
      else {
        tr = document.createElement("tr");
        tr.sovKey = key;
        for (const col of cols) tr.append(h("td", { class: col.c || null }));
        if (init) init(tr, item);
      }
      cols.forEach((col, j) => {
        const td = tr.cells[j];
        if (col.t) setTime(td, col.t(item));
        else if (col.f) col.f(td, item);
        else setText(td, col.v(item));
        if (col.x) setClass(td, [col.c, col.x(item)].filter(Boolean).join(" "));
        if (col.title) setTitle(td, col.title(item));
      });
      if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
    });
    for (const tr of old.values()) tr.remove();
  }

  const RENDER = {
    prices: renderPrices,
    orders: renderOrders,
    positions: renderPositions,
    fills: renderFills,
    services: renderServices,
    accounts: renderAccounts,
    log: renderLog,
  };

  // ----- sign-in --------------------------------------------------------------------------

  function showLogin(message) {
    $("boot").hidden = true;
    $("app").hidden = true;
    $("login").hidden = false;
    let text = message || "";
    if (!text && S.lastMode === "local") text = "Local mode needs no key on this machine: reload the page to continue without one.";
    say($("login-error"), text, message ? "error" : "");
    $("login-key").focus();
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const input = $("login-key");
    const out = $("login-error");
    const key = input.value.trim();
    if (!key) {
      say(out, "Enter an API key.", "error");
      return;
    }
    try {
      sessionStorage.setItem(KEY, key);
    } catch {
      say(out, "This browser does not allow session storage, so a key cannot be kept.", "error");
      return;
    }
    const btn = $("login-submit");
    btn.disabled = true;
    say(out, "Signing in…");
    const r = await api("GET", ME);
    btn.disabled = false;
    if (isOk(r) && r.body) {
      input.value = "";
      start(r.body);
      return;
    }
    sessionStorage.removeItem(KEY);
    say(out, errorText(r), "error");
  }

  function start(me) {
    S.me = me;
    S.lastMode = me.mode;
    say($("login-error"), "");
    $("boot").hidden = true;
    $("login").hidden = true;
    $("app").hidden = false;
    $("who").textContent = `${me.subject} · ${me.role}`;
    $("who").title = `signed in via ${me.via}; ${me.mode} mode`;
    placeActions();
    route();
  }

  /** Sign out: forget the key, end the session (the answer does not matter), show sign-in. */
  function signOut() {
    try {
      sessionStorage.clear();
    } catch {
      // storage disabled: nothing kept
    }
    // api() reads the CSRF token before its first await, so the reset below does not lose it.
    api("POST", "/api/auth/logout");
    reset();
    // The next person to sign in starts at the overview (no hashchange event fires).
    history.replaceState(null, "", location.pathname + location.search);
    showLogin("");
  }

  /** The server refused the page's credential: back to sign-in with why. */
  function signedOut(message) {
    if (!S.me) return;
    try {
      sessionStorage.removeItem(KEY);
    } catch {
      // storage disabled
    }
    reset();
    showLogin("Signed out: " + message);
  }

  /** Drop everything of the session: streams, data, rendered rows. */
  function reset() {
    S.epoch++;
    S.me = null;
    S.panel = null;
    for (const s of S.streams.values()) s.close();
    S.streams.clear();
    S.accounts = [];
    S.quotes.clear();
    S.history.clear();
    S.orders.clear();
    S.positions.clear();
    S.fills = [];
    S.services = [];
    S.logService = "";
    S.logLines = [];
    for (const tb of document.querySelectorAll("#app tbody")) tb.replaceChildren();
    for (const el of document.querySelectorAll("#app .result")) say(el, "");
    for (const id of ["ticket-result", "kill-result"]) say($(id), "");
    for (const id of ["health-failing", "last-alert", "audit-verify", "truth-meta", "truth-rejected", "truth-components", "symbols", "log-pre", "who"]) {
      $(id).replaceChildren();
    }
    for (const id of ["health-status", "health-score", "services-up", "services-down"]) $(id).textContent = "—";
    $("health-how").textContent = "";
    $("services-down-names").textContent = "";
    setOptions($("log-service"), [["", "(none)"]]);
    setOptions($("kill-scope"), [["all", "All accounts"]]);
    setOptions($("symbols"), []);
    const dialog = $("confirm");
    if (dialog.open) dialog.close();
  }

  // ----- role-gated actions ------------------------------------------------------------------

  const ticketForm = $("ticket");
  const killBox = $("kill");
  detached.push(ticketForm, killBox);

  /** Put in only what the role may use: the order ticket and Flatten for traders, HARDSTOP,
   *  Resume, service buttons and the alert test for admins. Nothing for viewers. */
  function placeActions() {
    const trader = can("trader"), admin = can("admin");
    $("ticket-slot").replaceChildren(...(trader ? [ticketForm] : []));
    $("ticket-actions").replaceChildren(
      ...(trader ? [h("button", { type: "submit", class: "primary", "data-action": "submit-order" }, "Submit order")] : []),
    );
    const kill = [];
    if (admin) kill.push(h("button", { type: "button", class: "danger", "data-action": "hardstop" }, "HARDSTOP"));
    if (trader) kill.push(h("button", { type: "button", class: "warn", "data-action": "flatten" }, "Flatten"));
    if (admin) kill.push(h("button", { type: "button", "data-action": "resume" }, "Resume"));
    $("kill-actions").replaceChildren(...kill);
    $("kill-slot").replaceChildren(...(kill.length ? [killBox] : []));
    $("alerts-tools").replaceChildren(
      ...(admin ? [h("button", { type: "button", "data-action": "test-alert" }, "Send test")] : []),
    );
  }

  // ----- navigation ----------------------------------------------------------------------------

  const LOADERS = {
    overview: () => {
      loadHealth();
      loadAccounts();
      loadServices();
    }, // the last alert comes with the alerts stream's snapshot
    trading: () => loadAccounts(), // the rest comes with the streams' snapshots
    services: () => loadServices(),
    tasks: () => loadTasks(), // results come with their stream's snapshot
    alerts: () => loadChannels(), // alerts come with their stream's snapshot
    audit: () => loadAudit(),
    truth: () => loadTruth(),
    gateways: () => loadGateways(),
    deploys: () => loadDeployHistory(), // plans come with the deploys stream's snapshot
  };

  // Refresh reads again what a panel's streams brought too.
  const REFRESH = {
    overview: () => {
      LOADERS.overview();
      loadAlerts();
    },
    tasks: () => {
      loadTasks();
      loadResults();
    },
    alerts: () => {
      loadChannels();
      loadAlerts();
    },
    deploys: () => {
      loadDeploys();
      loadDeployHistory();
    },
  };

  function route() {
    if (!S.me) return;
    let name = location.hash.slice(1);
    if (!PANELS.includes(name)) name = "overview";
    if (name === S.panel) return;
    S.panel = name;
    for (const p of PANELS) $("panel-" + p).hidden = p !== name;
    for (const a of document.querySelectorAll("#tabs a")) {
      if (a.dataset.tab === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    syncStreams();
    LOADERS[name]();
  }

  // ----- overview --------------------------------------------------------------------------------

  async function loadHealth() {
    const epoch = S.epoch;
    // 503 (score 0) carries the same body as 200.
    const r = await api("GET", "/api/health/deep");
    if (epoch !== S.epoch) return;
    const out = $("overview-result");
    const b = r.body;
    if (!b || !Array.isArray(b.checks)) {
      say(out, errorText(r), "error");
      out.sovLoadError = true;
      return;
    }
    if (out.sovLoadError) say(out, "");
    const status = $("health-status");
    status.textContent = shown(b.status);
    setClass(status, "badge " + toneOf("health", b.status));
    $("health-score").textContent = `score ${shown(b.score)}`;
    $("health-how").textContent = shown(b.how);
    $("health-failing").replaceChildren(
      ...b.checks.filter((c) => !c.ok).map((c) =>
        h("li", null, c.critical ? h("span", { class: "critical" }, "critical ") : null, h("strong", null, c.name), " — ", shown(c.detail))),
    );
  }

  async function loadAccounts() {
    const b = await load("/api/accounts", $(S.panel === "trading" ? "orders-result" : "overview-result"));
    if (!b) return;
    S.accounts = b.accounts || [];
    schedule("accounts");
  }

  const ACCOUNT_COLS = [
    { v: (a) => a.account },
    {
      f: (td, a) => {
        let badge = td.firstElementChild;
        if (!badge) td.append((badge = h("span", { "data-account-state": a.account })));
        setText(badge, a.trading_state);
        setClass(badge, "badge " + toneOf("trading", a.trading_state));
      },
    },
    { v: (a) => a.currency },
    { c: "num", v: (a) => a.equity, x: (a) => signTone(a.equity) },
    { c: "num", v: (a) => a.day_pnl, x: (a) => signTone(a.day_pnl) },
    { c: "num", v: (a) => a.cash, x: (a) => signTone(a.cash) },
    { c: "num", v: (a) => a.open_orders },
  ];

  function renderAccounts() {
    syncRows($("accounts-body"), S.accounts, (a) => a.account, ACCOUNT_COLS);
    const names = S.accounts.map((a) => a.account);
    setOptions($("ticket-account"), names.length ? names.map((n) => [n, n]) : [["", "(default)"]]);
    setOptions($("kill-scope"), [["all", "All accounts"], ...S.accounts.map((a) => [a.account, `${a.account} (${a.trading_state})`])]);
  }

  function renderLastAlert() {
    const box = $("last-alert");
    const a = S.alerts[0];
    if (!a) {
      box.replaceChildren("No alerts yet.");
      return;
    }
    const parts = [
      h("p", null, h("span", { class: "badge " + toneOf("priority", a.priority) }, a.priority), " ", h("strong", null, a.title)),
      h("p", { class: "small" }, timeEl(a.at), ` · ${a.source}`),
    ];
    if (a.message) parts.push(h("p", { class: "small" }, a.message));
    parts.push(deliveryBadges(a.deliveries || []));
    box.replaceChildren(...parts);
  }

  // ----- trading: prices ---------------------------------------------------------------------

  async function loadQuotes() {
    const b = await load("/api/market/quotes", $("orders-result"));
    if (!b) return;
    for (const q of b.quotes || []) {
      const cur = S.quotes.get(q.symbol) || { symbol: q.symbol, dir: "" };
      cur.last = q.last;
      cur.bid = q.bid;
      cur.ask = q.ask;
      S.quotes.set(q.symbol, cur);
      if (!S.history.has(q.symbol) && q.last != null) {
        S.history.set(q.symbol, [Number(q.last)]);
        S.sparkDirty.add(q.symbol);
      }
    }
    schedule("prices");
  }

  function onTick(t) {
    if (!t || !t.symbol) return;
    const q = S.quotes.get(t.symbol) || { symbol: t.symbol, dir: "" };
    // The direction only colours the cell; the text stays the API's.
    if (q.last != null) {
      const a = Number(q.last), b = Number(t.price);
      q.dir = b > a ? "up" : b < a ? "down" : q.dir;
    }
    q.last = t.price;
    // Like the engine's quote: a tick without a bid or ask keeps the last one.
    if (t.bid != null) q.bid = t.bid;
    if (t.ask != null) q.ask = t.ask;
    S.quotes.set(t.symbol, q);
    const hist = S.history.get(t.symbol) || [];
    hist.push(Number(t.price));
    if (hist.length > SPARK_POINTS) hist.splice(0, hist.length - SPARK_POINTS);
    S.history.set(t.symbol, hist);
    S.sparkDirty.add(t.symbol);
    schedule("prices");
  }

  const PRICE_COLS = [
    { v: (q) => q.symbol },
    { c: "num last", v: (q) => q.last, x: (q) => q.dir },
    { c: "num", v: (q) => q.bid },
    { c: "num", v: (q) => q.ask },
    {
      f: (td, q) => {
        let canvas = td.firstElementChild;
        if (!canvas) {
          const ratio = window.devicePixelRatio || 1;
          canvas = h("canvas", { class: "spark", "aria-hidden": "true" });
          canvas.width = Math.round(128 * ratio);
          canvas.height = Math.round(24 * ratio);
          td.append(canvas);
          S.sparkDirty.add(q.symbol);
        }
        if (S.sparkDirty.has(q.symbol)) drawSpark(canvas, S.history.get(q.symbol) || []);
      },
    },
  ];

  function renderPrices() {
    const list = [...S.quotes.values()].sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0));
    syncRows($("prices-body"), list, (q) => q.symbol, PRICE_COLS, (tr, q) => (tr.dataset.symbol = q.symbol));
    S.sparkDirty.clear();
    setOptions($("symbols"), list.map((q) => [q.symbol, q.symbol]));
  }

  let sparkColour = "";

  /** The last prices as a line, newest at the right edge, scaled to their own range. */
  function drawSpark(canvas, values) {
    const g = canvas.getContext("2d");
    if (!g) return;
    const w = canvas.width, ht = canvas.height;
    g.clearRect(0, 0, w, ht);
    const pts = values.filter(Number.isFinite);
    if (pts.length < 2) return;
    let lo = Math.min(...pts), hi = Math.max(...pts);
    if (hi === lo) {
      hi += 1;
      lo -= 1;
    }
    if (!sparkColour) sparkColour = getComputedStyle(document.documentElement).getPropertyValue("--spark").trim() || "#6cb2ff";
    const pad = ht * 0.1;
    const step = w / (SPARK_POINTS - 1);
    g.lineWidth = Math.max(1, ht / 16);
    g.strokeStyle = sparkColour;
    g.beginPath();
    pts.forEach((v, i) => {
      const x = w - (pts.length - 1 - i) * step;
      const y = ht - pad - ((v - lo) / (hi - lo)) * (ht - 2 * pad);
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }

  // The theme changed: sparklines take the other colour.
  const schemeQuery = window.matchMedia("(prefers-color-scheme: light)");
  const onScheme = () => {
    sparkColour = "";
    for (const s of S.quotes.keys()) S.sparkDirty.add(s);
    schedule("prices");
  };
  if (schemeQuery.addEventListener) schemeQuery.addEventListener("change", onScheme);

  // ----- trading: orders ----------------------------------------------------------------------

  /** Whether `b` is at least as recent as `a` (the API's times sort as text). */
  const fresher = (a, b) => !a || String(b.updated_at || "") >= String(a.updated_at || "");

  function upsertOrders(list) {
    for (const o of list) {
      if (!o || o.id == null) continue;
      if (fresher(S.orders.get(o.id), o)) S.orders.set(o.id, o);
    }
    trimOrders();
    schedule("orders");
  }

  function trimOrders() {
    if (S.orders.size <= MAX_ORDERS) return;
    const ids = [...S.orders.keys()].sort(cmpId);
    for (const id of ids.slice(0, ids.length - MAX_ORDERS)) S.orders.delete(id);
  }

  async function loadOrders() {
    const b = await load(`/api/orders?limit=${MAX_ORDERS}`, $("orders-result"));
    if (!b) return;
    const fresh = new Map();
    let newest = null;
    for (const o of b.orders || []) {
      const cur = S.orders.get(o.id);
      fresh.set(o.id, fresher(cur, o) ? o : cur);
      if (newest === null || cmpId(o.id, newest) > 0) newest = o.id;
    }
    // Orders the stream brought that are newer than the snapshot stay.
    for (const [id, o] of S.orders) if (!fresh.has(id) && (newest === null || cmpId(id, newest) > 0)) fresh.set(id, o);
    S.orders = fresh;
    trimOrders();
    schedule("orders");
  }

  function cancelCell(td, o) {
    const wanted = can("trader") && OPEN.has(o.status);
    const btn = td.firstElementChild;
    if (wanted && !btn) {
      td.append(h("button", { type: "button", class: "small", "data-action": "cancel-order", "data-id": o.id, "aria-label": `Cancel order ${o.id}` }, "Cancel"));
    } else if (!wanted && btn) btn.remove();
  }

  function orderNote(o) {
    const notes = [];
    if (o.reject_code) notes.push(`${o.reject_code}: ${o.reject_reason || ""}`);
    if (o.cancel_reason) notes.push(`canceled: ${o.cancel_reason}`);
    if (o.stop_price != null) notes.push(o.triggered ? "stop triggered" : "stop not triggered");
    if (o.client_order_id) notes.push(`client order id ${o.client_order_id}`);
    notes.push(`updated ${o.updated_at}`);
    return notes.join(" · ");
  }

  const ORDER_COLS = [
    { c: "num", v: (o) => o.id },
    { t: (o) => o.created_at },
    { v: (o) => o.account },
    { v: (o) => o.symbol },
    { v: (o) => o.side, x: (o) => (o.side === "sell" ? "tone-bad" : "tone-ok") },
    { v: (o) => o.type },
    { c: "num qty", v: (o) => o.qty },
    { c: "num", v: (o) => o.filled_qty },
    { c: "num", v: (o) => o.limit_price },
    { c: "num", v: (o) => o.stop_price },
    { c: "num", v: (o) => o.avg_fill_price },
    { v: (o) => o.tif },
    { c: "status", v: (o) => o.status, x: (o) => toneOf("order", o.status), title: orderNote },
    { c: "actions-cell", f: cancelCell },
  ];

  function renderOrders() {
    const list = [...S.orders.values()].sort((a, b) => cmpId(b.id, a.id));
    syncRows($("orders-body"), list, (o) => o.id, ORDER_COLS, (tr, o) => (tr.dataset.orderId = o.id));
  }

  async function cancelOrder(btn) {
    const id = btn.dataset.id;
    const out = $("orders-result");
    btn.disabled = true;
    const r = await api("DELETE", `/api/orders/${enc(id)}`, undefined, out);
    btn.disabled = false;
    if (isOk(r) && r.body) {
      say(out, `order ${r.body.id} ${r.body.status}`, "ok");
      upsertOrders([r.body]);
    }
  }

  // ----- trading: positions and fills --------------------------------------------------------------

  const posKey = (p) => `${p.account}:${p.symbol}`;

  function upsertPositions(list) {
    for (const p of list) if (p && p.symbol) S.positions.set(posKey(p), p);
    schedule("positions");
  }

  async function loadPositions() {
    const b = await load("/api/positions", $("orders-result"));
    if (!b) return;
    S.positions = new Map((b.positions || []).map((p) => [posKey(p), p]));
    schedule("positions");
  }

  const POSITION_COLS = [
    { v: (p) => p.account },
    { v: (p) => p.symbol },
    { c: "num qty", v: (p) => p.qty, x: (p) => signTone(p.qty) },
    { c: "num", v: (p) => p.avg_price },
    { c: "num", v: (p) => p.last_price },
    { c: "num", v: (p) => p.unrealized_pnl, x: (p) => signTone(p.unrealized_pnl) },
    { c: "num", v: (p) => p.realized_pnl, x: (p) => signTone(p.realized_pnl) },
    { c: "num", v: (p) => p.commissions },
  ];

  function renderPositions() {
    const list = [...S.positions.values()].sort((a, b) => (posKey(a) < posKey(b) ? -1 : posKey(a) > posKey(b) ? 1 : 0));
    syncRows($("positions-body"), list, posKey, POSITION_COLS, (tr, p) => (tr.dataset.position = posKey(p)));
  }

  /** Newest first: by time, then by fill id. */
  const byNewestFill = (a, b) => (a.at === b.at ? cmpId(b.fill_id, a.fill_id) : a.at < b.at ? 1 : -1);

  function addFills(list) {
    const seen = new Set(S.fills.map((f) => f.fill_id));
    for (const f of list) if (f && f.fill_id != null && !seen.has(f.fill_id)) S.fills.push(f);
    S.fills.sort(byNewestFill);
    S.fills.length = Math.min(S.fills.length, MAX_FILLS);
    schedule("fills");
  }

  async function loadFills() {
    const b = await load(`/api/fills?limit=${MAX_FILLS}`, $("orders-result"));
    if (!b) return;
    const snap = b.fills || [];
    const newest = snap.reduce((m, f) => (m === null || cmpId(f.fill_id, m) > 0 ? f.fill_id : m), null);
    // Fills the stream brought after the snapshot stay.
    const later = S.fills.filter((f) => newest === null || cmpId(f.fill_id, newest) > 0);
    S.fills = [];
    addFills([...snap, ...later]);
  }

  const FILL_COLS = [
    { t: (f) => f.at },
    { c: "num", v: (f) => f.fill_id, title: (f) => (f.exec_id ? `venue execution ${f.exec_id}` : "") },
    { c: "num", v: (f) => f.order_id },
    { v: (f) => f.account },
    { v: (f) => f.symbol },
    { v: (f) => f.side, x: (f) => (f.side === "sell" ? "tone-bad" : "tone-ok") },
    { c: "num", v: (f) => f.qty },
    { c: "num", v: (f) => f.price },
    { c: "num", v: (f) => f.commission },
    { c: "num", v: (f) => f.realized_pnl, x: (f) => signTone(f.realized_pnl) },
  ];

  function renderFills() {
    syncRows($("fills-body"), S.fills, (f) => f.fill_id, FILL_COLS, (tr, f) => (tr.dataset.fill = f.fill_id));
  }

  // ----- trading: order ticket ------------------------------------------------------------------------

  const TICKET_FIELDS = {
    account: "ticket-account", symbol: "ticket-symbol", side: "ticket-side", qty: "ticket-qty",
    type: "ticket-type", limit_price: "ticket-limit", stop_price: "ticket-stop", tif: "ticket-tif",
  };

  /** Limit and stop prices are asked only for the order types that use them. */
  function syncTicketType() {
    const t = $("ticket-type").value;
    $("ticket-limit").disabled = !(t === "limit" || t === "stop_limit");
    $("ticket-stop").disabled = !(t === "stop" || t === "stop_limit");
  }

  async function submitOrder(ev) {
    ev.preventDefault();
    const out = $("ticket-result");
    const btn = ticketForm.querySelector('[data-action="submit-order"]');
    if (!btn || btn.disabled) return;
    for (const id of Object.values(TICKET_FIELDS)) $(id).removeAttribute("aria-invalid");
    const text = (id) => $(id).value.trim();
    // Exactly what was typed: the engine parses the decimals.
    const body = { symbol: text("ticket-symbol"), side: $("ticket-side").value, qty: text("ticket-qty"), type: $("ticket-type").value, tif: $("ticket-tif").value };
    if ($("ticket-account").value) body.account = $("ticket-account").value;
    if (!$("ticket-limit").disabled && text("ticket-limit")) body.limit_price = text("ticket-limit");
    if (!$("ticket-stop").disabled && text("ticket-stop")) body.stop_price = text("ticket-stop");
    btn.disabled = true;
    say(out, "Sending…");
    const epoch = S.epoch;
    const r = await api("POST", "/api/orders", body);
    btn.disabled = false;
    if (epoch !== S.epoch) return;
    if ((r.status === 201 || r.status === 200) && r.body) {
      say(out, `order ${r.body.id} ${r.body.status}` + (r.status === 200 ? " (the existing order)" : ""), "ok");
      upsertOrders([r.body]);
      return;
    }
    const e = errorOf(r);
    if (r.status === 422) {
      if (r.body && r.body.order) upsertOrders([r.body.order]);
      say(out, `Denied by risk: ${e.code} — ${e.message}`, "denied");
    } else say(out, errorText(r), "error");
    const field = e.field && TICKET_FIELDS[e.field];
    if (field) {
      $(field).setAttribute("aria-invalid", "true");
      $(field).focus();
    }
  }

  // ----- trading: kill switch ---------------------------------------------------------------------------

  let pending = null; // the confirmation the dialog is showing

  function openConfirm(o) {
    pending = o;
    $("confirm-title").textContent = o.title;
    $("confirm-text").textContent = o.text;
    $("confirm-reason").value = "";
    $("confirm-flatten-row").hidden = !o.flattenOption;
    $("confirm-flatten").checked = false;
    say($("confirm-result"), "", "error");
    const ok = $("confirm-ok");
    ok.textContent = o.title;
    ok.disabled = true;
    $("confirm").showModal();
    $("confirm-reason").focus();
  }

  function syncConfirm() {
    $("confirm-ok").disabled = !pending || pending.busy || !$("confirm-reason").value.trim();
  }

  async function runConfirm() {
    const o = pending;
    const reason = $("confirm-reason").value.trim();
    if (!o || o.busy || !reason) return;
    o.busy = true;
    syncConfirm();
    say($("confirm-result"), "Sending…");
    const r = await o.run(reason, $("confirm-flatten").checked);
    o.busy = false;
    if (pending !== o) return; // the dialog was closed meanwhile
    if (isOk(r) && r.body) {
      $("confirm").close();
      say(o.out || $("kill-result"), o.done(r.body), "ok");
      if (o.after) o.after();
      else {
        loadAccounts();
        loadOrders();
        loadPositions();
      }
    } else {
      say($("confirm-result"), errorText(r), "error");
      syncConfirm();
    }
  }

  /** The kill switch's body for the chosen scope: absent account means every account. */
  function scoped(fields) {
    const scope = $("kill-scope").value;
    return scope && scope !== "all" ? { account: scope, ...fields } : fields;
  }

  function scopeLabel() {
    const scope = $("kill-scope").value;
    return scope && scope !== "all" ? `account ${scope}` : "every account";
  }

  function stateSummary(verb, b) {
    let s = `${verb} ${b.account}: ${b.trading_state}${b.changed ? "" : " (unchanged)"}`;
    if (b.canceled && b.canceled.length) s += `; ${b.canceled.length} working order(s) canceled`;
    if (b.flattened) s += `; ${b.flattened.length} closing order(s)`;
    return s;
  }

  function killAction(action) {
    const label = scopeLabel();
    if (action === "hardstop") {
      openConfirm({
        title: "HARDSTOP",
        text: `Halt trading for ${label}: working orders are canceled, and only cancels and flatten pass until Resume.`,
        flattenOption: true,
        run: (reason, flatten) => api("POST", "/api/risk/hardstop", scoped({ reason, flatten })),
        done: (b) => stateSummary("HARDSTOP", b),
      });
    } else if (action === "flatten") {
      openConfirm({
        title: "Flatten",
        text: `Cancel the working orders of ${label} and close every position at market.`,
        run: (reason) => api("POST", "/api/positions/flatten", scoped({ reason })),
        done: (b) => `Flatten ${label}: ${b.count} closing order(s)`,
      });
    } else if (action === "resume") {
      openConfirm({
        title: "Resume",
        text: `Let ${label} trade again.`,
        run: (reason) => api("POST", "/api/risk/resume", scoped({ reason })),
        done: (b) => stateSummary("Resume", b),
      });
    }
  }

  // ----- services ------------------------------------------------------------------------------------

  async function loadServices() {
    const b = await load("/api/services", $(S.panel === "services" ? "services-result" : "overview-result"));
    if (!b) return;
    S.services = b.services || [];
    schedule("services");
  }

  // A transition shows at once; the list is refetched shortly after for pid and uptime.
  let servicesTimer = 0;
  function refetchServicesSoon() {
    clearTimeout(servicesTimer);
    servicesTimer = setTimeout(loadServices, 300);
  }

  function onServiceEvent(name, e) {
    if (name !== "service" || !e || !e.service) return;
    const s = S.services.find((x) => x.name === e.service);
    if (s) {
      s.state = e.to;
      s.reason = e.reason;
      schedule("services");
    }
    refetchServicesSoon();
  }

  function healthText(s) {
    const c = s.health;
    if (!c) return null;
    return `${c.type}${c.last ? ": " + c.last : ""}${c.failures ? ` (${c.failures} failed)` : ""}`;
  }

  function reasonText(s) {
    const parts = [s.reason];
    if (s.waiting_for && s.waiting_for.length) parts.push(`waiting for ${s.waiting_for.join(", ")}`);
    if (s.last_exit) parts.push(`last exit: ${s.last_exit.description}`);
    return parts.filter(Boolean).join(" · ");
  }

  function serviceButtons(td, s) {
    if (!can("admin") || td.firstElementChild) return;
    for (const [action, label] of [["start-service", "Start"], ["stop-service", "Stop"], ["restart-service", "Restart"]]) {
      td.append(h("button", { type: "button", class: "small", "data-action": action, "data-name": s.name, "aria-label": `${label} ${s.name}` }, label), " ");
    }
  }

  const SERVICE_COLS = [
    { v: (s) => s.name },
    { c: "state", v: (s) => s.state, x: (s) => toneOf("service", s.state), title: (s) => s.reason },
    { c: "num pid", v: (s) => s.pid },
    { c: "num", v: (s) => duration(s.uptime_s), title: (s) => (s.started_at ? `started ${localTime(s.started_at)} (${s.started_at})` : "") },
    { c: "num", v: (s) => s.restarts },
    { v: healthText, title: healthText },
    { v: reasonText, title: reasonText },
    { c: "actions-cell", f: serviceButtons },
  ];

  function renderServices() {
    syncRows($("services-body"), S.services, (s) => s.name, SERVICE_COLS, (tr, s) => (tr.dataset.service = s.name));
    const up = S.services.filter((s) => ALIVE.has(s.state));
    const down = S.services.filter((s) => !ALIVE.has(s.state));
    $("services-up").textContent = String(up.length);
    $("services-down").textContent = String(down.length);
    $("services-down-names").textContent = down.length ? "down: " + down.map((s) => `${s.name} (${s.state})`).join(", ") : "";
    setOptions($("log-service"), [["", "(none)"], ...S.services.map((s) => [s.name, s.name])]);
    if ($("log-service").value !== S.logService) onLogChoice(); // the followed service is gone
  }

  async function serviceAction(btn) {
    const verb = btn.dataset.action.replace("-service", "");
    const name = btn.dataset.name;
    const out = $("services-result");
    const buttons = btn.parentElement.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    const r = await api("POST", `/api/services/${enc(name)}/${verb}`, undefined, out);
    for (const b of buttons) b.disabled = false;
    if (isOk(r) && r.body) say(out, `${name}: ${verb} → ${r.body.state}${r.body.reason ? " (" + r.body.reason + ")" : ""}`, "ok");
    loadServices();
  }

  // ----- services: live log ---------------------------------------------------------------------------

  function logStream(name) {
    say($("log-status"), `following ${name}…`);
    return stream(`/api/services/${enc(name)}/logs/stream`, (ev, line) => {
      if (ev !== "line" || S.logService !== name) return;
      S.logLines.push(String(line));
      if (S.logLines.length > MAX_LOG_LINES) S.logLines.splice(0, S.logLines.length - MAX_LOG_LINES);
      schedule("log");
    }, {
      raw: true, // log lines are text, not JSON
      snapshot: () => loadLogTail(name),
      onFatal: (msg) => say($("log-status"), msg, "error"),
    });
  }

  async function loadLogTail(name) {
    const b = await load(`/api/services/${enc(name)}/logs?tail=200`, $("log-status"));
    if (!b || S.logService !== name) return;
    S.logLines = (b.lines || []).slice(-MAX_LOG_LINES);
    say($("log-status"), `${name}: ${b.file}`);
    schedule("log");
  }

  function renderLog() {
    const pre = $("log-pre");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = S.logLines.join("\n");
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function onLogChoice() {
    S.logService = $("log-service").value;
    S.logLines = [];
    schedule("log");
    if (!S.logService) say($("log-status"), "");
    syncStreams();
  }

  // ----- tasks ----------------------------------------------------------------------------------------

  async function loadTasks() {
    const b = await load("/api/tasks", $("tasks-result"));
    if (!b) return;
    syncRows($("tasks-body"), b.tasks || [], (t) => t.task_id, TASK_COLS, (tr, t) => (tr.dataset.task = t.task_id));
  }

  async function loadResults() {
    const b = await load(`/api/results?limit=${MAX_LISTED}`, $("tasks-result"));
    if (!b) return;
    // Results the stream brought while this was asked for stay in front.
    const fresh = b.results || [];
    const known = new Set(fresh.map((r) => r.result_id));
    const since = fresh.length ? fresh[0].started_at : "";
    const newer = S.results.filter((r) => !known.has(r.result_id) && r.started_at >= since);
    S.results = [...newer, ...fresh].slice(0, MAX_LISTED);
    renderResults();
  }

  function renderResults() {
    syncRows($("results-body"), S.results, (r) => r.result_id, RESULT_COLS);
  }

  /** A run's result as it is stored: first in the list; its task's row (next run, last
   *  result) is read again, at most once a second however many runs finish. */
  function onResult(name, r) {
    if (name !== "result" || !r || !r.result_id) return;
    S.results = [r, ...S.results.filter((x) => x.result_id !== r.result_id)].slice(0, MAX_LISTED);
    renderResults();
    if (!S.tasksDue) {
      S.tasksDue = setTimeout(() => {
        S.tasksDue = 0;
        if (S.panel === "tasks") loadTasks();
      }, 1000);
    }
  }

  function scheduleText(t) {
    const s = t.schedule;
    if (!s) return "manual";
    if (s.cron) return `cron ${s.cron}${s.tz ? " " + s.tz : ""}${s.calendar ? " · " + s.calendar : ""}`;
    if (s.every) return `every ${s.every}`;
    if (s.at) return `at ${localTime(s.at)}`;
    return JSON.stringify(s);
  }

  const lastStatus = (t) => (t.running ? "running" : t.last_run ? t.last_run.status : null);

  function runButton(td, t) {
    if (!can("trader") || td.firstElementChild) return;
    td.append(h("button", { type: "button", class: "small", "data-action": "run-task", "data-id": t.task_id, "aria-label": `Run ${t.task_id} now` }, "Run now"));
  }

  const TASK_COLS = [
    { v: (t) => t.task_id, title: (t) => t.task_id },
    { v: (t) => t.name, title: (t) => t.name },
    { v: (t) => t.handler },
    { v: scheduleText, title: scheduleText },
    { v: (t) => (t.enabled ? "yes" : "no"), x: (t) => (t.enabled ? "" : "tone-muted") },
    { t: (t) => t.next_run },
    { v: lastStatus, x: (t) => toneOf("result", lastStatus(t)) },
    { t: (t) => t.last_run && t.last_run.finished_at },
    { c: "actions-cell", f: runButton },
  ];

  const RESULT_COLS = [
    { t: (r) => r.started_at },
    { v: (r) => r.task_id, title: (r) => r.task_id },
    { v: (r) => r.trigger },
    { v: (r) => r.status, x: (r) => toneOf("result", r.status) },
    { c: "num", v: (r) => r.duration_ms },
    { c: "num", v: (r) => r.attempt },
    { v: (r) => r.error, title: (r) => r.error },
  ];

  async function runTask(btn) {
    const id = btn.dataset.id;
    const out = $("tasks-result");
    btn.disabled = true;
    say(out, `running ${id}…`);
    const r = await api("POST", `/api/tasks/${enc(id)}/execute`, {}, out);
    btn.disabled = false;
    if (isOk(r) && r.body) {
      const b = r.body;
      say(out, `${b.task_id}: ${b.status}${b.error ? " — " + b.error : ""} (${b.duration_ms} ms)`, b.status === "success" ? "ok" : "error");
    }
    loadTasks(); // its result comes on the results stream
  }

  // ----- alerts ---------------------------------------------------------------------------------------

  function deliveryBadges(deliveries) {
    return h("span", { class: "badges" }, ...deliveries.map((d) =>
      h("span", {
        class: "badge " + toneOf("delivery", d.status),
        title: `${d.attempts} attempt(s)${d.last_error ? " · " + d.last_error : ""} · ${d.updated_at}`,
      }, `${d.channel}: ${d.status}`)));
  }

  const CHANNEL_COLS = [
    { v: (c) => c.name },
    { v: (c) => c.kind },
    { v: (c) => c.target, title: (c) => c.target },
    { v: (c) => (c.disabled ? "disabled" : "active"), x: (c) => (c.disabled ? "tone-bad" : "tone-ok"), title: (c) => c.disabled },
    { c: "num", v: (c) => c.pending },
    { c: "num", v: (c) => c.delivered },
    { c: "num", v: (c) => c.failed, x: (c) => (c.failed ? "tone-bad" : "") },
    { v: (c) => c.last_error, title: (c) => c.last_error },
    { t: (c) => c.last_delivered_at },
  ];

  const ALERT_COLS = [
    { c: "num", v: (a) => a.id },
    { t: (a) => a.at },
    { v: (a) => a.priority, x: (a) => toneOf("priority", a.priority) },
    { v: (a) => a.source, title: (a) => a.source },
    { v: (a) => a.title, title: (a) => a.title },
    { v: (a) => a.message, title: (a) => a.message },
    { c: "wrap", f: (td, a) => td.replaceChildren(deliveryBadges(a.deliveries || [])) },
  ];

  async function loadChannels() {
    const b = await load("/api/alerts/channels", $("alerts-result"));
    if (b) syncRows($("channels-body"), b.channels || [], (c) => c.name, CHANNEL_COLS);
  }

  async function loadAlerts() {
    const b = await load(`/api/alerts?limit=${MAX_LISTED}`, $(S.panel === "alerts" ? "alerts-result" : "overview-result"));
    if (!b) return;
    // The stream may have brought alerts newer than this answer: they stay in front.
    const fresh = b.alerts || [];
    const top = fresh.length ? fresh[0].id : 0;
    S.alerts = [...S.alerts.filter((a) => a.id > top), ...fresh].slice(0, MAX_LISTED);
    renderAlerts();
  }

  function renderAlerts() {
    syncRows($("alerts-body"), S.alerts, (a) => String(a.id), ALERT_COLS);
    renderLastAlert();
  }

  /** An alert accepted (first in the list), or one of its deliveries in a new state. */
  function onAlertEvent(name, v) {
    if (!v) return;
    if (name === "alert") {
      S.alerts = [v, ...S.alerts.filter((a) => a.id !== v.id)].slice(0, MAX_LISTED);
    } else if (name === "delivery") {
      const a = S.alerts.find((x) => x.id === v.alert_id);
      if (!a) return; // older than the list
      const { alert_id: _, ...d } = v;
      a.deliveries = (a.deliveries || []).map((x) => (x.channel === d.channel ? d : x));
    } else return;
    renderAlerts();
    if (S.panel === "alerts" && name === "delivery") loadChannelsSoon();
  }

  /** The channels' counters follow deliveries: read again at most once a second. */
  function loadChannelsSoon() {
    if (S.channelsDue) return;
    S.channelsDue = setTimeout(() => {
      S.channelsDue = 0;
      if (S.panel === "alerts") loadChannels();
    }, 1000);
  }

  async function testAlert(btn) {
    const out = $("alerts-result");
    btn.disabled = true;
    say(out, "Sending a test message to every channel…");
    const r = await api("POST", "/api/alerts/test", {}, out);
    btn.disabled = false;
    if (isOk(r) && r.body) {
      const results = r.body.results || [];
      const text = results.length
        ? "Test: " + results.map((x) => `${x.channel} ${x.ok ? "ok" : "failed"} (${x.detail})`).join("; ")
        : "Test: no channels are configured.";
      say(out, text, r.body.ok ? "ok" : "error");
    }
    loadChannels();
  }

  // ----- audit ----------------------------------------------------------------------------------------

  function facts(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v == null ? "—" : v)]));
  }

  function chainFacts(prefix, c) {
    const rows = [
      [`${prefix}`, h("span", { class: "badge " + (c.ok ? "tone-ok" : "tone-bad") }, c.ok ? "verified" : "broken")],
      [`${prefix} records`, String(c.records)],
      [`${prefix} head seq`, c.head_seq == null ? null : String(c.head_seq)],
      [`${prefix} head hash`, c.head_hash ? h("code", null, c.head_hash) : null],
    ];
    if (!c.ok) rows.push([`${prefix} problem`, `${shown(c.problem)} at seq ${shown(c.problem_seq)}: ${shown(c.message)}`]);
    return rows;
  }

  const AUDIT_COLS = [
    { c: "num", v: (r) => r.seq },
    { t: (r) => r.at },
    { v: (r) => r.actor, title: (r) => r.actor },
    { v: (r) => r.kind, title: (r) => r.kind },
    { c: "mono", v: (r) => JSON.stringify(r.payload), title: (r) => JSON.stringify(r.payload, null, 2) },
    { c: "mono", v: (r) => (r.hash ? r.hash.slice(0, 12) + "…" : null), title: (r) => `hash ${r.hash}\nprev ${r.prev}` },
  ];

  async function loadAudit() {
    const out = $("audit-result");
    const v = await load("/api/audit/verify", out);
    if (v) facts($("audit-verify"), [...chainFacts("Audit trail", v), ...chainFacts("Trading journal", v.journal || {})]);
    // The list runs oldest first from `since`: start 100 before the head for the latest.
    const head = v ? (v.head_seq ?? v.records ?? 0) : 0;
    const since = head > 100 ? `&since=${head - 100}` : "";
    const b = await load(`/api/audit?limit=100${since}`, out);
    if (!b) return;
    const records = (b.records || []).slice().sort((a, c) => c.seq - a.seq);
    syncRows($("audit-body"), records, (r) => String(r.seq), AUDIT_COLS);
  }

  // ----- truth ----------------------------------------------------------------------------------------

  async function loadTruth() {
    const b = await load("/api/truth", $("truth-result"));
    if (!b) return;
    if (b.version == null) {
      facts($("truth-meta"), [["Version", "No Truth version is in force."], ["Directory", b.dir]]);
    } else {
      facts($("truth-meta"), [
        ["Version", h("code", null, b.version)],
        ["Directory", b.dir],
        ["Loaded", b.loaded_at ? timeEl(b.loaded_at) : null],
        ["Node hash", b.node_hash ? h("code", null, b.node_hash) : null],
      ]);
    }
    const rej = b.rejected;
    $("truth-rejected").replaceChildren(
      ...(rej
        ? [
            h("p", { class: "result error" }, "Last change refused (the version above stayed in force) at ", timeEl(rej.at), ":"),
            h("ul", null, ...(rej.problems || []).map((p) => h("li", null, p))),
          ]
        : []),
    );
    // Keep the components a reader opened open across a refresh.
    const box = $("truth-components");
    const opened = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.component));
    const docs = [];
    if (b.node != null) docs.push(["node", b.node, b.node_hash]);
    const comps = b.components || {};
    for (const name of Object.keys(comps).sort()) docs.push([name, comps[name], (b.hashes || {})[name]]);
    box.replaceChildren(
      ...(docs.length
        ? docs.map(([name, doc, hash]) =>
            h("details", { class: "component", "data-component": name, open: opened.has(name) },
              h("summary", null, name, hash ? h("span", { class: "mono", title: hash }, hash.slice(0, 19) + "…") : null),
              h("pre", { class: "doc" }, JSON.stringify(doc, null, 2))))
        : [h("p", { class: "muted" }, "No components.")]),
    );
  }

  // ----- gateways --------------------------------------------------------------------------------------

  function mismatchText(g) {
    const m = g.mismatches || [];
    if (!m.length) return g.flatten_asked_at ? `flatten asked ${g.flatten_asked_at}${g.flat_at ? `, flat at ${g.flat_at}` : ""}` : "";
    return m.map((x) => `${x.symbol}: engine ${shown(x.engine_qty)}, venue ${shown(x.venue_qty)}`).join("\n");
  }

  const GATEWAY_COLS = [
    { v: (g) => g.name },
    { v: (g) => g.kind },
    { v: (g) => g.account },
    { v: (g) => g.venue_account, title: (g) => g.venue_account },
    { v: (g) => g.connection, x: (g) => toneOf("connection", g.connection) },
    { t: (g) => g.last_report_at },
    { v: (g) => g.reconciliation, x: (g) => toneOf("recon", g.reconciliation), title: mismatchText },
    { t: (g) => g.checked_at },
    {
      v: (g) => ((g.unknown_orders || []).length ? `${g.unknown_orders.length}: ${g.unknown_orders.join(", ")}` : "none"),
      x: (g) => ((g.unknown_orders || []).length ? "tone-bad" : "tone-muted"),
      title: (g) => (g.unknown_orders || []).join(", "),
    },
    { c: "num", v: (g) => g.held },
  ];

  async function loadGateways() {
    const b = await load("/api/gateways", $("gateways-result"));
    if (b) syncRows($("gateways-body"), b.gateways || [], (g) => g.name, GATEWAY_COLS, (tr, g) => (tr.dataset.gateway = g.name));
  }

  // ----- deploys ----------------------------------------------------------------------------------------

  const DEPLOY_COLS = [
    { c: "num", v: (r) => r.id },
    { v: (r) => r.plan },
    { c: "mono", v: (r) => r.version, title: (r) => r.version },
    { v: (r) => r.outcome, x: (r) => toneOf("deploy", r.outcome) },
    { c: "num", v: (r) => (r.duration_ms == null ? null : (r.duration_ms / 1000).toFixed(1) + " s") },
    { t: (r) => r.started_at },
    { v: (r) => r.trigger, title: (r) => r.actor },
    { v: (r) => r.reason, title: (r) => r.reason },
  ];

  async function loadDeployHistory() {
    const b = await load("/api/v1/deploy/history?limit=20", $("deploys-result"));
    if (b) syncRows($("deploys-body"), b.runs || [], (r) => String(r.id), DEPLOY_COLS, (tr, r) => (tr.dataset.run = r.id));
  }

  /** Each plan: its run in progress (phase, stage, targets, the gate's tallies, and for an
   *  admin the buttons that steer it), what each target runs, the last run, the figures. */
  async function loadDeploys() {
    const b = await load("/api/v1/deploy/status", $("deploys-result"));
    if (!b) return;
    const plans = b.plans || [];
    const pct = (x) => (x == null ? "—" : Math.round(x * 100) + " %");
    $("deploy-plans").replaceChildren(
      ...(plans.length
        ? plans.map((p) => {
            const a = p.active;
            const card = h("div", { class: "card deploy", "data-plan": p.plan });
            const state = a ? a.phase : "idle";
            const lines = [
              h("h3", null, p.plan, " ", h("span", { class: "badge " + toneOf("deploy", state), "data-deploy-state": p.plan }, state),
                a && a.stage ? h("span", { class: "muted" }, ` ${a.stage}`) : null),
              a ? h("p", { class: "small" }, `run ${a.id}: ${a.kind} ${a.version}`, a.reason ? ` — ${a.reason}` : "") : null,
              p.last ? h("p", { class: "small muted" }, `last: ${p.last.version} ${p.last.outcome}`, p.last.reason ? ` — ${p.last.reason}` : "") : null,
              h("p", { class: "small muted" }, `success ${pct(p.figures.success_rate)} · rollback ${pct(p.figures.rollback_rate)} over ${p.figures.runs} runs`),
            ];
            card.append(...lines.filter(Boolean)); // append() would show a null as text
            const targets = a ? a.targets : Object.entries(p.targets || {}).map(([target, version]) => ({ target, state: version }));
            card.append(h("div", { class: "badges" }, ...targets.map((t) =>
              h("span", { class: "badge " + toneOf("deploy", t.state), "data-target": t.target }, `${t.target}: ${t.state}`))));
            if (a && a.gate && a.gate.length) {
              card.append(h("ul", { class: "small gate" }, ...a.gate.map((c) =>
                h("li", null, `${c.check}${c.target ? " (" + c.target + ")" : ""} ${c.severity}: ${c.successes} ok, ${c.failures} failed, ${c.errors} errors`,
                  c.last ? h("span", { class: "muted" }, ` — ${c.last}`) : null))));
            }
            if (a && can("admin")) {
              const act = (op, label) => h("button", { type: "button", class: op === "abort" ? "danger" : "", "data-action": "deploy-" + op, "data-plan": p.plan }, label);
              const ops = [];
              if (a.phase === "paused") ops.push(act("resume", "Resume"), act("promote", "Promote"));
              else if (a.phase === "verifying") ops.push(act("pause", "Pause"), act("promote", "Promote"));
              else if (a.phase === "deploying") ops.push(act("pause", "Pause"));
              if (a.phase !== "rolling_back") ops.push(act("abort", "Abort"));
              card.append(h("div", { class: "actions" }, ...ops));
            }
            return card;
          })
        : [h("div", { class: "card" }, h("p", { class: "muted" }, "No deploy plans are configured ([deploy.plans.NAME]; see the README's Deploys)."))]),
    );
  }

  /** A run's event: read the plans again (at most every half second), and the history when a
   *  run ended. */
  function onDeployEvent(name, v) {
    if (name !== "deploy" || !v) return;
    if (v.kind === "end") loadDeployHistory();
    if (S.deploysDue) return;
    S.deploysDue = setTimeout(() => {
      S.deploysDue = 0;
      if (S.panel === "deploys") loadDeploys();
    }, 500);
  }

  async function deployAction(btn) {
    const op = btn.dataset.action.slice("deploy-".length);
    const plan = btn.dataset.plan;
    const out = $("deploys-result");
    const send = () => api("POST", `/api/v1/deploy/${enc(plan)}/${op}`, {});
    if (op === "abort") {
      openConfirm({
        title: "Abort deploy",
        text: `Stop the run of ${plan} and roll back every target it deployed.`,
        run: send,
        done: (b) => `${plan}: aborted, ${b.phase}`,
        out,
        after: loadDeploys,
      });
      return;
    }
    btn.disabled = true;
    const r = await send();
    btn.disabled = false;
    if (isOk(r) && r.body) say(out, `${plan}: ${op} → ${r.body.phase}`, "ok");
    else say(out, errorText(r), "error");
    loadDeploys();
  }

  // ----- wiring -----------------------------------------------------------------------------------------

  function wire() {
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", signOut);
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (S.me) syncStreams();
    });

    ticketForm.addEventListener("submit", submitOrder);
    $("ticket-type").addEventListener("change", syncTicketType);
    syncTicketType();

    $("kill-actions").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action]");
      if (b) killAction(b.dataset.action);
    });
    $("confirm-reason").addEventListener("input", syncConfirm);
    $("confirm-ok").addEventListener("click", runConfirm);
    $("confirm-cancel").addEventListener("click", () => $("confirm").close());
    $("confirm").addEventListener("close", () => {
      if (pending) pending.busy = false;
      pending = null;
    });

    // Buttons inside tables, by delegation (rows come and go).
    $("orders-body").addEventListener("click", (e) => {
      const b = e.target.closest('button[data-action="cancel-order"]');
      if (b && !b.disabled) cancelOrder(b);
    });
    $("services-body").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action$='-service']");
      if (b && !b.disabled) serviceAction(b);
    });
    $("tasks-body").addEventListener("click", (e) => {
      const b = e.target.closest('button[data-action="run-task"]');
      if (b && !b.disabled) runTask(b);
    });
    $("alerts-tools").addEventListener("click", (e) => {
      const b = e.target.closest('button[data-action="test-alert"]');
      if (b && !b.disabled) testAlert(b);
    });
    $("log-service").addEventListener("change", onLogChoice);
    $("deploy-plans").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action^='deploy-']");
      if (b && !b.disabled) deployAction(b);
    });

    for (const b of document.querySelectorAll("button[data-refresh]")) {
      b.addEventListener("click", () => {
        if (S.me) (REFRESH[b.dataset.refresh] || LOADERS[b.dataset.refresh])();
      });
    }
  }

  async function boot() {
    wire();
    const r = await api("GET", ME);
    if (isOk(r) && r.body) {
      start(r.body);
      return;
    }
    if (r.status === 401) {
      const hadKey = !!storedKey();
      if (hadKey) sessionStorage.removeItem(KEY);
      showLogin(hadKey ? "The stored key was refused: " + errorOf(r).message : "");
      return;
    }
    showLogin("Cannot sign in: " + errorText(r));
  }

  boot();
})();
