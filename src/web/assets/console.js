// Gatehouse review console: all of its script (the pages carry none
// inline). It mounts the asciinema player where a page asks for one, and
// wires the search hits and speed buttons to it.
"use strict";

(function () {
  const el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) return;
  let player;
  let speed = 1;
  // The server places search hits on the timeline with the same limit.
  const idle = parseFloat(el.dataset.idleLimit);
  // The player takes the window's room below its top, no more, and fits
  // the terminal in it (width and height): its controls stay on screen
  // without scrolling, at 1280x720 too (a 120x40 terminal fitted to the
  // width alone would push them below the fold).
  function room() {
    const top = el.getBoundingClientRect().top + window.scrollY;
    el.style.height = Math.max(200, Math.floor(window.innerHeight - top - 12)) + "px";
  }
  room();
  window.addEventListener("resize", room);
  const opts = { fit: "both", idleTimeLimit: isFinite(idle) ? idle : 2, terminalFontSize: "small" };
  function mount(extra) {
    if (player) player.dispose();
    player = window.AsciinemaPlayer.create(
      el.dataset.live
        ? { url: el.dataset.live, driver: "eventsource", bufferTime: 0 }
        : el.dataset.cast,
      el,
      Object.assign({}, opts, { speed: speed }, extra || {})
    );
    window.gatehousePlayer = player;
  }
  mount(el.dataset.live ? { autoPlay: true } : {});
  if (el.dataset.live) {
    const state = document.getElementById("live-state");
    const say = function (text, cls) {
      if (!state) return;
      state.textContent = text;
      state.className = cls;
    };
    player.addEventListener("ended", function () {
      say("The session has ended.", "ended");
    });
    // "End session" from the live page stays on it: the request is sent
    // in the background, the page says so, and the player keeps the last
    // screen until the stream says the session ended.
    const kill = document.querySelector("form.kill");
    if (kill) {
      kill.addEventListener("submit", function (ev) {
        ev.preventDefault();
        const button = kill.querySelector("button");
        if (button) button.disabled = true;
        fetch(kill.action, {
          method: "POST",
          body: new URLSearchParams(new FormData(kill)),
          credentials: "same-origin",
        }).then(function (r) {
          if (r.ok) {
            say("End of session requested; waiting for the bastion to end it.", "requested");
          } else {
            if (button) button.disabled = false;
            return r.text().then(function (t) {
              const doc = new DOMParser().parseFromString(t, "text/html");
              const msg = doc.querySelector("p.error");
              say("Could not end the session: " + (msg ? msg.textContent : r.status), "ended");
            });
          }
        }).catch(function () {
          if (button) button.disabled = false;
          say("Could not reach the console to end the session.", "ended");
        });
      });
    }
  }
  // Jump to a search hit: seek just past the moment the text appeared (a
  // hit's data-time is where the event that drew it plays, on the
  // player's timeline with pauses squeezed) and pause there.
  // Delegated: hits replaced by a search stay clickable.
  document.addEventListener("click", function (ev) {
    const b = ev.target.closest && ev.target.closest("button.seek");
    if (!b) return;
    const t = parseFloat(b.dataset.time);
    if (!isFinite(t)) return;
    player.seek(t + 0.05).then(function () { player.pause(); });
  });
  // Search without leaving the page: the hits are fetched and put in
  // place; the player keeps playing where it was.
  const search = document.querySelector("form.search");
  const results = document.getElementById("search-results");
  if (search && results) {
    search.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const q = new URLSearchParams(new FormData(search));
      const url = search.action + "?" + q.toString();
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (t) {
          const doc = new DOMParser().parseFromString(t, "text/html");
          const fresh = doc.getElementById("search-results");
          if (fresh) results.replaceChildren(...Array.from(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
          history.replaceState(null, "", url);
        })
        .catch(function () { search.submit(); });
    });
  }
  // The player takes its speed at creation: re-create it at the same time.
  document.querySelectorAll("button.speed").forEach(function (b) {
    b.addEventListener("click", function () {
      const s = parseFloat(b.dataset.speed);
      if (!isFinite(s) || s <= 0) return;
      const at = player.getCurrentTime();
      speed = s;
      mount({ startAt: Math.floor(at), autoPlay: true });
      document.querySelectorAll("button.speed").forEach(function (o) {
        o.classList.toggle("active", o === b);
      });
      const shown = document.getElementById("speed");
      if (shown) shown.textContent = b.textContent;
    });
  });
})();
