// The dashboard's one page and its stylesheet. The behaviour is in
// src/api/web/*.ts (compiled by tsc, served under /app/); nothing is
// fetched from anywhere but this daemon.

export const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>disktro</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/style.css">
<script type="module" src="/app/app.js"></script>
</head>
<body>
<header class="top">
  <div class="brand">disktro</div>
  <nav class="tabs">
    <a href="#/files" id="tab-files" class="tab">Files</a>
    <a href="#/peers" id="tab-peers" class="tab">Peers</a>
    <a href="#/volume" id="tab-volume" class="tab">Volume</a>
  </nav>
  <div id="health" class="health">connecting…</div>
  <div id="whoami" class="whoami"></div>
</header>
<div id="banner" class="banner" hidden></div>
<main>
  <section id="view-files" class="view" hidden>
    <div class="toolbar">
      <nav id="crumbs" class="crumbs" aria-label="folder"></nav>
      <div class="actions">
        <button id="new-folder" type="button">New folder</button>
        <select id="upload-pin" title="upload to a specific peer: it will always hold a full copy"><option value="">Upload to: replicas as usual</option></select>
        <label class="button primary" for="upload-input">Upload files</label>
        <input id="upload-input" type="file" multiple hidden>
      </div>
    </div>
    <div id="drop" class="drop">
      <table class="grid">
        <thead><tr><th>Name</th><th class="num">Size</th><th class="num">Chunks</th><th class="bar-col">Replication</th><th>Pinned to</th><th></th></tr></thead>
        <tbody id="file-rows"></tbody>
      </table>
      <p id="files-empty" class="empty" hidden>This folder is empty. Drop files here or use Upload files.</p>
      <p id="files-note" class="note" hidden></p>
    </div>
  </section>
  <section id="view-peers" class="view" hidden>
    <div class="card">
      <h2>Throughput <span class="legend"><i class="sw sent"></i>sent <i class="sw received"></i>received <i class="sw web"></i>browser</span></h2>
      <svg id="chart" class="chart" viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label="throughput, last two minutes"></svg>
      <div id="chart-scale" class="scale"></div>
    </div>
    <table class="grid">
      <thead><tr><th>Peer</th><th>Role</th><th>State</th><th>Last seen</th><th class="num">RTT</th><th class="num">Holds</th><th class="num">Sent to it</th><th class="num">Pins</th></tr></thead>
      <tbody id="peer-rows"></tbody>
    </table>
    <p id="peers-empty" class="empty" hidden>No peer seen yet. Invite one with <code>disktro invite</code>.</p>
  </section>
  <section id="view-volume" class="view" hidden>
    <div id="volume-cards" class="cards"></div>
    <div class="card"><h2>Replication</h2><div id="volume-replication"></div></div>
    <div class="card" id="pins-card">
      <h2>Pins</h2>
      <table class="grid"><thead><tr><th>Path</th><th>Peer</th><th>Held by the peer</th><th></th></tr></thead><tbody id="pin-rows"></tbody></table>
      <p id="pins-empty" class="empty" hidden>Nothing pinned. Pin a file or folder to a peer on the Files view: that peer then always holds all of it.</p>
    </div>
  </section>
