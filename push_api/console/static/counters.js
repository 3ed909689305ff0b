// Keeps the notification counters live: polls the page's JSON every two seconds and
// writes each counter into its cell. Plain JavaScript, no library.
(function () {
  "use strict";
  var table = document.getElementById("notifications");
  if (!table) { return; }
  var source = table.getAttribute("data-source");
  var updated = document.getElementById("updated");
  var EVERY_MS = 2000;

  function apply(data) {
    data.notifications.forEach(function (n) {
      var row = document.getElementById("n-" + n.id);
      if (!row) { return; }  // newer than the page: shown on the next load
      row.querySelectorAll("td[data-counter]").forEach(function (cell) {
        var value = String(n[cell.getAttribute("data-counter")]);
        if (cell.textContent !== value) {
          cell.textContent = value;
          cell.classList.add("changed");
        }
      });
    });
    updated.textContent = "updated " + new Date().toLocaleTimeString();
  }

  function poll() {
    fetch(source, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }  // session ended
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { updated.textContent = "not reachable, retrying"; })
      .then(function () { window.setTimeout(poll, EVERY_MS); });
  }
  window.setTimeout(poll, EVERY_MS);
})();
