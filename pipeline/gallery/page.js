(function () {
  "use strict";
  // One script for both pages. The static output/index.html only counts its images and
  // filters; the page served by `assetpipe review` (data-mode="live") also picks,
  // rejects, rerolls and follows builds. Nothing here builds HTML from data: text goes
  // in through textContent, and fresh markup comes from the server's own escaped page.
  //
  // Messages are tied to what produced them, each on its own line: the user's latest
  // action (pick, reject, a quote), the build this page follows, the server's silence.
  // A newer message replaces an older one on its line, never the reverse; an error stays
  // until the user dismisses it or acts again.
  var live = false, token = "", hovered = null, busy = false, pending = null;
  var acted = 0, followed = null;
  var partial = null, partialSeq = 0;
  var COMPACT = "assetpipe.compact";

  // Before the first paint (this script runs in <head>): no flash of the sparse layout.
  setCompact(compactWanted());

  function compactWanted() {
    var asked = new URLSearchParams(location.search).get("compact");
    if (asked === "1" || asked === "0") { return asked === "1"; }
    try { return localStorage.getItem(COMPACT) === "1"; }
    catch (e) { return false; }  // storage refused (a locked-down file:// page)
  }

  function setCompact(on) { document.documentElement.classList.toggle("compact", on); }

  function toggleCompact(box) {
    setCompact(box.checked);
    try { localStorage.setItem(COMPACT, box.checked ? "1" : "0"); }
    catch (e) { /* not remembered; the toggle still applies */ }
    var params = new URLSearchParams(location.search);
    if (!params.has("compact")) { return; }
    params.set("compact", box.checked ? "1" : "0");  // the address must not contradict the page
    try { history.replaceState(null, "", location.pathname + "?" + params.toString() + location.hash); }
    catch (e) { /* a file:// page may refuse */ }
  }

  function count(name) {
    document.body.dataset[name] = String(Number(document.body.dataset[name] || "0") + 1);
  }

  function countImages() {
    var loaded = 0, broken = 0, waiting = 0;
    document.querySelectorAll("main img").forEach(function (img) {
      if (img.closest(".card.partial")) { return; }  // a passing preview, not the page's
      if (!img.complete) { waiting++; }
      else if (img.naturalWidth > 0) { loaded++; }
      else { broken++; var c = img.closest(".card"); if (c) { c.classList.add("broken"); } }
    });
    document.body.dataset.imagesLoaded = loaded;
    document.body.dataset.imagesBroken = broken;
    document.body.dataset.imagesPending = waiting;
  }

  function form() { return document.getElementById("filters"); }

  function applyFilters() {
    var f = form();
    if (!f) { return; }
    var coll = f.elements.collection.value, tag = f.elements.tag.value;
    var failed = f.elements.failed.checked, review = f.elements.review.checked;
    var gate = f.elements.gate.checked;
    document.querySelectorAll("section.collection").forEach(function (section) {
      var any = false;
      section.querySelectorAll(".group").forEach(function (g) {
        var tags = " " + (g.dataset.tags || "") + " ";
        var show = (!coll || section.dataset.collection === coll) &&
          (!tag || tags.indexOf(" " + tag + " ") >= 0) &&
          (!failed || g.dataset.failedChecks === "1") &&
          (!gate || g.dataset.failsGate === "1") &&
          (!review || g.dataset.needsReview === "1");
        g.hidden = !show;
        any = any || show;
      });
      section.hidden = !any;
    });
    document.body.classList.toggle("hide-rejected", f.elements.rejected.checked);
    var state = new URLSearchParams();
    if (coll) { state.set("collection", coll); }
    if (tag) { state.set("tag", tag); }
    ["failed", "gate", "review", "rejected"].forEach(function (n) {
      if (f.elements[n].checked) { state.set(n, "1"); }
    });
    var hash = state.toString();
    if (hash !== location.hash.slice(1)) {
      try { history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search); }
      catch (e) { /* a file:// page may refuse; the filters still apply */ }
    }
  }

  function restoreFilters() {
    var f = form();
    if (!f) { return; }
    var state = new URLSearchParams(location.hash.slice(1));
    ["collection", "tag"].forEach(function (n) {
      var want = state.get(n) || "";
      var ok = Array.prototype.some.call(f.elements[n].options, function (o) { return o.value === want; });
      f.elements[n].value = ok ? want : "";
    });
    ["failed", "gate", "review", "rejected"].forEach(function (n) { f.elements[n].checked = state.get(n) === "1"; });
  }

  function show(line, text, bad) {
    var el = document.querySelector('.message[data-line="' + line + '"]');
    if (!el) { return; }
    el.querySelector(".text").textContent = text;
    el.classList.toggle("bad", !!bad);
    el.hidden = !text;
  }

  // Each action gets the next number and clears the action line (an error included);
  // its answer shows only while it is still the latest, so a slow answer to an older
  // action never replaces a newer message.
  function begin() {
    acted += 1;
    show("action", "", false);
    return acted;
  }

  function answer(n, text, bad) {
    if (n === acted) { show("action", text, bad); }
    count("answers");
  }

  function taskKey(t) { return [t.action, t.asset, (t.jobs || []).join(" ")].join("\n"); }

  // The build line follows one build: the one this page confirmed, or one found running
  // (the newest, as one runs at a time). A state is shown once, when it changes: the
  // server keeps reporting the last build's outcome, and that repeat is not news, so it
  // never brings back a dismissed message nor shows an old build's outcome on a fresh page.
  function follow(t) {
    var key = taskKey(t);
    if (followed && followed.key === key) { return; }
    followed = { key: key, text: "", state: "" };
    report(t);
  }

  function report(t) {
    if (!followed || taskKey(t) !== followed.key) { return; }
    if (t.message === followed.text && t.state === followed.state) { return; }
    followed.text = t.message;
    followed.state = t.state;
    show("task", t.message, t.state === "failed");
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Assetpipe-Token": token },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) {
      return r.json().then(function (data) {
        if (!r.ok) { throw new Error(data.error || r.statusText); }
        return data;
      });
    });
  }

  function act(send, done) {
    var n = begin();
    busy = true;
    return send().then(function (data) {
      answer(n, done(data));
      return refresh();
    }).catch(function (e) { answer(n, e.message, true); }).then(function () { busy = false; });
  }

  function said(d) { return d.message; }

  // A pick or an unpick changes assetpipe.lock only; the delivered file follows on the
  // next build, and the message says so rather than let the output folder look stale.
  function pickSaid(d) { return d.message + "; delivered on next build"; }

  function unpickSaid(d) { return d.message + "; variant 1 delivered on next build"; }

  function pick(ref) { act(function () { return post("/api/pick", { ref: ref }); }, pickSaid); }

  function refresh() {
    var focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest(".card[data-ref]") : null;
    var keep = focused ? focused.dataset.ref : null;
    return fetch(location.pathname, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["assets", "summary", "page-error"].forEach(function (id) {
          var now = document.getElementById(id), next = doc.getElementById(id);
          if (now && next) { now.replaceWith(document.importNode(next, true)); }
          else if (now) { now.remove(); }
          else if (next && id === "page-error") { document.querySelector("header").appendChild(document.importNode(next, true)); }
        });
        ["collection", "tag"].forEach(function (n) {
          var now = form().elements[n], next = doc.getElementById("filters").elements[n];
          var value = now.value;
          now.replaceChildren.apply(now, Array.prototype.map.call(next.options, function (o) { return document.importNode(o, true); }));
          now.value = value;
          if (now.value !== value) { now.value = ""; }
        });
        Object.keys(doc.body.dataset).forEach(function (k) { document.body.dataset[k] = doc.body.dataset[k]; });
        applyFilters();
        placePartial();
        hovered = null;
        if (keep) {
          var again = document.querySelector('.card[data-ref="' + CSS.escape(keep) + '"]');
          if (again) { again.focus(); }
        }
        countImages();
        count("refreshes");
      });
  }

  function ask(action, asset) {
    var n = begin();
    answer(n, "asking what it costs…");
    post("/api/quote", { action: action, asset: asset }).then(function (q) {
      if (n !== acted) { count("answers"); return; }  // the user moved on: no dialog now
      pending = { action: action, asset: asset, quote: q.quote };
      document.getElementById("confirm-text").textContent = q.summary;
      document.getElementById("confirm").showModal();
      answer(n, "");
    }).catch(function (e) { answer(n, e.message, true); });
  }

  function confirmed() {
    var p = pending;
    pending = null;
    document.getElementById("confirm").close();
    if (!p) { return; }
    var n = begin();
    followed = null;  // a new build: whatever the server says next is about it
    post("/api/run", p).then(function (t) { follow(t); count("answers"); })
      .catch(function (e) { answer(n, e.message, true); });
  }

  function target() {
    var el = document.activeElement;
    var card = el && el.closest ? el.closest(".card[data-ref]") : null;
    return card || hovered;
  }

  function move(step) {
    var cards = Array.prototype.filter.call(document.querySelectorAll(".card[data-ref]"), function (c) {
      return c.offsetParent !== null;
    });
    if (!cards.length) { return; }
    var i = cards.indexOf(target());
    cards[(i + step + cards.length) % cards.length].focus();
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || busy) { return; }
    if (ev.target.closest && ev.target.closest("input, select, textarea, dialog")) { return; }
    var card = target();
    if (ev.key === "j") { move(1); return; }
    if (ev.key === "k") { move(-1); return; }
    if (!card) { return; }
    var ref = card.dataset.ref, asset = card.closest(".group").dataset.name;
    if (ev.key === "x") {
      var rejecting = !card.classList.contains("rejected");
      act(function () { return post("/api/reject", { ref: ref, rejected: rejecting }); }, said);
    } else if (ev.key === "p") {
      pick(ref);
    } else if (ev.key === "r") {
      ask("reroll", asset);
    }
  }

  function onClick(ev) {
    var b = ev.target.closest ? ev.target.closest("button") : null;
    if (b && b.classList.contains("dismiss")) { show(b.dataset.line, "", false); return; }
    if (!b || busy) { return; }
    if (b.classList.contains("pick")) {
      pick(b.dataset.ref);
    } else if (b.classList.contains("unpick")) {
      act(function () { return post("/api/unpick", { asset: b.dataset.asset }); }, unpickSaid);
    } else if (b.classList.contains("reroll")) {
      ask("reroll", b.dataset.asset);
    } else if (b.classList.contains("build")) {
      ask("build", b.dataset.asset);
    } else if (b.id === "confirm-yes") {
      confirmed();
    } else if (b.id === "confirm-no") {
      pending = null;
      document.getElementById("confirm").close();
      answer(begin(), "nothing was built");
    }
  }

  // A reroll's build streams previews of the image it is making: the latest shows as a
  // card of its own (data-partial: its index) in the asset's group, until the card of
  // the made image arrives. The server keeps the latest after the build ends, so a late
  // poll still shows it once (partialSeq); data-partials-shown counts those loaded.
  function madeCard(job) {
    return Array.prototype.some.call(document.querySelectorAll(".card:not(.partial):not(.preview)"), function (c) {
      return c.dataset.job === job && c.querySelector(".thumb img") !== null;
    });
  }

  function groupOf(asset) {
    var found = null;
    document.querySelectorAll(".group").forEach(function (g) { if (g.dataset.name === asset) { found = g; } });
    return found && found.querySelector(".asset");
  }

  function showPartial(t) {
    var p = t.partial;
    if (!p || typeof p.seq !== "number" || p.seq <= partialSeq) { return; }
    partialSeq = p.seq;
    if (madeCard(p.job)) { return; }  // the image itself is here already
    var card = document.createElement("article"), thumb = document.createElement("div");
    var img = document.createElement("img"), label = document.createElement("div");
    card.className = "card partial";
    card.dataset.partial = String(p.index);
    card.dataset.for = p.job;
    thumb.className = "thumb";
    img.alt = "preview " + (p.index + 1) + " of " + p.job;
    img.addEventListener("load", function () { count("partialsShown"); });
    img.src = "/api/partial?seq=" + p.seq;
    label.className = "job";
    label.textContent = p.job + " · preview " + (p.index + 1) + ", being made";
    thumb.appendChild(img);
    card.append(thumb, label);
    if (partial) { partial.card.remove(); }
    partial = { job: p.job, asset: t.asset, card: card };
    placePartial();
  }

  // After every refresh as well: fresh markup has no preview, and may have the image.
  function placePartial() {
    if (!partial) { return; }
    var group = groupOf(partial.asset);
    if (!group || madeCard(partial.job)) { partial.card.remove(); partial = null; return; }
    if (partial.card.parentNode !== group) { group.appendChild(partial.card); }
  }

  function poll() {
    fetch("/api/state", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
      show("server", "", false);
      if (s.task && s.task.state === "running") { follow(s.task); }
      if (s.task) { report(s.task); showPartial(s.task); }
      if (s.version !== document.body.dataset.version && !busy) { return refresh(); }
      return null;
    }).catch(function () { show("server", "the review server is not answering", true); })
      .then(function () {
        count("polls");
        setTimeout(poll, Number(document.body.dataset.pollMs) || 1000);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    restoreFilters();
    applyFilters();
    var f = form();
    if (f) {
      f.addEventListener("change", applyFilters);
      f.elements.compact.checked = document.documentElement.classList.contains("compact");
      f.elements.compact.addEventListener("change", function () { toggleCompact(f.elements.compact); });
    }
    live = document.body.dataset.mode === "live";
    if (!live) { return; }
    token = document.querySelector('meta[name="assetpipe-token"]').content;
    document.addEventListener("click", onClick);
    document.addEventListener("keydown", onKey);
    document.addEventListener("mouseover", function (ev) {
      var c = ev.target.closest ? ev.target.closest(".card[data-ref]") : null;
      if (c) { hovered = c; }
    });
    setTimeout(poll, Number(document.body.dataset.pollMs) || 1000);
  });
  window.addEventListener("load", countImages);
})();
