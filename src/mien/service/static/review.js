// The review queue page: loads flagged items from GET /v1/review/items with the page's session
// cookie, decides without reloading (POST /v1/review/items/{id}/decision and
// /v1/review/decisions with the X-CSRF-Token header), pages with the API's cursors and works by
// keyboard. No framework, no inline script (the service's CSP allows same-origin scripts only).
// New flagged items arrive over GET /v1/review/events (EventSource, the same session): they are
// counted in a "N new flagged items" bar and loaded only when the reviewer asks (the bar's button
// or n), so the focused item never moves under the reviewer's keys.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector("meta[name='csrf-token']").content;
  const state = {
    cursors: [null], // the cursor of each page visited; [page] is the current one
    page: 0,
    next: null,
    items: [],
    focus: 0,
    selected: new Set(),
    undo: [], // [{ids, decision}] of this page's session, newest last
    fresh: new Set(), // ids of items that arrived over the event stream, not yet shown
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function say(text, error) {
    $("message").textContent = text;
    $("message").classList.toggle("error", !!error);
  }

  function filters() {
    const q = new URLSearchParams();
    for (const name of ["status", "rule", "profile", "job_id", "kind", "sort"]) {
      const v = $("filters").elements[name].value.trim();
      if (v) q.set(name, v);
    }
    for (const name of ["since", "until"]) {
      const v = $("filters").elements[name].value;
      if (v) q.set(name, new Date(v).toISOString());
    }
    return q;
  }

  async function api(method, url, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    const data = await resp.json().catch(() => ({}));
    if (resp.status === 401) {
      window.location.assign("/review");
    }
    if (!resp.ok) {
      throw new Error(data.detail || data.title || "HTTP " + resp.status);
    }
    return data;
  }

  function seconds(s) {
    return s === null || s === undefined ? "?" : Number(s).toFixed(1) + " s";
  }

  function thumb(it) {
    if (it.kind === "segment") {
      const box = el("div", { class: "segment" });
      if (it.media_url) {
        const video = el("video", {
          src: it.media_url, controls: "", muted: "", preload: "metadata", class: "player",
          "data-start": String(it.start_s || 0),
        });
        video.muted = true;
        const start = it.start_s || 0;
        // a segment of one frame still plays for half a second
        const stop = Math.max(it.end_s === null ? Infinity : it.end_s, start + 0.5);
        video.addEventListener("loadedmetadata", () => { video.currentTime = start; });
        video.addEventListener("play", () => { // played to its end (or off it): from the start
          if (video.currentTime >= stop || video.currentTime < start - 0.1) {
            video.currentTime = start;
          }
        });
        video.addEventListener("timeupdate", () => {
          if (video.currentTime >= stop && !video.paused) {
            video.pause();
            video.dataset.stoppedAt = String(video.currentTime);
          }
        });
        box.append(video);
      } else {
        box.append(el("p", { class: "purged", text: "segment video not retained" }));
      }
      if (it.filmstrip_url) {
        box.append(el("img", { src: it.filmstrip_url, alt: "filmstrip", class: "filmstrip" }));
      }
      return box;
    }
    if (it.media_retained && it.kind === "image") {
      return el("img", {
        src: "/review/items/" + it.id + "/thumbnail", loading: "lazy",
        alt: "annotated picture of " + it.name,
      });
    }
    const why = it.kind === "image"
      ? "picture not retained (retention ended or job deleted)"
      : "video " + it.kind + " " + it.seq + " (no thumbnail)";
    return el("p", { class: "purged", text: why });
  }

  function card(it, index) {
    const decision = it.decision || "undecided";
    const li = el("li", {
      class: "item " + decision, id: "item-" + it.id, "data-id": String(it.id),
      "data-decision": it.decision || "", tabindex: "-1",
    });
    const box = el("input", { type: "checkbox", class: "select", "aria-label": "select" });
    box.checked = state.selected.has(it.id);
    box.addEventListener("change", () => toggle(it.id, box.checked));
    const reasons = el("ul", { class: "reasons" });
    for (const f of it.flags) {
      const rule = f.rule || f.rule_id || f.id || "rule";
      const li2 = el("li", {}, el("strong", { text: rule }), ": " + (f.message || ""));
      if (f.severity) li2.append(el("span", { class: "sev", text: " (" + f.severity + ")" }));
      reasons.append(li2);
    }
    let where = "job " + it.job_id.slice(0, 12) + " · item " + it.item;
    if (it.kind === "segment") {
      where += " · " + seconds(it.start_s) + " to " + seconds(it.end_s);
      if (it.track_id !== null && it.track_id !== undefined) where += " · track " + it.track_id;
    } else {
      where += " · " + it.faces + " face(s)";
    }
    where += " · profile " + (it.profile || "-");
    const text = it.decision
      ? it.decision + " by " + (it.reviewer || "") + " at " + it.decided_at
      : "undecided";
    const decisionLine = el("p", { class: "decision", text });
    if (it.disagreement) {
      decisionLine.append(" ", el("a", {
        class: "badge disagree", href: "/review/items/" + it.id + "#history",
        title: "reviewers disagree: see the item's history", text: "reviewers disagree",
      }));
    }
    if (it.decision_count > 1) {
      decisionLine.append(" · ", el("a", {
        class: "history-link", href: "/review/items/" + it.id + "#history",
        text: it.decision_count + " decisions",
      }));
    }
    const approve = el("button", { type: "button", class: "approve", text: "Approve (a)" });
    const reject = el("button", { type: "button", class: "reject", text: "Reject (r)" });
    approve.addEventListener("click", () => { state.focus = index; decide([it.id], "approve"); });
    reject.addEventListener("click", () => { state.focus = index; decide([it.id], "reject"); });
    const name = el("a", { href: "/review/items/" + it.id, text: it.name });
    li.append(
      el("div", { class: "pick" }, box),
      el("div", { class: "thumb" }, thumb(it)),
      el("div", { class: "body" },
        el("h2", {}, name),
        el("p", { class: "meta", text: where }),
        reasons,
        decisionLine,
        approve, " ", reject),
    );
    li.addEventListener("click", (e) => {
      if (e.target === li || e.target.closest(".body") && !e.target.closest("button,a")) {
        setFocus(index);
      }
    });
    return li;
  }

  function render() {
    const list = $("items");
    list.replaceChildren(...state.items.map(card));
    $("empty").hidden = state.items.length > 0;
    $("prev").disabled = state.page === 0;
    $("next").disabled = !state.next;
    $("page-no").textContent = String(state.page + 1);
    $("selected-count").textContent = String(state.selected.size);
    setFocus(Math.min(state.focus, Math.max(0, state.items.length - 1)), false);
  }

  function setFocus(i, scroll = true) {
    state.focus = i;
    const cards = $("items").children;
    for (let k = 0; k < cards.length; k++) cards[k].classList.toggle("focus", k === i);
    if (scroll && cards[i]) cards[i].scrollIntoView({ block: "nearest" });
  }

  async function load() {
    const main = $("queue");
    main.dataset.busy = "1";
    const q = filters();
    q.set("limit", "50");
    const cursor = state.cursors[state.page];
    if (cursor) q.set("cursor", cursor);
    try {
      const data = await api("GET", "/v1/review/items?" + q.toString());
      state.items = data.items;
      state.next = data.next_cursor;
      for (const k of ["undecided", "approved", "rejected", "all"]) {
        $("c-" + k).textContent = String(data.counts[k]);
      }
      render();
    } catch (e) {
      say("Could not load the queue: " + e.message, true);
    } finally {
      main.dataset.busy = "0";
      main.dataset.version = String(Number(main.dataset.version) + 1);
    }
  }

  async function decide(ids, decision, remember = true) {
    if (!ids.length) return;
    try {
      if (ids.length === 1) {
        await api("POST", "/v1/review/items/" + ids[0] + "/decision", { decision });
      } else {
        await api("POST", "/v1/review/decisions", { item_ids: ids, decision });
      }
    } catch (e) {
      say("The decision was not saved: " + e.message, true);
      return;
    }
    if (remember) state.undo.push({ ids, decision });
    for (const id of ids) state.selected.delete(id);
    const verb = { approve: "approved", reject: "rejected", clear: "undone" }[decision];
    say(ids.length + " item(s) " + verb + (remember ? " · u to undo" : ""));
    await load();
  }

  async function undo() {
    const last = state.undo.pop();
    if (!last) { say("Nothing to undo."); return; }
    await decide(last.ids, "clear", false);
  }

  function toggle(id, on) {
    if (on) state.selected.add(id); else state.selected.delete(id);
    $("selected-count").textContent = String(state.selected.size);
    const box = document.querySelector("#item-" + id + " input.select");
    if (box) box.checked = on;
  }

  function focused() { return state.items[state.focus]; }

  async function move(step) {
    const i = state.focus + step;
    if (i >= 0 && i < state.items.length) { setFocus(i); return; }
    if (step > 0 && state.next) { await goPage(1); setFocus(0); }
    else if (step < 0 && state.page > 0) { await goPage(-1); setFocus(state.items.length - 1); }
  }

  async function goPage(step) {
    if (step > 0) {
      if (!state.next) return;
      state.cursors[state.page + 1] = state.next;
      state.page += 1;
    } else {
      if (state.page === 0) return;
      state.page -= 1;
    }
    state.focus = 0;
    await load();
  }

  function listen() {
    if (!window.EventSource) return;
    const main = $("queue");
    const events = new EventSource("/v1/review/events");
    events.addEventListener("open", () => { main.dataset.live = "open"; });
    events.addEventListener("error", () => {
      main.dataset.live = events.readyState === EventSource.CLOSED ? "closed" : "reconnecting";
    });
    events.addEventListener("item", (e) => {
      let it;
      try { it = JSON.parse(e.data); } catch (err) { return; }
      if (state.items.some((x) => x.id === it.id)) return;
      state.fresh.add(it.id);
      $("fresh-count").textContent = String(state.fresh.size);
      $("fresh").dataset.ids = [...state.fresh].join(",");
      $("fresh").hidden = false;
    });
  }

  function showFresh() {
    if (!state.fresh.size) return Promise.resolve();
    state.fresh.clear();
    $("fresh-count").textContent = "0";
    $("fresh").hidden = true;
    $("fresh").dataset.ids = "";
    state.cursors = [null];
    state.page = 0;
    state.focus = 0;
    return load();
  }

  function restart() {
    state.cursors = [null];
    state.page = 0;
    state.focus = 0;
    state.selected.clear();
    return load();
  }

  const keys = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    ArrowRight: () => goPage(1), ArrowLeft: () => goPage(-1),
    a: () => focused() && decide([focused().id], "approve"),
    r: () => focused() && decide([focused().id], "reject"),
    u: () => undo(),
    x: () => focused() && toggle(focused().id, !state.selected.has(focused().id)),
    A: () => decide([...state.selected], "approve"),
    R: () => decide([...state.selected], "reject"),
    n: () => showFresh(),
    "?": () => { $("help").hidden = !$("help").hidden; },
  };

  let busy = Promise.resolve();
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest && e.target.closest("input,select,textarea")) return;
    const action = keys[e.key];
    if (!action) return;
    e.preventDefault();
    busy = busy.then(action, action); // one key's work at a time, in order
  });

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); restart(); });
  for (const id of ["f-status", "f-kind", "f-sort"]) $(id).addEventListener("change", restart);
  $("next").addEventListener("click", () => goPage(1));
  $("prev").addEventListener("click", () => goPage(-1));
  $("bulk-approve").addEventListener("click", () => decide([...state.selected], "approve"));
  $("bulk-reject").addEventListener("click", () => decide([...state.selected], "reject"));
  $("undo").addEventListener("click", undo);
  $("help-button").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  $("fresh-load").addEventListener("click", () => { busy = busy.then(showFresh, showFresh); });
  load();
  listen();
})();
