// Live job progress: opens the organisation's jobs socket named by [data-jobs-socket] and updates
// the progress bars, counts and messages of the jobs on the page by id. When a job changes state
// (or a new job appears on the list) the htmx part of the page is fetched again, so buttons,
// reports and result links come from the server. A running job whose heartbeat goes stale is
// noticed here too, with the server's clock, and the part is fetched again to show it stalled.
// Pushes reach this page only when the worker shares the channel layer with the web process
// (Redis). With the in-memory layer of the embedded default they cannot: while a job on the page
// is queued or running and nothing has been pushed for a few seconds, the part is fetched again.
(function () {
  "use strict";

  const root = document.querySelector("[data-jobs-socket]");
  if (!root) return;

  const isList = root.hasAttribute("data-jobs-list");
  const staleMs = Number(root.dataset.staleSeconds || 120) * 1000;
  // Server time minus browser time, so heartbeats (server timestamps) are compared fairly.
  const clockOffset = Date.parse(root.dataset.serverNow) - Date.now() || 0;
  const quietMs = 4000;
  let refreshTimer = null;
  let retryDelay = 1000;
  let lastPush = Date.now();

  function refresh() {
    // Several events in a burst cause one fetch.
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      if (window.htmx) window.htmx.trigger(document.body, "jobs-refresh");
    }, 250);
  }

  function each(attribute, id, callback) {
    document.querySelectorAll("[" + attribute + '="' + id + '"]').forEach(callback);
  }

  function apply(job) {
    const id = String(job.id);
    let known = false;
    each("data-job-state", id, function (badge) {
      known = true;
      if (badge.dataset.state !== job.display_state) refresh();
      badge.dataset.heartbeat = new Date(Date.now() + clockOffset).toISOString();
    });
    if (!known) {
      if (isList) refresh();
      return;
    }
    each("data-job-progress", id, function (bar) {
      if (job.total > 0) {
        bar.max = job.total;
        bar.value = job.done;
      } else if (job.state === "running") {
        bar.removeAttribute("value"); // indeterminate: the runner has not said how much there is
      }
      bar.textContent = job.percent + "%";
    });
    each("data-job-count", id, function (count) {
      count.textContent = job.total > 0 ? job.done + " / " + job.total : "";
    });
    each("data-job-message", id, function (message) {
      message.textContent = job.message;
    });
  }

  function checkStale() {
    const now = Date.now() + clockOffset;
    document.querySelectorAll('[data-job-state][data-state="running"][data-heartbeat]').forEach(function (badge) {
      if (now - Date.parse(badge.dataset.heartbeat) > staleMs) refresh();
    });
  }

  function pollWhenQuiet() {
    if (document.visibilityState !== "visible" || Date.now() - lastPush < quietMs) return;
    if (document.querySelector('[data-job-state][data-state="queued"], [data-job-state][data-state="running"]')) {
      lastPush = Date.now(); // one fetch per quiet spell
      refresh();
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + root.dataset.jobsSocket);
    socket.addEventListener("open", function () {
      if (retryDelay > 1000) refresh(); // events were missed while away: read the truth again
      retryDelay = 1000;
    });
    socket.addEventListener("message", function (event) {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (data.type === "job.progress" && data.job) {
        lastPush = Date.now();
        apply(data.job);
      }
    });
    socket.addEventListener("close", function (event) {
      // 4401 / 4404: signed out or no longer a member; reconnecting would not help.
      if (event.code === 4401 || event.code === 4404) return;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  connect();
  setInterval(checkStale, 15000);
  setInterval(pollWhenQuiet, 1000);
})();
