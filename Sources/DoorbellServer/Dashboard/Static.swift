/// The dashboard's two static files, compiled into the binary: nothing to deploy, no CDN, works
/// offline. The pages use no inline script or style, so the Content-Security-Policy stays strict.
enum DashboardStatic {
    static let css = """
    :root { --fg: #1d2330; --muted: #5b6474; --line: #d9dee7; --bg: #f6f7f9; --ok: #1f7a3a; --bad: #b3261e; --warn: #8a5a00; --accent: #2553c8; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
    header { background: #1d2330; color: #fff; padding: .5rem 1rem; display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; }
    header a { color: #dfe6f5; text-decoration: none; padding: .25rem 0; }
    header a.active { color: #fff; border-bottom: 2px solid #fff; }
    header .brand { font-weight: 700; color: #fff; margin-right: .5rem; }
    header form { margin-left: auto; }
    main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
    h1 { font-size: 1.35rem; margin: .25rem 0 1rem; }
    h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
    section.card > h2:first-child { margin-top: .25rem; }
    section.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; }
    th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: .85rem; color: var(--muted); font-weight: 600; }
    pre { background: #f0f2f6; padding: .6rem; border-radius: 4px; overflow-x: auto; white-space: pre-wrap; word-break: break-word; max-height: 32rem; margin: .25rem 0; }
    code, pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
    a { color: var(--accent); }
    .muted { color: var(--muted); }
    .status { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600; background: #e8ebf1; }
    .status.succeeded, .status.enabled, .status.closed { background: #dcf2e3; color: var(--ok); }
    .status.dead, .status.disabled, .status.open { background: #fbe1df; color: var(--bad); }
    .status.waiting_retry, .status.paused, .status.pending, .status.running { background: #fdf0d5; color: var(--warn); }
    .notice { background: #e7efff; border: 1px solid #b8cbf5; padding: .5rem .75rem; border-radius: 4px; margin-bottom: 1rem; }
    .error { background: #fbe1df; border: 1px solid #f0b4ae; padding: .5rem .75rem; border-radius: 4px; margin-bottom: 1rem; }
    .secret { font-weight: 700; background: #fff7d6; padding: .5rem; word-break: break-all; }
    form.inline { display: inline; }
    form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-bottom: 1rem; }
    form.filters label, form.stack label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
    form.stack { display: flex; flex-direction: column; gap: .6rem; max-width: 32rem; }
    input, select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #b9c0cc; border-radius: 4px; background: #fff; color: var(--fg); }
    button { font: inherit; padding: .35rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
    button.secondary { background: #fff; color: var(--accent); }
    button.danger { background: var(--bad); border-color: var(--bad); }
    header button { background: transparent; border-color: #8d96a8; padding: .15rem .6rem; }
    .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: 1rem; }
    .count { font-size: 1.6rem; font-weight: 700; }
    .pager { margin-top: .75rem; }
    #live { font-size: .8rem; color: #b8c3d8; }
    #live.on { color: #9fe0b0; }
    tr.fresh { background: #fff7d6; }
    ul.plain { list-style: none; padding: 0; margin: 0; }
    ul.plain li { padding: .2rem 0; }
    .signin { max-width: 24rem; margin: 4rem auto; }
    @media (max-width: 640px) {
      main { padding: .5rem; }
      th, td { padding: .3rem; font-size: .9rem; }
      .hide-small { display: none; }
    }
    """

    /// Live updates (EventSource on /ui/live) and confirmations (`data-confirm` on forms).
    static let javascript = """
    "use strict";
    (function () {
      document.addEventListener("submit", function (event) {
        var form = event.target;
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) { event.preventDefault(); }
      });

      var badge = document.getElementById("live");
      if (!window.EventSource || !badge) { return; }
      var source = new EventSource("/ui/live");
      source.addEventListener("open", function () { badge.textContent = "live"; badge.className = "on"; });
      source.addEventListener("error", function () { badge.textContent = "reconnecting"; badge.className = ""; });

      function cell(row, text, href) {
        var td = document.createElement("td");
        if (href) { var a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
        else { td.textContent = text; }
        row.appendChild(td);
      }

      source.addEventListener("event", function (message) {
        var data = JSON.parse(message.data);
        var table = document.getElementById("live-events");
        if (!table) { return; }
        var empty = document.getElementById("no-events");
        if (empty) { empty.remove(); }
        var row = document.createElement("tr");
        row.className = "fresh";
        row.setAttribute("data-event-id", data.id);
        cell(row, data.received_at);
        cell(row, data.source);
        cell(row, data.type);
        cell(row, data.id, "/ui/events/" + encodeURIComponent(data.id));
        table.insertBefore(row, table.firstChild);
      });

      source.addEventListener("failure", function (message) {
        var data = JSON.parse(message.data);
        var list = document.getElementById("live-failures");
        if (!list) { return; }
        var calm = document.getElementById("all-well");
        if (calm) { calm.remove(); }
        var item = document.createElement("li");
        item.className = "fresh";
        var a = document.createElement("a");
        a.href = "/ui/events/" + encodeURIComponent(data.event_id);
        a.textContent = data.automation + " dead: " + data.error;
        item.appendChild(a);
        list.insertBefore(item, list.firstChild);
      });
    })();
    """
}
