/* The dashboard's small scripts: copy buttons, confirmations, live status. No framework. */
(function () {
  "use strict";

  function announce(text) {
    var region = document.getElementById("live-region");
    if (region) { region.textContent = text; }
  }

  // Copy buttons: <button data-copy="#element-id">
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent.trim();
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      announce("Copied to the clipboard");
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Forms that do something hard to undo: <form data-confirm="question">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // Live connector status: <section data-status-url="..."> with [data-live=name] inside.
  function formatTime(iso) {
    if (!iso) { return "never"; }
    var d = new Date(iso);
    return d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  function pollStatus(root) {
    var url = root.getAttribute("data-status-url");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        ["calls_24h", "errors_24h", "clients_connected"].forEach(function (key) {
          root.querySelectorAll('[data-live="' + key + '"]').forEach(function (el) {
            el.textContent = String(data[key]);
          });
        });
        root.querySelectorAll('[data-live="last_refresh_at"]').forEach(function (el) {
          el.textContent = formatTime(data.last_refresh_at);
        });
        root.querySelectorAll('[data-live="health"]').forEach(function (el) {
          el.className = "badge " + data.health;
          el.textContent = data.health_label;
          el.title = (data.reasons || []).join("; ");
        });
        root.querySelectorAll('[data-live="reasons"]').forEach(function (list) {
          list.replaceChildren.apply(list, (data.reasons || []).map(function (reason) {
            var item = document.createElement("li");
            item.textContent = reason;
            return item;
          }));
          list.hidden = !(data.reasons || []).length;
        });
        (data.connections || []).forEach(function (c) {
          var badge = document.querySelector('[data-connection-status="' + c.id + '"]');
          if (badge && badge.textContent !== c.status_label) {
            badge.textContent = c.status_label;
            badge.className = "badge " + c.status;
            announce("Connection status: " + c.status_label);
          }
          var err = document.querySelector('[data-connection-error="' + c.id + '"]');
          if (err) { err.textContent = c.last_error || "none"; }
          var refreshed = document.querySelector('[data-connection-refresh="' + c.id + '"]');
          if (refreshed) { refreshed.textContent = formatTime(c.last_refresh_at); }
        });
      })
      .catch(function () { /* try again on the next tick */ });
  }

  document.querySelectorAll("[data-status-url]").forEach(function (root) {
    var every = parseInt(root.getAttribute("data-interval") || "3000", 10);
    setInterval(function () { if (!document.hidden) { pollStatus(root); } }, every);
  });

  // Live trace: <div data-live-trace="url"> replaced when the attempts change.
  document.querySelectorAll("[data-live-trace]").forEach(function (root) {
    var toggle = document.getElementById("live-toggle");
    var every = parseInt(root.getAttribute("data-interval") || "3000", 10);
    setInterval(function () {
      if (document.hidden || (toggle && !toggle.checked)) { return; }
      if (root.contains(document.activeElement)) { return; }  // do not move keyboard focus
      fetch(root.getAttribute("data-live-trace"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var next = html.trim();
          if (root.getAttribute("data-last") !== next) {
            var first = root.getAttribute("data-last") === null;
            root.setAttribute("data-last", next);
            root.innerHTML = next;
            if (!first) { announce("The trace has new events"); }
          }
        })
        .catch(function () {});
    }, every);
  });
})();
