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
  const opts = { fit: "width", idleTimeLimit: isFinite(idle) ? idle : 2, terminalFontSize: "small" };
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
    player.addEventListener("ended", function () {
      if (state) state.textContent = "The session has ended.";
    });
  }
  // Jump to a search hit: seek just past the moment the text appeared (a
  // hit's data-time is where the event that drew it plays, on the
  // player's timeline with pauses squeezed) and pause there.
  document.querySelectorAll("button.seek").forEach(function (b) {
    b.addEventListener("click", function () {
      const t = parseFloat(b.dataset.time);
      if (!isFinite(t)) return;
      player.seek(t + 0.05).then(function () { player.pause(); });
    });
  });
  // The player takes its speed at creation: re-create it at the same time.
  document.querySelectorAll("button.speed").forEach(function (b) {
    b.addEventListener("click", function () {
      const s = parseFloat(b.dataset.speed);
      if (!isFinite(s) || s <= 0) return;
      const at = player.getCurrentTime();
      speed = s;
      mount({ startAt: Math.floor(at), autoPlay: true });
    });
  });
})();