</main>
<aside id="transfers" class="transfers" hidden></aside>
</body>
</html>
`

export const STYLE_CSS = `:root {
  --bg: #f6f7f9; --panel: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e3e6ec;
  --accent: #2f6fde; --ok: #2e9d5b; --warn: #e0a526; --bad: #d64545; --web: #8a5cd6;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.top { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #1d2330; color: #fff; }
.brand { font-weight: 700; font-size: 17px; letter-spacing: .02em; }
.tabs { display: flex; gap: 4px; }
.tab { color: #c9cfdb; text-decoration: none; padding: 6px 12px; border-radius: 6px; }
.tab:hover { color: #fff; background: #2c3445; }
.tab.active { color: #fff; background: var(--accent); }
.tab.disabled { display: none; }
.health { margin-left: auto; padding: 3px 10px; border-radius: 999px; background: #2c3445; font-size: 13px; }
.health.safe { background: var(--ok); } .health.behind { background: var(--warn); color: #1d2330; } .health.lost { background: var(--bad); }
.whoami { color: #c9cfdb; font-size: 12px; }
.banner { background: #fde8e8; color: #8a1f1f; padding: 10px 24px; border-bottom: 1px solid #f5c2c2; }
main { padding: 20px 24px 120px; max-width: 1200px; margin: 0 auto; }
.toolbar { display: flex; align-items: center; justify-content: space-between; margin-bottom: 12px; gap: 12px; }
.crumbs { font-size: 15px; }
.crumbs a { color: var(--accent); text-decoration: none; }
.crumbs span.sep { color: var(--muted); margin: 0 6px; }
.actions { display: flex; gap: 8px; }
button, .button { font: inherit; padding: 6px 12px; border: 1px solid var(--line); background: var(--panel); border-radius: 6px; cursor: pointer; color: var(--ink); }
button:hover, .button:hover { border-color: #c5cad4; }
.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
.primary:hover { background: #275fc0; }
button.link { border: none; background: none; color: var(--accent); padding: 2px 6px; }
button.danger { color: var(--bad); }
.grid { width: 100%; border-collapse: collapse; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.grid th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; padding: 8px 12px; border-bottom: 1px solid var(--line); background: #fafbfc; }
.grid td { padding: 8px 12px; border-bottom: 1px solid var(--line); vertical-align: middle; }
.grid tr:last-child td { border-bottom: none; }
.grid tr:hover td { background: #fafbfd; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.name a { color: var(--ink); text-decoration: none; font-weight: 500; }
.name a:hover { color: var(--accent); }
.icon { display: inline-block; width: 18px; color: var(--muted); }
.bar-col { width: 220px; }
.bar { display: flex; height: 10px; border-radius: 5px; overflow: hidden; background: var(--line); min-width: 120px; }
.bar span { display: block; height: 100%; }
.bar .ok { background: var(--ok); } .bar .under { background: var(--warn); } .bar .lost { background: var(--bad); }
.bar-label { font-size: 12px; color: var(--muted); margin-top: 2px; }
.chip::before { content: ""; width: 6px; height: 6px; border-radius: 50%; background: currentColor; opacity: .7; }
.chip { display: inline-flex; align-items: center; gap: 4px; padding: 1px 8px; border-radius: 999px; background: #eaf0fc; color: #234d9c; font-size: 12px; margin: 1px 4px 1px 0; }
.chip.offline { background: #f1f2f4; color: var(--muted); }
.chip button { border: none; background: none; padding: 0 0 0 2px; color: inherit; cursor: pointer; font-size: 13px; line-height: 1; }
#upload-pin { max-width: 230px; font-size: 13px; padding: 5px 6px; }
select { font: inherit; font-size: 12px; padding: 3px 4px; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--muted); }
.row-actions { white-space: nowrap; text-align: right; }
.row-actions a { color: var(--accent); text-decoration: none; padding: 2px 6px; }
.drop { position: relative; border-radius: 8px; }
.drop.over { outline: 2px dashed var(--accent); outline-offset: 4px; }
.empty, .note { color: var(--muted); padding: 16px 4px; }
.state { display: inline-flex; align-items: center; gap: 6px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--muted); }
.online .dot { background: var(--ok); } .offline .dot { background: var(--bad); }
.offline { color: var(--bad); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
.card h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 10px; display: flex; justify-content: space-between; }
.legend { text-transform: none; letter-spacing: 0; font-weight: 400; }
.sw { display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 10px; vertical-align: middle; }
.sw.sent, .line.sent { background: var(--accent); stroke: var(--accent); }
.sw.received, .line.received { background: var(--ok); stroke: var(--ok); }
.sw.web, .line.web { background: var(--web); stroke: var(--web); }
.chart { width: 100%; height: 120px; display: block; }
.chart .line { fill: none; stroke-width: 1.6; vector-effect: non-scaling-stroke; }
.chart .axis { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.scale { font-size: 11px; color: var(--muted); display: flex; justify-content: space-between; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; margin-bottom: 16px; }
.stat { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.stat .k { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.stat .v { font-size: 22px; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; }
.stat .s { font-size: 12px; color: var(--muted); }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin-top: 10px; font-size: 13px; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; font-variant-numeric: tabular-nums; }
.transfers { position: fixed; right: 16px; bottom: 16px; width: 340px; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; box-shadow: 0 6px 24px rgba(20, 30, 50, .15); padding: 10px 12px; font-size: 13px; }
.transfers h3 { margin: 0 0 6px; font-size: 12px; text-transform: uppercase; color: var(--muted); letter-spacing: .04em; }
.transfer { margin: 6px 0; }
.transfer .what { display: flex; justify-content: space-between; gap: 8px; }
.transfer .what span:first-child { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.transfer progress { width: 100%; height: 8px; }
.transfer.failed { color: var(--bad); }
`
