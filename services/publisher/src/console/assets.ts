/**
 * The console's page, style and script, as strings the publisher serves (no build step, no
 * framework). The script is plain browser JavaScript; it uses the client library's browser bundle
 * (global `SocketBridge`, served at /console/client.js) for the channel tail.
 */

export const consoleHtml = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>SocketBridge console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/console.css">
<script src="/console/client.js" defer></script>
<script src="/console/console.js" defer></script>
</head>
<body>
<header>
  <h1>SocketBridge <small>console</small></h1>
  <span id="status" class="status">loading…</span>
  <form id="key-form" hidden>
    <input id="key-input" type="password" autocomplete="off" placeholder="admin API key">
    <button type="submit">Use key</button>
  </form>
</header>
<main>
  <section>
    <h2>Cluster</h2>
    <div id="cluster" class="cluster"></div>
  </section>
  <section>
    <h2>Bridges and queues</h2>
    <div id="bridges"></div>
  </section>
  <section>
    <h2>Channel tail</h2>
    <form id="tail-form" class="tail-form">
      <input id="tail-channel" required placeholder="channel, e.g. broadcast or client.&lt;id&gt;">
      <input id="tail-url" placeholder="worker URL, e.g. ws://127.0.0.1:8000">
      <button id="tail-start" type="submit">Tail</button>
      <button id="tail-stop" type="button" disabled>Stop</button>
    </form>
    <div id="tail-status" class="muted">Pick a channel: the console mints a token for exactly that channel and subscribes through a worker.</div>
    <ol id="tail" class="tail"></ol>
  </section>
</main>
</body>
</html>
`;

export const consoleCss = String.raw`
:root { --bg: #0f1419; --panel: #182029; --line: #2a3642; --text: #d8e0e8; --muted: #8a99a8; --accent: #4fb3ff; --ok: #3ecf8e; --bad: #ff6b6b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; } h1 small { color: var(--muted); font-weight: normal; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 10px; }
main { padding: 16px 20px; display: grid; gap: 22px; }
.status { color: var(--muted); } .status.ok { color: var(--ok); } .status.bad { color: var(--bad); }
.muted { color: var(--muted); }
.tier { display: flex; align-items: stretch; gap: 10px; flex-wrap: wrap; margin-bottom: 10px; }
.tier-name { width: 90px; color: var(--muted); padding-top: 8px; }
.member { background: var(--panel); border: 1px solid var(--line); border-left: 3px solid var(--ok); border-radius: 6px; padding: 8px 12px; min-width: 210px; }
.member.down { border-left-color: var(--bad); }
.member .uri { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
.member .id { color: var(--muted); font-size: 11px; font-family: ui-monospace, Menlo, monospace; }
.stats { display: flex; gap: 14px; margin-top: 4px; }
.stats b { display: block; font-size: 18px; }
.stats span { color: var(--muted); font-size: 11px; }
.member button { margin-top: 6px; }
table { border-collapse: collapse; width: 100%; background: var(--panel); border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); font-size: 13px; }
th { color: var(--muted); font-weight: normal; }
td code { font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
input { background: var(--panel); color: var(--text); border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; }
#tail-channel { width: 300px; } #tail-url { width: 260px; }
button { background: var(--accent); color: #001525; border: 0; border-radius: 4px; padding: 6px 12px; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
.tail-form { display: flex; gap: 8px; margin-bottom: 8px; }
.tail { list-style: none; margin: 8px 0 0; padding: 0; max-height: 420px; overflow: auto; font-family: ui-monospace, Menlo, monospace; font-size: 12px; }
.tail li { display: grid; grid-template-columns: 100px 170px 1fr; gap: 10px; padding: 4px 8px; border-bottom: 1px solid var(--line); }
.tail li.gap { color: var(--bad); }
.tail time, .tail .offset { color: var(--muted); }
`;

export const consoleJs = String.raw`(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var key = params.get('key') || '';
  if (params.has('key')) {
    // The key stays in this page's memory only: off the address bar and out of the history.
    params.delete('key');
    var rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
  }
  var $ = function (id) { return document.getElementById(id); };
  var tailUrlTouched = false;
  var client = null;
  var received = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === 'text') node.textContent = attrs[name];
      else if (name === 'onclick') node.addEventListener('click', attrs[name]);
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child); });
    return node;
  }

  function setStatus(text, kind) {
    var status = $('status');
    status.textContent = text;
    status.className = 'status ' + (kind || '');
  }

  async function api(method, path, body) {
    var headers = { 'x-api-key': key };
    if (body !== undefined) headers['content-type'] = 'application/json';
    var response = await fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) });
    var answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (response.status === 401) {
      $('key-form').hidden = false;
      throw new Error('the admin API key was refused');
    }
    if (!response.ok) throw new Error((answer && answer.message) || ('HTTP ' + response.status));
    return answer;
  }

  function stat(value, label) {
    return el('div', { 'data-stat': label }, [el('b', { text: value === undefined || value === null ? '–' : String(value) }), el('span', { text: label })]);
  }

  function memberCard(kind, member, stats, extra) {
    var card = el('div', { class: 'member' + (member.reachable === false ? ' down' : ''), 'data-kind': kind, 'data-uri': member.uri || '' }, [
      el('div', { class: 'uri', text: member.uri || member.url || '' }),
      member.instanceId ? el('div', { class: 'id', text: member.instanceId }) : null,
      stats ? el('div', { class: 'stats' }, stats) : null,
      member.reachable === false ? el('div', { class: 'muted', text: 'unreachable: ' + (member.error || '') }) : null,
      extra || null,
    ]);
    return card;
  }

  function tier(name, cards) {
    return el('div', { class: 'tier' }, [el('div', { class: 'tier-name', text: name })].concat(cards.length ? cards : [el('div', { class: 'muted', text: 'none' })]));
  }

  function renderCluster(t) {
    var box = $('cluster');
    box.textContent = '';
    box.appendChild(tier('state', [memberCard('state', { uri: t.state.url, reachable: t.state.reachable, error: t.state.error }, t.state.reachable ? [stat(t.state.ready ? 'ready' : 'starting', 'state'), stat(t.brokers.length, 'brokers'), stat(t.workers.length, 'workers')] : null)]));
    box.appendChild(tier('brokers', t.brokers.map(function (b) {
      return memberCard('broker', b, [stat(b.connections, 'members'), stat(b.subscriptions, 'channels'), stat(b.messages, 'messages')]);
    })));
    box.appendChild(tier('workers', t.workers.map(function (w) {
      return memberCard('worker', w, [stat(w.connections, 'connections'), stat(w.subscriptions, 'subscriptions'), stat(w.deliveries, 'deliveries')],
        el('button', { type: 'button', text: 'tail through this worker', onclick: function () { $('tail-url').value = w.uri; tailUrlTouched = true; } }));
    })));
    box.appendChild(tier('publishers', t.publishers.map(function (p) {
      return memberCard('publisher', p, null, p.self ? el('div', { class: 'muted', text: 'serving this console' }) : null);
    })));
    if (!tailUrlTouched && t.tailUrl && !$('tail-url').value) $('tail-url').value = t.tailUrl;
  }

  function renderBridges(answer) {
    var box = $('bridges');
    box.textContent = '';
    var consumer = answer.consumer || {};
    var rows = [];
    (consumer.queues || []).forEach(function (queue) {
      var bridge = (answer.bridges || []).find(function (b) { return (b.queues || []).some(function (q) { return q.name === queue; }); });
      var spec = bridge ? bridge.queues.find(function (q) { return q.name === queue; }) : null;
      rows.push(el('tr', { 'data-queue': queue }, [
        el('td', { text: bridge ? bridge.name : '(default)' }),
        el('td', {}, [el('code', { text: queue })]),
        el('td', { text: spec ? spec.bindings.map(function (b) { return b.exchange + ' ' + b.routingKey; }).join(', ') : '' }),
        el('td', {}, [el('code', { text: spec ? spec.route.channel : '{routingKey}' })]),
        el('td', { text: 'consuming' }),
      ]));
    });
    (answer.bridges || []).forEach(function (bridge) {
      (bridge.queues || []).forEach(function (q) {
        if ((consumer.queues || []).indexOf(q.name) >= 0) return;
        rows.push(el('tr', { 'data-queue': q.name }, [el('td', { text: bridge.name }), el('td', {}, [el('code', { text: q.name })]),
          el('td', { text: q.bindings.map(function (b) { return b.exchange + ' ' + b.routingKey; }).join(', ') }), el('td', {}, [el('code', { text: q.route.channel })]), el('td', { text: 'not consumed here' })]));
      });
    });
    var head = el('tr', {}, ['bridge', 'queue', 'bindings', 'channel', 'state'].map(function (h) { return el('th', { text: h }); }));
    box.appendChild(el('div', { class: 'muted', text: 'RabbitMQ ' + (consumer.connected ? 'connected' : 'not connected') }));
    box.appendChild(el('table', {}, [el('thead', {}, [head]), el('tbody', {}, rows)]));
  }

  async function refresh() {
    if (!key) { $('key-form').hidden = false; setStatus('enter the admin API key', 'bad'); return; }
    try {
      var topology = await api('GET', '/console/api/cluster');
      renderCluster(topology);
      setStatus('cluster: ' + topology.brokers.length + ' broker(s), ' + topology.workers.length + ' worker(s) · ' + new Date(topology.at).toLocaleTimeString(), 'ok');
      $('key-form').hidden = true;
    } catch (error) {
      setStatus(error.message, 'bad');
      return;
    }
    try { renderBridges(await api('GET', '/v1/bridges')); } catch (error) { $('bridges').textContent = 'bridges: ' + error.message; }
  }

  function addLine(className, time, offset, text) {
    var list = $('tail');
    list.insertBefore(el('li', { class: className }, [el('time', { text: time }), el('span', { class: 'offset', text: offset }), el('span', { class: 'data', text: text })]), list.firstChild);
    while (list.children.length > 200) list.removeChild(list.lastChild);
  }

  function stopTail() {
    if (client) client.close();
    client = null;
    $('tail-start').disabled = false;
    $('tail-stop').disabled = true;
  }

  async function startTail(channel, url) {
    stopTail();
    $('tail').textContent = '';
    received = 0;
    var target = new URL(url);
    var secure = target.protocol === 'wss:' || target.protocol === 'https:';
    var minted = await api('POST', '/v1/console/token', { channel: channel });
    client = new SocketBridge.SocketBridgeClient({
      hostname: target.hostname,
      port: Number(target.port) || (secure ? 443 : 80),
      secure: secure,
      path: target.pathname && target.pathname !== '/' ? target.pathname : '/socketcluster/',
      token: minted.token,
    });
    $('tail-start').disabled = true;
    $('tail-stop').disabled = false;
    $('tail-status').textContent = 'connecting to ' + url + '…';
    await client.connected();
    await client.subscribe(channel, {
      onMessage: function (envelope) {
        received++;
        $('tail-status').textContent = 'tailing ' + channel + ' through ' + url + ': ' + received + ' message(s)';
        addLine('msg', new Date(envelope.ts).toLocaleTimeString(), envelope.offset, JSON.stringify(envelope.data));
      },
      onGap: function (gap) { addLine('gap', new Date().toLocaleTimeString(), gap.since, 'gap: ' + gap.reason); },
    });
    $('tail-status').textContent = 'tailing ' + channel + ' through ' + url + ': waiting for messages';
    $('tail').setAttribute('data-channel', channel);
  }

  $('key-form').addEventListener('submit', function (event) {
    event.preventDefault();
    key = $('key-input').value.trim();
    $('key-input').value = '';
    void refresh();
  });
  $('tail-url').addEventListener('input', function () { tailUrlTouched = true; });
  $('tail-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var channel = $('tail-channel').value.trim();
    var url = $('tail-url').value.trim();
    if (!url) { $('tail-status').textContent = 'no worker URL: the cluster lists no reachable worker'; return; }
    startTail(channel, url).catch(function (error) {
      stopTail();
      $('tail-status').textContent = 'tail failed: ' + error.message;
    });
  });
  $('tail-stop').addEventListener('click', function () { stopTail(); $('tail-status').textContent = 'stopped'; });

  void refresh();
  setInterval(refresh, 2000);
})();
`;
