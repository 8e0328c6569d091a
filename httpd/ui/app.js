// STK status UI. Builds every page from the JSON API (/api/v1/...) and
// follows /api/v1/events. Data goes into the DOM as text only (textContent,
// createTextNode, setAttribute), never parsed as markup.
'use strict';
(() => {
  const KINDS = ['created', 'state', 'beat', 'timed_out', 'destroyed', 'displaced', 'resurrected'];
  const SPARK_POINTS = 60;
  const HISTORY_SHOWN = 100;

  const S = {
    stats: null,          // /api/v1/stats
    components: null,
    instance: '',
    loaded: false,        // the snapshot is in
    applied: 0,           // sequence number of the latest event applied
    services: new Map(),  // uid -> service (current)
    history: new Map(),   // uid -> service (history)
    monitorStats: null,
    offset: 0,            // server clock - browser clock, ms
    resyncing: false,
    buffer: [],
    es: null,
    names: null,
    namesStale: true,
    namesSeq: 0,
    namesCursors: [],     // the cursors of the Names pages before the one shown
    namesLoaded: 0,       // Date.now() of the last names fetch
    filter: '',
    showAllHistory: false,
    view: null,           // the current page: {name, update()}
    flashes: new Map(),   // uid -> Set of fields changed since the last render
    remote: [],           // the other nodes' services (stkd --cluster), current and ended
    remoteVersion: -1,    // the cluster's services_version they are of
    remoteLoading: false,
    nodeFilter: '',       // the Services page's node ('' all)
  };
  window.stk = S; // for tests and the curious

  // ---- DOM helpers (text only) ----
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  function setText(e, t) {
    t = String(t);
    if (e.textContent !== t) e.textContent = t;
  }
  function setClass(e, c) {
    if (e.className !== c) e.className = c;
  }

  // ---- formatting ----
  const now = () => Date.now() + S.offset;
  const tms = (t) => (t ? Date.parse(t) : 0);
  function dur(ms) {
    if (!isFinite(ms)) return '—';
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + ' ms';
    const sec = ms / 1000;
    if (sec < 60) return sec.toFixed(sec < 10 ? 1 : 0) + ' s';
    const m = Math.floor(sec / 60), r = Math.floor(sec % 60);
    if (m < 60) return m + ' min ' + String(r).padStart(2, '0') + ' s';
    const hr = Math.floor(m / 60);
    if (hr < 48) return hr + ' h ' + String(m % 60).padStart(2, '0') + ' min';
    return Math.floor(hr / 24) + ' d ' + (hr % 24) + ' h';
  }
  function ago(t) {
    if (!t) return '—';
    const ms = Math.max(0, now() - tms(t));
    if (ms < 10000) return (ms / 1000).toFixed(1) + ' s ago';
    return dur(ms) + ' ago';
  }
  const int = (n) => (n === undefined || n === null ? '—' : Number(n).toLocaleString('en-US'));
  function bytes(n) {
    if (n < 1024) return n + ' B';
    const u = ['KiB', 'MiB', 'GiB', 'TiB'];
    let i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
    return n.toFixed(n < 10 ? 1 : 0) + ' ' + u[i];
  }
  function when(t) {
    if (!t) return '—';
    const d = new Date(tms(t));
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function stateClass(svc) {
    switch (svc.state) {
      case 1: return 's-starting';
      case 2: return 's-running';
      case 3: return 's-stopping';
      case 4: return 's-stopped';
      case 5: return 's-timedout';
    }
    return 's-app';
  }
  const endClass = (r) => 'e-' + String(r || '').replace(/\s+/g, '');
  const svcTitle = (svc) => 'state ' + svc.state + (svc.state_default ? ' (' + svc.state_default + ')' : ' (application state)');

  // ---- sparklines ----
  // sparkline draws vals (ms) as an SVG; fluid: as wide as its box.
  function sparkline(vals, w, hgt, limit, fluid) {
    const svg = s('svg', { class: 'spark', width: fluid ? '100%' : w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img' });
    if (fluid) svg.setAttribute('preserveAspectRatio', 'none');
    if (!vals || vals.length < 2) {
      svg.append(s('line', { x1: 0, y1: hgt - 1, x2: w, y2: hgt - 1, class: 'line', opacity: .3 }));
      return svg;
    }
    let max = Math.max(...vals) * 1.15;
    if (limit && limit > max * 0.6 && limit < max * 3) max = Math.max(max, limit * 1.05);
    const step = w / (vals.length - 1);
    const x0 = 0;
    const pts = vals.map((v, i) => [x0 + i * step, hgt - 1 - (Math.min(v, max) / max) * (hgt - 3)]);
    const line = pts.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' ');
    svg.append(s('polygon', { class: 'area', points: `${x0.toFixed(1)},${hgt} ${line} ${w},${hgt}` }));
    if (limit && limit <= max) {
      const y = (hgt - 1 - (limit / max) * (hgt - 3)).toFixed(1);
      svg.append(s('line', { class: 'limit', x1: 0, x2: w, y1: y, y2: y }));
    }
    svg.append(s('polyline', { class: 'line', points: line }));
    const [lx, ly] = pts[pts.length - 1];
    if (!fluid) svg.append(s('circle', { class: 'last', cx: lx.toFixed(1), cy: ly.toFixed(1), r: 1.8 }));
    const t = s('title');
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
    t.textContent = `last ${vals.length} smartbeat intervals: ${Math.round(Math.min(...vals))}–${Math.round(Math.max(...vals))} ms, mean ${Math.round(mean)} ms`;
    svg.append(t);
    return svg;
  }
  function sparkInto(cell, svc, w, hgt) {
    const vals = svc.beat_intervals_ms || [];
    const sig = vals.length + ':' + (vals[vals.length - 1] || 0) + ':' + w;
    if (cell.dataset.sig === sig) return;
    cell.dataset.sig = sig;
    cell.replaceChildren(sparkline(vals, w, hgt, svc.activity_timeout_ms));
  }

  // ---- keyed table rows ----
  // syncRows makes tbody hold one row per item, in order, reusing rows by
  // key; make(item) builds a row, fill(row, item) updates it.
  function syncRows(tbody, items, key, make, fill) {
    const old = new Map();
    for (const tr of tbody.children) if (tr.dataset.key) old.set(tr.dataset.key, tr);
    let at = tbody.firstElementChild;
    for (const it of items) {
      const k = String(key(it));
      let tr = old.get(k);
      if (tr) old.delete(k);
      else { tr = make(it); tr.dataset.key = k; }
      fill(tr, it);
      if (tr !== at) tbody.insertBefore(tr, at);
      else at = at.nextElementSibling;
    }
    for (const tr of old.values()) tr.remove();
    for (const tr of [...tbody.children]) if (!tr.dataset.key) tr.remove();
  }
  function cells(tr, labels, classes) {
    return labels.map((l, i) => tr.appendChild(h('td', { 'data-label': l, class: (classes && classes[i]) || null })));
  }
  // flash highlights a changed value; a value that changes all the time
  // flashes once per animation, not constantly.
  function flash(node) {
    if (node.classList.contains('flash')) return;
    node.classList.add('flash');
    node.addEventListener('animationend', () => node.classList.remove('flash'), { once: true });
  }

  // ---- the model ----
  function put(svc, old) {
    if (old && !svc.beat_intervals_ms) svc.beat_intervals_ms = old.beat_intervals_ms || [];
    if (svc.current) { S.history.delete(svc.uid); S.services.set(svc.uid, svc); }
    else { S.services.delete(svc.uid); S.history.set(svc.uid, svc); }
  }
  function loadSnapshot(snap) {
    S.instance = snap.instance;
    S.applied = snap.seq;
    S.offset = tms(snap.now) - Date.now();
    S.services = new Map(snap.services.map((v) => [v.uid, v]));
    S.history = new Map(snap.history.map((v) => [v.uid, v]));
    S.monitorStats = snap.stats;
    S.loaded = true;
  }
  function apply(ev) {
    const svc = ev.service;
    const old = S.services.get(svc.uid) || S.history.get(svc.uid);
    svc.beat_intervals_ms = old ? (old.beat_intervals_ms || []).slice() : [];
    if (!svc.states && old) svc.states = old.states; // beat events leave them out
    // The server merges a record's beats into one event per flush; it
    // carries the smartbeat intervals of all of them.
    if (ev.intervals_ms && old) {
      svc.beat_intervals_ms.push(...ev.intervals_ms);
      svc.beat_intervals_ms.splice(0, svc.beat_intervals_ms.length - SPARK_POINTS);
    }
    if (old) {
      const f = S.flashes.get(svc.uid) || new Set();
      if (old.checkpoint !== svc.checkpoint) f.add('checkpoint');
      if (old.state !== svc.state || old.state_name !== svc.state_name || old.current !== svc.current) f.add('state');
      if (f.size) S.flashes.set(svc.uid, f);
    }
    put(svc, old);
    S.applied = ev.seq;
  }
  // Events come in sequence-number order, but not every number comes:
  // merged beats stand for the ones before them. ev.prev is the event
  // before this one on the stream; when it is past what was applied, the
  // stream lost something and the snapshot is loaded again.
  function onEvent(ev) {
    if (S.resyncing || !S.loaded) { S.buffer.push(ev); return; }
    if (ev.seq <= S.applied) return;
    if (ev.prev > S.applied) { S.buffer.push(ev); resync('missed events'); return; }
    apply(ev);
    schedule();
  }
  async function resync(why) {
    if (S.resyncing) return;
    S.resyncing = true;
    for (;;) {
      try {
        const snap = await getJSON('/api/v1/snapshot');
        loadSnapshot(snap);
        const buf = S.buffer;
        S.buffer = [];
        for (const ev of buf) if (ev.seq > S.applied && ev.prev <= S.applied) apply(ev);
        break;
      } catch (e) {
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
    S.resyncing = false;
    schedule();
  }

  // The other nodes' services (stkd --cluster) are fetched again whenever
  // the stats say they changed (their services_version).
  async function loadRemote() {
    const c = S.stats && S.stats.cluster;
    if (!c || S.remoteLoading || c.services_version === S.remoteVersion) return;
    S.remoteLoading = true;
    try {
      const r = await getJSON('/api/v1/cluster/services');
      for (const v of r.services) v.remote = true;
      S.remote = r.services;
      S.remoteVersion = r.version;
      schedule();
    } catch (e) {
      // the next stats event tries again
    } finally {
      S.remoteLoading = false;
    }
  }
  const rowKey = (v) => (v.remote ? v.node + '/' + v.uid : v.uid);

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error(body.error || r.statusText);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  // ---- the event stream ----
  function live(state, text) {
    const el = document.getElementById('live');
    setClass(el, 'live ' + state);
    setText(el.querySelector('.txt'), text);
  }
  function connect() {
    if (S.es) S.es.close();
    const url = '/api/v1/events' + (S.loaded ? '?since=' + S.applied : '');
    const es = new EventSource(url);
    S.es = es;
    es.addEventListener('hello', (e) => {
      const hello = JSON.parse(e.data);
      live('on', 'Live');
      if (S.components && S.components.monitor && S.instance && hello.instance !== S.instance) {
        S.instance = hello.instance;
        resync('the daemon restarted');
      }
      namesHint();
    });
    es.addEventListener('reset', () => resync('reset'));
    for (const k of KINDS) es.addEventListener(k, (e) => onEvent(JSON.parse(e.data)));
    es.addEventListener('stats', (e) => {
      const st = JSON.parse(e.data);
      S.stats = st;
      S.offset = tms(st.now) - Date.now();
      if (st.monitor) S.monitorStats = st.monitor;
      loadRemote();
      schedule();
    });
    es.addEventListener('names', namesHint);
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        live('off', 'Offline');
        setTimeout(() => { if (S.es === es) connect(); }, 3000);
      } else {
        live('', 'Reconnecting');
      }
    };
  }

  // ---- rendering ----
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (S.view) S.view.update();
      S.flashes.clear();
    });
  }

  function notRunning(what) {
    return h('div', { class: 'notice' }, what + ' is not running in this daemon.');
  }

  function serviceLead(td, svc, inGroup) {
    if (!td.firstChild) {
      td.append(h('a', { class: 'name' }), h('div', { class: 'sub-line' }));
    }
    const a = td.firstChild;
    if (svc.remote) {
      a.removeAttribute('href'); // its page is on its own node's UI
      a.title = 'reported to node ' + svc.node;
    } else {
      a.setAttribute('href', '/services/' + svc.uid);
    }
    setText(a, svc.name || '(unnamed)');
    const parts = [svc.type_name, svc.hid];
    if (svc.group && !inGroup) parts.unshift('group ' + svc.group);
    setText(td.lastChild, parts.join(' · '));
  }
  function stateBadge(td, svc, flashIt) {
    let b = td.firstChild;
    if (!b) b = td.appendChild(h('span'));
    setClass(b, 'badge state ' + stateClass(svc));
    setText(b, svc.state_name);
    b.title = svcTitle(svc);
    if (flashIt) flash(b);
  }

  const CUR_LABELS = ['Service', 'State', 'Checkpoint', 'Last beat', 'Uptime', 'Host', 'Smartbeat interval'];
  const CUR_CLASSES = ['lead', 'state', 'r num checkpoint', 'num lastbeat', 'num uptime', 'host', 'beat'];
  function makeCurrentRow(svc) {
    const tr = h('tr', { 'data-uid': svc.uid, class: 'svc' });
    cells(tr, CUR_LABELS, CUR_CLASSES);
    const beat = tr.lastChild;
    beat.append(h('div', { class: 'spark-cell' }, h('span', { class: 'sp' }), h('span', { class: 'num iv' })));
    const host = tr.children[5];
    host.append(h('span', { class: 'mono hp' }), h('div', { class: 'sub-line proto' }));
    return tr;
  }
  function fillCurrentRow(tr, svc) {
    const f = svc.remote ? null : S.flashes.get(svc.uid);
    const c = tr.children;
    serviceLead(c[0], svc);
    stateBadge(c[1], svc, f && f.has('state'));
    setText(c[2], int(svc.checkpoint));
    if (f && f.has('checkpoint')) flash(c[2]);
    setText(c[3], ago(svc.last_received));
    c[3].title = 'the service’s clock: ' + when(svc.last_beat) + '; beats: ' + int(svc.beats);
    setText(c[4], svc.created ? dur(now() - tms(svc.created)) : '—');
    setText(c[5].querySelector('.hp'), svc.peer || '—');
    setText(c[5].querySelector('.proto'), svc.protocol + (svc.resurrections ? ' · resurrected ×' + svc.resurrections : ''));
    const cell = c[6].firstChild;
    setClass(cell, 'spark-cell ' + stateClass(svc));
    sparkInto(cell.querySelector('.sp'), svc, 110, 26);
    setText(cell.querySelector('.iv'), svc.interval_ms ? Math.round(svc.interval_ms) + ' ms' : '');
    cell.title = svc.interval_ms ? `mean ${svc.interval_ms.toFixed(1)} ms, σ ${svc.stddev_ms.toFixed(1)} ms; activity timeout ${dur(svc.activity_timeout_ms)}` : '';
  }

  const HIST_LABELS = ['Service', 'Ended', 'Checkpoint', 'When', 'Lifetime', 'Host', 'Why', 'Smartbeat interval'];
  const HIST_CLASSES = ['lead', 'state', 'r num checkpoint', 'num', 'num', 'host', 'why', 'beat'];
  function makeHistoryRow(svc) {
    const tr = h('tr', { 'data-uid': svc.uid, class: 'svc hist' });
    cells(tr, HIST_LABELS, HIST_CLASSES);
    tr.children[1].append(h('span', { class: 'stack' }, h('span', { class: 'badge end' }), h('span', { class: 'sub-line laststate' })));
    tr.children[5].append(h('span', { class: 'mono hp' }), h('div', { class: 'sub-line proto' }));
    tr.lastChild.append(h('div', { class: 'spark-cell' }, h('span', { class: 'sp' })));
    return tr;
  }
  function fillHistoryRow(tr, svc) {
    const c = tr.children;
    serviceLead(c[0], svc);
    const b = c[1].querySelector('.badge');
    setClass(b, 'badge end ' + endClass(svc.end_reason));
    setText(b, svc.end_reason || 'ended');
    setText(c[1].querySelector('.laststate'), 'last state: ' + svc.state_name);
    setText(c[2], int(svc.checkpoint));
    setText(c[3], ago(svc.ended));
    setText(c[4], svc.created && svc.ended ? dur(tms(svc.ended) - tms(svc.created)) : '—');
    setText(c[5].querySelector('.hp'), svc.peer || '—');
    setText(c[5].querySelector('.proto'), svc.protocol);
    let why = '—';
    if (svc.verdict) why = svc.verdict.reason || svc.verdict.detector;
    else if (svc.displaced) why = 'a newer CREATE replaced it';
    else if (svc.inactive) why = 'inactive';
    setText(c[6], why);
    const cell = c[7].firstChild;
    setClass(cell, 'spark-cell ' + (svc.end_reason === 'timed out' ? 's-timedout' : 's-stopped'));
    sparkInto(cell.querySelector('.sp'), svc, 110, 26);
  }

  function table(labels, classes, id) {
    const thead = h('thead', null, h('tr', null, labels.map((l, i) => h('th', { class: /\br\b/.test(classes[i]) ? 'r' : null }, l))));
    const tbody = h('tbody', { id });
    return { el: h('div', { class: 'panel' }, h('table', { class: 'data' }, thead, tbody)), tbody };
  }

  function matches(svc, q) {
    if (!q) return true;
    return [svc.name, svc.group, svc.peer, svc.hid, svc.state_name, svc.protocol, svc.node].some((x) => x && String(x).toLowerCase().includes(q));
  }

  function tile(k, cls) {
    const v = h('div', { class: 'v' }, '0');
    return { el: h('div', { class: 'tile ' + (cls || '') }, v, h('div', { class: 'k' }, k)), v };
  }

  // Services page
  function servicesPage(main) {
    if (S.components && !S.components.monitor) {
      main.append(h('h1', null, 'Services'), notRunning('The service monitor'));
      return { name: 'services', update() {} };
    }
    const tiles = {
      current: tile('current'), running: tile('running', 's-running'), starting: tile('starting', 's-starting'),
      stopping: tile('stopping', 's-stopping'), other: tile('other', 's-app'), history: tile('history'),
      timeouts: tile('timed out', 's-timedout'),
    };
    const search = h('input', { type: 'search', placeholder: 'Filter by name, group, host, id or state', 'aria-label': 'Filter services', value: S.filter });
    search.addEventListener('input', () => { S.filter = search.value; schedule(); });
    // On a node of a cluster: every node's services, a Node column and a
    // node filter. The other nodes' rows come from S.remote.
    const cl = S.stats && S.stats.cluster;
    const selfNode = () => (S.stats && S.stats.cluster ? S.stats.cluster.node : '');
    const nodeOf = (v) => (v.remote ? v.node : selfNode());
    const withNode = (l, x) => (cl ? [...l, x] : l);
    const makeN = (make) => (svc) => {
      const tr = make(svc);
      if (cl) tr.append(h('td', { 'data-label': 'Node', class: 'node mono' }));
      return tr;
    };
    const fillN = (fill) => (tr, svc) => {
      fill(tr, svc);
      if (cl) setText(tr.lastChild, nodeOf(svc) + (svc.remote ? '' : ' (this node)'));
    };
    const nodeSel = h('select', { 'aria-label': 'Node', id: 'node-filter' });
    nodeSel.addEventListener('change', () => { S.nodeFilter = nodeSel.value; schedule(); });
    let nodeOpts = '';
    const cur = table(withNode(CUR_LABELS, 'Node'), withNode(CUR_CLASSES, 'node'), 'current');
    const hist = table(withNode(HIST_LABELS, 'Node'), withNode(HIST_CLASSES, 'node'), 'history');
    const curCount = h('span', { class: 'count' });
    const histCount = h('span', { class: 'count' });
    const curEmpty = h('div', { class: 'empty' }, 'No service reports to this monitor right now.');
    const histEmpty = h('div', { class: 'empty' }, 'Nothing yet: services that stop, time out or are replaced show here.');
    const more = h('button', { type: 'button' }, 'Show all');
    more.addEventListener('click', () => { S.showAllHistory = !S.showAllHistory; schedule(); });
    main.append(
      h('h1', null, 'Services'),
      h('div', { class: 'tiles' }, Object.values(tiles).map((t) => t.el)),
      h('div', { class: 'toolbar' }, search, cl ? nodeSel : null),
      h('h2', null, 'Current', curCount), cur.el, curEmpty,
      h('h2', null, 'History', histCount), hist.el, histEmpty, h('div', { class: 'toolbar' }, more),
    );
    if (cl) loadRemote();
    return {
      name: 'services',
      update() {
        if (!S.loaded) return;
        const q = S.filter.trim().toLowerCase();
        let all = [...S.services.values()];
        let ended = [...S.history.values()];
        if (cl) {
          const names = new Set([selfNode(), ...((S.stats.cluster && S.stats.cluster.nodes) || []).map((n) => n.id), ...S.remote.map((v) => v.node)]);
          const ids = [...names].sort();
          if (ids.join('\n') !== nodeOpts) {
            nodeOpts = ids.join('\n');
            nodeSel.replaceChildren(h('option', { value: '' }, 'All nodes'), ...ids.map((id) => h('option', { value: id }, id)));
            nodeSel.value = S.nodeFilter;
          }
          const nf = S.nodeFilter;
          const inNode = (v) => !nf || nodeOf(v) === nf;
          all = [...all, ...S.remote.filter((v) => v.current)].filter(inNode);
          ended = [...ended, ...S.remote.filter((v) => !v.current)].filter(inNode);
        }
        const counts = { 1: 0, 2: 0, 3: 0, other: 0 };
        for (const v of all) {
          if (v.state >= 1 && v.state <= 3) counts[v.state]++;
          else counts.other++;
        }
        setText(tiles.current.v, int(all.length));
        setText(tiles.running.v, int(counts[2]));
        setText(tiles.starting.v, int(counts[1]));
        setText(tiles.stopping.v, int(counts[3]));
        setText(tiles.other.v, int(counts.other));
        setText(tiles.history.v, int(ended.length));
        let timedOut = 0;
        for (const v of ended) if (v.end_reason === 'timed out') timedOut++;
        setText(tiles.timeouts.v, int(timedOut));
        const shown = all.filter((v) => matches(v, q));
        shown.sort((a, b) => (a.name || '').localeCompare(b.name || '') || nodeOf(a).localeCompare(nodeOf(b)) || a.uid - b.uid);
        syncRows(cur.tbody, shown, rowKey, makeN(makeCurrentRow), fillN(fillCurrentRow));
        setText(curCount, q ? `${shown.length} of ${all.length}` : String(all.length));
        cur.el.hidden = shown.length === 0;
        curEmpty.hidden = shown.length > 0;
        setText(curEmpty, all.length ? 'No current service matches the filter.' : 'No service reports to this monitor right now.');

        const hs = ended.filter((v) => matches(v, q));
        hs.sort((a, b) => tms(b.ended) - tms(a.ended) || b.uid - a.uid);
        const hshown = S.showAllHistory ? hs : hs.slice(0, HISTORY_SHOWN);
        syncRows(hist.tbody, hshown, rowKey, makeN(makeHistoryRow), fillN(fillHistoryRow));
        setText(histCount, hshown.length < hs.length ? `latest ${hshown.length} of ${hs.length}` : String(hs.length));
        hist.el.hidden = hs.length === 0;
        histEmpty.hidden = hs.length > 0;
        more.parentNode.hidden = hs.length <= HISTORY_SHOWN;
        setText(more, S.showAllHistory ? 'Show the latest ' + HISTORY_SHOWN : 'Show all ' + hs.length);
      },
    };
  }

  // One service
  function servicePage(main, uid) {
    const title = h('h1');
    const body = h('div');
    main.append(h('div', { class: 'small' }, h('a', { href: '/services' }, '← Services')), title, body);
    let missing = false;
    // The record may be older than what the model holds (a restart):
    // ask the API once when it is not in the model.
    if (S.loaded && !S.services.has(uid) && !S.history.has(uid)) missing = true;
    return {
      name: 'service',
      update() {
        if (S.components && !S.components.monitor) { title.replaceChildren('Service'); body.replaceChildren(notRunning('The service monitor')); return; }
        if (!S.loaded) return;
        const svc = S.services.get(uid) || S.history.get(uid);
        if (!svc) {
          title.replaceChildren('No such service');
          body.replaceChildren(h('div', { class: 'notice' }, 'The monitor has no record ' + uid + (missing ? '.' : ' any more.')));
          return;
        }
        const badge = h('span', { class: 'badge ' + stateClass(svc), title: svcTitle(svc) }, svc.state_name);
        const parts = [svc.name || '(unnamed)', ' ', badge];
        if (!svc.current) parts.push(' ', h('span', { class: 'badge ' + endClass(svc.end_reason) }, svc.end_reason || 'ended'));
        title.replaceChildren(...parts);
        const kv = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
        const ident = kv([
          ['ID', svc.hid + ' (' + svc.id + ')'], ['Type', svc.type_name + ' (' + svc.type + ')'],
          ['Group', svc.group || '—'], ['Host', svc.peer || '—'], ['Protocol', svc.protocol], ['Record', svc.key],
        ]);
        const live = kv([
          ['State', svc.state_name + ' (' + svc.state + ')'], ['Checkpoint', int(svc.checkpoint)],
          ['Created', when(svc.created)], ['Uptime', svc.current && svc.created ? dur(now() - tms(svc.created)) : '—'],
          ['Last beat received', ago(svc.last_received)], ['Last beat (service clock)', when(svc.last_beat)],
          ['Smartbeats', int(svc.beats)], ['Activity timeout', dur(svc.activity_timeout_ms)],
          ['Mean interval', svc.interval_ms ? svc.interval_ms.toFixed(1) + ' ms ± ' + svc.stddev_ms.toFixed(1) : '—'],
          ['φ (suspicion)', svc.phi === null ? '∞' : svc.phi.toFixed(2)],
          ['Ended', svc.ended ? when(svc.ended) + ' (' + (svc.end_reason || '') + ')' : '—'],
          ['Resurrections', int(svc.resurrections)],
        ]);
        const blocks = [];
        if (svc.verdict) {
          const v = svc.verdict;
          blocks.push(h('div', { class: 'verdict' }, h('strong', null, 'Declared failed by ' + v.detector + ': '), v.reason,
            h('div', { class: 'small muted' }, `silent ${dur(v.silence_ms)}, activity timeout ${dur(v.activity_timeout_ms)}, φ ${v.phi === null ? '∞' : v.phi.toFixed(2)} of ${v.phi_threshold === null ? '—' : v.phi_threshold}, ${v.samples} samples, stall credit ${dur(v.stall_credit_ms)}`)));
        }
        const iv = svc.beat_intervals_ms || [];
        const sp = h('div', { class: 'big-spark' });
        if (iv.length >= 2) sp.append(sparkline(iv, 600, 80, svc.activity_timeout_ms, true));
        else sp.append(h('div', { class: 'muted small' }, 'Not enough smartbeats seen since the daemon’s status page started.'));
        const states = h('tbody');
        for (const st of [...(svc.states || [])].reverse()) {
          states.append(h('tr', null, h('td', { 'data-label': 'When' }, when(st.at)), h('td', { 'data-label': 'State' },
            h('span', { class: 'badge ' + stateClass(st) }, st.name)), h('td', { 'data-label': 'Number', class: 'r num' }, st.state)));
        }
        body.replaceChildren(...blocks,
          h('div', { class: 'cards' }, h('div', { class: 'panel card' }, h('h3', null, 'Identity'), ident),
            h('div', { class: 'panel card' }, h('h3', null, 'Activity'), live)),
          h('h2', null, 'Smartbeat intervals', h('span', { class: 'count' }, iv.length ? `latest ${iv.length}: ${Math.round(Math.min(...iv))}–${Math.round(Math.max(...iv))} ms; dashed: activity timeout` : '')),
          h('div', { class: 'panel' }, sp),
          h('h2', null, 'State history'),
          h('div', { class: 'panel' }, h('table', { class: 'data' }, h('thead', null, h('tr', null, h('th', null, 'When'), h('th', null, 'State'), h('th', { class: 'r' }, 'Number'))), states)));
      },
    };
  }

  // Groups page: the groups are derived from the services' group names,
  // as /api/v1/groups does.
  function groupsPage(main) {
    const box = h('div', { class: 'groups' });
    const empty = h('div', { class: 'notice' }, 'No service group reports to this monitor. Services mirrored by a service group carry its name.');
    main.append(h('h1', null, 'Service groups'), box, empty);
    if (S.components && !S.components.monitor) { empty.replaceChildren(notRunning('The service monitor')); return { name: 'groups', update() {} }; }
    const GL = ['Service', 'State', 'Checkpoint', 'Last beat'];
    const GC = ['lead', 'state', 'r num checkpoint', 'num lastbeat'];
    return {
      name: 'groups',
      update() {
        if (!S.loaded) return;
        const groups = new Map();
        const get = (n) => { if (!groups.has(n)) groups.set(n, { name: n, current: [], history: 0 }); return groups.get(n); };
        for (const v of S.services.values()) if (v.group) get(v.group).current.push(v);
        for (const v of S.history.values()) if (v.group) get(v.group).history++;
        const list = [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
        empty.hidden = list.length > 0;
        syncRows(box, list, (g) => g.name, (g) => {
          const t = table(GL, GC);
          const card = h('section', { class: 'panel group-card' }, h('h3', null, h('span', { class: 'gname' }), h('span', { class: 'muted' })), t.el.firstChild);
          return card;
        }, (card, g) => {
          setText(card.querySelector('.gname'), g.name);
          setText(card.querySelector('h3 .muted'), `${g.current.length} current · ${g.history} in history`);
          g.current.sort((a, b) => (a.name || '').localeCompare(b.name || ''));
          syncRows(card.querySelector('tbody'), g.current, (v) => v.uid, (v) => {
            const tr = h('tr', { 'data-uid': v.uid, class: 'svc' });
            cells(tr, GL, GC);
            return tr;
          }, (tr, v) => {
            const f = S.flashes.get(v.uid);
            serviceLead(tr.children[0], v, true);
            stateBadge(tr.children[1], v, f && f.has('state'));
            setText(tr.children[2], int(v.checkpoint));
            if (f && f.has('checkpoint')) flash(tr.children[2]);
            setText(tr.children[3], ago(v.last_received));
          });
        });
      },
    };
  }

  // Names page: one page of names from the server (it pages, filters and
  // searches), fetched again on a "names" hint at most every
  // NAMES_REFRESH ms, however fast the names change.
  const NAMES_PAGE = 100;
  const NAMES_REFRESH = 3000;
  let namesTimer = 0;
  let namesHintTimer = 0;
  async function loadNames(cursors) {
    if (cursors) S.namesCursors = cursors;
    const cs = S.namesCursors;
    const seq = ++S.namesSeq;
    clearTimeout(namesHintTimer);
    namesHintTimer = 0;
    S.namesLoaded = Date.now();
    const q = new URLSearchParams({ limit: String(NAMES_PAGE) });
    if ((S.namesQuery || '').trim()) q.set('q', S.namesQuery.trim());
    if (cs.length) q.set('cursor', cs[cs.length - 1]);
    try {
      const r = await getJSON('/api/v1/names?' + q);
      if (seq !== S.namesSeq) return; // a later search is on its way
      S.names = r;
      S.namesStale = false;
    } catch (e) {
      if (seq !== S.namesSeq) return;
      if (e.status === 400 && cs.length) { loadNames([]); return; } // a stale cursor: start again
      S.names = { error: e.message, status: e.status };
    }
    schedule();
  }
  // namesHint refreshes the page shown after a "names" hint, throttled.
  function namesHint() {
    S.namesStale = true;
    if (!S.view || S.view.name !== 'names' || namesHintTimer) return;
    const wait = S.namesLoaded + NAMES_REFRESH - Date.now();
    if (wait <= 0) loadNames();
    else namesHintTimer = setTimeout(() => { namesHintTimer = 0; if (S.view && S.view.name === 'names') loadNames(); }, wait);
  }
  function namesPage(main) {
    if (S.components && !S.components.names) {
      main.append(h('h1', null, 'Names'), notRunning('The name server'));
      return { name: 'names', update() {} };
    }
    const search = h('input', { type: 'search', placeholder: 'Search names, groups, addresses', 'aria-label': 'Search names', value: S.namesQuery || '' });
    search.addEventListener('input', () => {
      S.namesQuery = search.value;
      clearTimeout(namesTimer);
      namesTimer = setTimeout(() => loadNames([]), 150);
    });
    const prev = h('button', { type: 'button' }, 'Previous');
    const next = h('button', { type: 'button' }, 'Next');
    prev.addEventListener('click', () => loadNames(S.namesCursors.slice(0, -1)));
    next.addEventListener('click', () => { const r = S.names; if (r && r.next_cursor) loadNames([...S.namesCursors, r.next_cursor]); });
    const count = h('span', { class: 'muted small' });
    const NL = ['Name', 'Addresses', 'FT', 'Linger', 'Status', 'Registrant', 'Subscribers'];
    const NC = ['lead', 'addrs', 'ft', 'num', 'status', 'mono small', 'r num'];
    const t = table(NL, NC, 'names');
    const empty = h('div', { class: 'empty' });
    main.append(h('h1', null, 'Names'), h('div', { class: 'toolbar' }, search, count), t.el, empty, h('div', { class: 'toolbar' }, prev, next));
    if (S.namesStale || !S.names) loadNames();
    return {
      name: 'names',
      leave() { clearTimeout(namesHintTimer); namesHintTimer = 0; },
      update() {
        const r = S.names;
        if (!r) return;
        if (r.error) { t.el.hidden = true; empty.hidden = false; setText(empty, 'Cannot list the names: ' + r.error); return; }
        const first = S.namesCursors.length * NAMES_PAGE;
        const shown = r.names.length;
        const range = shown && (first > 0 || r.truncated) ? ` · ${int(first + 1)}–${int(first + shown)} shown` : '';
        setText(count, (r.q ? (r.matches >= 0 ? `${int(r.matches)} of ${int(r.total)} names match` : `names matching, of ${int(r.total)}`) : `${int(r.total)} names`) + range);
        t.el.hidden = shown === 0;
        empty.hidden = shown > 0;
        setText(empty, !r.total ? 'No name is registered.'
          : r.truncated ? `No match among the ${int(r.scanned)} names searched so far: Next searches on.`
          : 'No name matches “' + r.q + '”' + (first ? ' on this page.' : '.'));
        prev.disabled = S.namesCursors.length === 0;
        next.disabled = !r.truncated;
        prev.hidden = next.hidden = S.namesCursors.length === 0 && !r.truncated;
        syncRows(t.tbody, r.names, (n) => [n.group, n.name, n.registrant, n.registered].join('\u0000'), () => {
          const tr = h('tr', { class: 'name-row' });
          cells(tr, NL, NC);
          tr.children[0].append(h('span', { class: 'name' }), h('div', { class: 'sub-line' }));
          tr.children[2].append(h('span', { class: 'badge' }));
          return tr;
        }, (tr, n) => {
          const c = tr.children;
          setText(c[0].firstChild, n.name);
          setText(c[0].lastChild, n.group ? 'group ' + n.group : 'default group');
          // Addresses, then the meta-data that reads as text (the
          // monitor's registration carries its addresses there).
          const meta = n.meta.filter((m) => m.text);
          const sig = JSON.stringify([n.addresses, meta]);
          if (c[1].dataset.sig !== sig) {
            c[1].dataset.sig = sig;
            const kids = n.addresses.map((a) => h('span', { class: 'chip mono' }, a.text));
            for (const m of meta) kids.push(h('span', { class: 'chip mono meta', title: 'meta-data ' + m.type }, m.text));
            c[1].replaceChildren(kids.length ? h('span', { class: 'chips' }, kids) : '—');
          }
          const b = c[2].firstChild;
          setClass(b, 'badge ft-' + n.ft);
          setText(b, n.ft);
          setText(c[3], dur(n.linger_ms));
          setText(c[4], n.lingering ? 'lingering, gone in ' + (n.expires ? dur(tms(n.expires) - now()) : '?') : 'registered ' + ago(n.registered));
          setText(c[5], (n.transport ? n.transport + ':' : '') + (n.registrant || '—'));
          setText(c[6], int(n.subscribers));
        });
      },
    };
  }

  // History page: the monitor's history a page at a time from
  // /api/v1/history, filtered on the server (the history can be large;
  // the Services page shows only its newest records).
  const HISTORY_PAGE = 50;
  function historyPage(main) {
    if (S.components && !S.components.monitor) {
      main.append(h('h1', null, 'History'), notRunning('The service monitor'));
      return { name: 'history', update() {} };
    }
    const f = S.historyFilter || (S.historyFilter = { name: '', group: '', state: '' });
    const input = (k, ph) => {
      const e = h('input', { type: 'search', placeholder: ph, 'aria-label': ph, value: f[k] });
      e.addEventListener('input', () => { f[k] = e.value; clearTimeout(timer); timer = setTimeout(() => load([]), 200); });
      return e;
    };
    let timer = 0;
    let cursors = [];  // the cursors of the pages before this one
    let res = null;    // the page shown, or {error}
    let seq = 0;       // ignores answers to superseded requests
    const hist = table(HIST_LABELS, HIST_CLASSES, 'history-page');
    const count = h('span', { class: 'muted small' });
    const empty = h('div', { class: 'empty' });
    const newer = h('button', { type: 'button' }, 'Newer');
    const older = h('button', { type: 'button' }, 'Older');
    newer.addEventListener('click', () => load(cursors.slice(0, -1)));
    older.addEventListener('click', () => { if (res && res.next) load([...cursors, res.next]); });
    async function load(cs) {
      const my = ++seq;
      const q = new URLSearchParams({ limit: String(HISTORY_PAGE) });
      if (cs.length) q.set('cursor', cs[cs.length - 1]);
      for (const k of ['name', 'group', 'state']) if (f[k].trim()) q.set(k, f[k].trim());
      let r;
      try { r = await getJSON('/api/v1/history?' + q); } catch (e) { r = { error: e.message }; }
      if (my !== seq) return;
      cursors = cs;
      res = r;
      schedule();
    }
    main.append(
      h('h1', null, 'History'),
      h('div', { class: 'toolbar' }, input('name', 'Service name contains'), input('group', 'Group'), input('state', 'State (name or number)'), count),
      hist.el, empty, h('div', { class: 'toolbar' }, newer, older),
    );
    load([]);
    return {
      name: 'history',
      update() {
        if (!res) return;
        if (res.error) { hist.el.hidden = true; empty.hidden = false; setText(empty, 'Cannot read the history: ' + res.error); return; }
        const first = cursors.length * HISTORY_PAGE;
        const shown = res.services.length;
        setText(count, shown ? `records ${int(first + 1)}–${int(first + shown)}${res.next ? '' : ' (the oldest)'} · ${int(res.total)} in the history` : `${int(res.total)} in the history`);
        syncRows(hist.tbody, res.services, (v) => v.uid, makeHistoryRow, fillHistoryRow);
        hist.el.hidden = shown === 0;
        empty.hidden = shown > 0;
        setText(empty, res.total ? 'No record matches the filter.' : 'Nothing yet: services that stop, time out or are replaced show here.');
        newer.disabled = cursors.length === 0;
        older.disabled = !res.next;
      },
      leave() { clearTimeout(timer); seq++; },
    };
  }

  // Daemon page: flows and statistics, from /api/v1/stats and its events.
  function daemonPage(main) {
    const cards = h('div', { class: 'cards' });
    const flowsBox = h('div');
    const clusterBox = h('div', { id: 'cluster' }); // stkd --cluster only
    main.append(h('h1', null, 'Daemon'), cards, clusterBox, h('h2', null, 'Data flows'), flowsBox);
    const FL = ['Flow', 'Address', 'Seq in', 'Seq out', 'Bytes in', 'Bytes out', 'Dropped', 'Connections'];
    const FC = ['lead', 'mono', 'r num', 'r num', 'r num', 'r num', 'r num', 'r num'];
    const ft = table(FL, FC, 'flows');
    const kv = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v, c]) => [h('dt', null, k), h('dd', { class: c }, v)]));
    const card = (title, body) => h('section', { class: 'panel card' }, h('h3', null, title), body);
    getJSON('/api/v1/stats').then((st) => { S.stats = st; schedule(); }, () => {}); // fresh numbers now
    return {
      name: 'daemon',
      update() {
        const st = S.stats;
        if (!st) return;
        const d = st.daemon;
        const list = [card('Daemon', kv([
          ['Version', d.version || '—'], ['Up', dur(now() - tms(d.started))], ['Started', when(d.started)],
          ['Go', d.go_version + ' ' + d.os + '/' + d.arch], ['CPUs', d.num_cpu + ' (GOMAXPROCS ' + d.gomaxprocs + ')'],
          ['Goroutines', int(d.goroutines)], ['Heap', bytes(d.heap_bytes)], ['Memory', bytes(d.total_bytes)],
          ['GC cycles', int(d.gc_cycles)], ['Allocated', bytes(d.allocated_bytes)],
        ]))];
        const m = st.monitor;
        list.push(card('Service monitor', m ? kv([
          ['Current', int(m.current)], ['History', int(m.history)], ['Sequences', int(m.sequences)],
          ['Notifications', int(m.notifications)], ['Smartbeats', int(m.beats) + ' (' + int(m.unknown_beats) + ' unknown)'],
          ['Created', int(m.created)], ['Destroyed', int(m.destroyed)], ['Displaced', int(m.displaced)],
          ['Timed out', int(m.timed_out) + ' (φ: ' + int(m.timed_out_by_phi) + ')'], ['Resurrected', int(m.resurrected)],
          ['Ignored / malformed', int(m.ignored) + ' / ' + int(m.malformed)], ['Stalls', int(m.stalls) + ' (' + dur(m.stall_time_ms) + ')'],
          ['Registered', m.registered ? 'yes' : (m.registration_error || 'no')],
          ['Listening', m.listeners.length ? m.listeners.join(', ') : '—'],
        ]) : h('div', { class: 'empty' }, 'Not running.')));
        const n = st.names;
        list.push(card('Name server', n ? kv([
          ['Server id', n.id, 'mono'], ['Registrations', int(n.registrations)], ['Lingering', int(n.lingering)],
          ['Subscriptions', int(n.subscriptions)], ['Clients', int(n.clients)], ['Registers', int(n.registers)],
          ['Lookups', int(n.lookups)], ['Subscribes', int(n.subscribes)], ['Answers', int(n.answers)],
          ['Keep-alives', int(n.keepalives)], ['Rejected', int(n.rejected)],
        ]) : h('div', { class: 'empty' }, 'Not running.')));
        const c = st.cluster;
        if (c) {
          const answering = c.endpoints.filter((e) => e.ok).map((e) => e.url + (e.leader ? ' (leader)' : ''));
          list.push(card('Cluster', kv([
            ['Node', c.node, 'mono'],
            ['State', c.connected ? 'connected' : 'partitioned' + (c.partitioned_since ? ' since ' + when(c.partitioned_since) + ' (' + ago(c.partitioned_since) + ')' : ''), c.connected ? 'ok' : 'bad'],
            ['etcd answering', answering.length ? answering.join(', ') : 'none'],
            ['Last error', c.last_error || '—'],
            ['Lease', (c.lease || '—') + ' · TTL ' + dur(c.lease_ttl_ms)],
            ['Last contact', ago(c.last_contact)], ['Last re-sync', when(c.last_resync)],
            ['Names', int(c.local_names) + ' here · ' + int(c.remote_names) + ' of other nodes'],
            ['Services', int(c.services_published) + ' published · ' + int(c.remote_services) + ' of other nodes'],
            ['Puts / deletes', int(c.puts) + ' / ' + int(c.deletes) + ' (' + int(c.txns) + ' txns)'],
            ['Watch events', int(c.watch_events) + ' (' + int(c.applied) + ' applied)'],
            ['Re-syncs / errors', int(c.resyncs) + ' / ' + int(c.errors)],
            ['Lag', dur(c.lag_ms) + ' (max ' + dur(c.max_lag_ms) + ')'],
          ])));
          const nt = table(['Node', 'Host', 'Started', 'Last sync'], ['lead mono', 'mono', 'num', 'num'], 'cluster-nodes');
          for (const n of c.nodes) {
            const tr = h('tr', { 'data-node': n.id });
            cells(tr, ['Node', 'Host', 'Started', 'Last sync'], ['lead mono', 'mono', 'num', 'num']);
            setText(tr.children[0], n.id + (n.self ? ' (this node)' : ''));
            setText(tr.children[1], n.host || '—');
            setText(tr.children[2], when(n.started));
            setText(tr.children[3], ago(n.last_sync));
            nt.tbody.append(tr);
          }
          const et = table(['etcd endpoint', 'Answers', 'Version', 'Checked'], ['lead mono', '', '', 'num'], 'cluster-endpoints');
          for (const e of c.endpoints) {
            const tr = h('tr');
            cells(tr, ['etcd endpoint', 'Answers', 'Version', 'Checked'], ['lead mono', '', '', 'num']);
            setText(tr.children[0], e.url);
            setText(tr.children[1], e.ok ? (e.leader ? 'yes · leader' : 'yes') : 'no' + (e.error ? ': ' + e.error : ''));
            setClass(tr.children[1], e.ok ? 'ok' : 'bad');
            setText(tr.children[2], e.version || '—');
            setText(tr.children[3], ago(e.checked));
            et.tbody.append(tr);
          }
          clusterBox.replaceChildren(h('h2', null, 'Cluster nodes'), nt.el, h('h2', null, 'etcd endpoints'), et.el);
        }
        list.push(card('Status UI', kv([
          ['Live streams', int(st.http.stream_clients)], ['Dropped (slow)', int(st.http.stream_dropped)],
          ['Resets', int(st.http.stream_resets)], ['Events sent', int(st.http.events_sent)],
        ])));
        cards.replaceChildren(...list);
        if (!st.flows) { flowsBox.replaceChildren(h('div', { class: 'notice' }, 'This daemon does not report its data flows.')); return; }
        if (!st.flows.length) { flowsBox.replaceChildren(h('div', { class: 'notice' }, 'No data flows.')); return; }
        if (flowsBox.firstChild !== ft.el) flowsBox.replaceChildren(ft.el);
        syncRows(ft.tbody, st.flows, (f) => f.name, () => {
          const tr = h('tr');
          cells(tr, FL, FC);
          tr.children[0].append(h('span', { class: 'name' }), h('div', { class: 'sub-line' }));
          return tr;
        }, (tr, f) => {
          const c = tr.children;
          setText(c[0].firstChild, f.name);
          setText(c[0].lastChild, f.protocol);
          setText(c[1], f.addr || '—');
          setText(c[2], int(f.sequences_in));
          setText(c[3], int(f.sequences_out));
          setText(c[4], bytes(f.bytes_in));
          setText(c[5], bytes(f.bytes_out));
          setText(c[6], int(f.dropped));
          setText(c[7], int(f.connections));
        });
      },
    };
  }

  // ---- Hosts page: the STEP bus ----
  // Metric STEPs ("kind": "metric" in space) feed one card of charts per
  // host; every other STEP goes to the event feed. The page loads the
  // recent history from /api/v1/steps once and then follows
  // /api/v1/steps/stream; after a reconnect it loads what it missed.
  const HOST_WINDOW_MS = 5 * 60 * 1000; // the charts show the last 5 minutes
  const HOST_POINTS = 900;              // at most per series
  const FEED_MAX = 200;
  const QUIET_MS = 30000;               // a host silent this long is marked quiet
  const METRIC_TYPES = 'system.cpu,system.memory,system.disk,system.diskio,system.network,system.gpu,system.host,system.users,service.process';
  const LEVELS = ['warning', 'critical', 'recovered'];

  const H = {
    hosts: new Map(),  // hostname -> host model
    feed: [],          // non-metric STEPs, newest first
    es: null,
    status: '',        // of the stream: '', 'live', 'reconnecting', or an error
    last: 0,           // newest time.start seen, for the refill after a reconnect
    dirty: new Set(),  // hostnames changed since the last render
    feedDirty: true,
    loads: 0,          // refills done (tests)
  };
  S.hosts = H;

  function hostModel(name) {
    let m = H.hosts.get(name);
    if (!m) {
      m = { name, ip: '', last: 0, seen: 0, info: null, cpu: null, mem: null, users: null,
        series: new Map(), buckets: new Map(), disks: new Map(), gpus: new Map(), procs: new Map() };
      H.hosts.set(name, m);
    }
    return m;
  }
  // addPoint keeps a series sorted by time; a point at the same time
  // replaces the old one, so loading a STEP twice changes nothing.
  function addPoint(host, key, t, v) {
    if (typeof v !== 'number' || !isFinite(v) || !t) return;
    let a = host.series.get(key);
    if (!a) { a = []; host.series.set(key, a); }
    let i = a.length;
    while (i > 0 && a[i - 1][0] > t) i--;
    if (i > 0 && a[i - 1][0] === t) a[i - 1][1] = v;
    else a.splice(i, 0, [t, v]);
    const cut = now() - HOST_WINDOW_MS - 60000;
    while (a.length > HOST_POINTS || (a.length > 1 && a[0][0] < cut)) a.shift();
  }
  // aggregate sums the values of every instance (interface, device) that
  // reported at time t into the series key:0, key:1.
  function aggregate(host, key, t, inst, vals) {
    if (!t) return;
    let bk = host.buckets.get(key);
    if (!bk) { bk = new Map(); host.buckets.set(key, bk); }
    let b = bk.get(t);
    if (!b) {
      b = new Map();
      bk.set(t, b);
      if (bk.size > HOST_POINTS) bk.delete(bk.keys().next().value);
    }
    b.set(String(inst), vals);
    vals.forEach((_, j) => {
      let sum = 0;
      for (const v of b.values()) if (typeof v[j] === 'number' && isFinite(v[j])) sum += v[j];
      addPoint(host, key + ':' + j, t, sum);
    });
  }
  function ingestMetric(host, type, sp, t) {
    switch (type) {
      case 'system.cpu': addPoint(host, 'cpu', t, sp.cpu_percent); if (t >= (host.cpu ? host.cpu.t : 0)) host.cpu = { t, sp }; break;
      case 'system.memory':
        addPoint(host, 'mem', t, sp.memory_percent);
        addPoint(host, 'swap', t, sp.swap_total_bytes ? sp.swap_percent : undefined);
        if (t >= (host.mem ? host.mem.t : 0)) host.mem = { t, sp };
        break;
      case 'system.disk': {
        const m = String(sp.mountpoint || sp.device || '?');
        addPoint(host, 'disk\u0000' + m, t, sp.disk_percent);
        host.disks.set(m, sp);
        break;
      }
      case 'system.network':
        if (sp.interface !== 'lo') aggregate(host, 'net', t, sp.interface, [sp.rx_bytes_per_sec, sp.tx_bytes_per_sec]);
        break;
      case 'system.diskio': aggregate(host, 'io', t, sp.device, [sp.read_bytes_per_sec, sp.write_bytes_per_sec]); break;
      case 'system.gpu': {
        const g = String(sp.gpu_index !== undefined ? sp.gpu_index : sp.gpu_uuid || '?');
        addPoint(host, 'gpu\u0000' + g, t, sp.gpu_percent);
        addPoint(host, 'gpumem\u0000' + g, t, sp.gpu_memory_percent);
        host.gpus.set(g, sp);
        break;
      }
      case 'system.host': host.info = sp; break;
      case 'system.users': host.users = sp; break;
      case 'service.process': if (sp.service !== undefined) host.procs.set(String(sp.service), { t, sp }); break;
    }
  }
  function stepLevel(st) {
    const l = st.space && st.space.level;
    return typeof l === 'string' && l ? l : 'info';
  }
  function feedAdd(st) {
    const f = H.feed;
    if (f.some((x) => x.id === st.id)) return;
    const t = st.time.start;
    let i = 0;
    while (i < f.length && f[i].time.start > t) i++;
    if (i >= FEED_MAX) return;
    f.splice(i, 0, st);
    if (f.length > FEED_MAX) f.length = FEED_MAX;
    H.feedDirty = true;
  }
  function ingestStep(st) {
    if (!st || !st.event || !st.time) return;
    const sp = st.space || {};
    const t = st.time.start || 0;
    const host = hostModel(typeof sp.hostname === 'string' ? sp.hostname : '');
    if (sp.ip) host.ip = sp.ip;
    if (t > host.last) host.last = t;
    if (t > H.last) H.last = t;
    if (sp.kind === 'metric') ingestMetric(host, st.event.type, sp, t);
    else feedAdd(st);
    H.dirty.add(host.name);
  }

  // loadSteps fills the model from the history: the hosts, the metrics of
  // the chart window (or since the newest STEP seen, after a reconnect) and
  // the latest events.
  async function loadSteps() {
    const since = H.last ? H.last - 5000 : now() - HOST_WINDOW_MS;
    try {
      const [hosts, metrics, events] = await Promise.all([
        getJSON('/api/v1/steps/hosts'),
        getJSON('/api/v1/steps?limit=10000&type=' + encodeURIComponent(METRIC_TYPES) + '&since=' + Math.floor(since)),
        getJSON('/api/v1/steps?kind=event&limit=' + FEED_MAX),
      ]);
      for (const hs of hosts.hosts) {
        const m = hostModel(hs.hostname);
        if (hs.ip) m.ip = hs.ip;
        m.seen = tms(hs.last_seen);
        for (const st of hs.latest || []) ingestStep(st);
        H.dirty.add(m.name);
      }
      for (const st of metrics.steps) ingestStep(st);
      for (const st of events.steps) ingestStep(st);
      H.loads++;
      if (H.status !== 'live') H.status = 'live';
    } catch (e) {
      H.status = e.status === 503 ? 'absent' : 'error: ' + e.message;
    }
    H.feedDirty = true;
    schedule();
  }
  function openSteps() {
    closeSteps();
    const es = new EventSource('/api/v1/steps/stream');
    H.es = es;
    es.addEventListener('hello', () => { H.status = 'live'; loadSteps(); });
    es.addEventListener('step', (e) => { ingestStep(JSON.parse(e.data)); schedule(); });
    es.onerror = () => {
      if (H.es !== es) return;
      H.status = 'reconnecting';
      if (es.readyState === EventSource.CLOSED) {
        // Refused (the bus went away, the daemon restarts): try again.
        setTimeout(() => { if (H.es === es) openSteps(); }, 3000);
      }
      schedule();
    };
  }
  function closeSteps() {
    if (H.es) H.es.close();
    H.es = null;
  }

  // ---- charts ----
  const CW = 300, CH = 64; // the chart's viewBox; it stretches to its box
  function rate(n) {
    if (!isFinite(n)) return '—';
    const u = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (n < 10 && i > 0 ? n.toFixed(1) : Math.round(n)) + ' ' + u[i];
  }
  const pct = (v) => (typeof v === 'number' && isFinite(v) ? (v < 10 ? v.toFixed(1) : Math.round(v)) + ' %' : '—');
  const lastOf = (a) => (a && a.length ? a[a.length - 1][1] : undefined);
  // niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function makeChart(key) {
    const svg = s('svg', { class: 'chart-svg', viewBox: `0 0 ${CW} ${CH}`, preserveAspectRatio: 'none', role: 'img' });
    for (const f of [0.25, 0.5, 0.75]) svg.append(s('line', { class: 'grid', x1: 0, x2: CW, y1: CH * f, y2: CH * f }));
    const title = s('title');
    svg.append(title);
    const fig = h('figure', { class: 'chart', 'data-chart': key },
      h('figcaption', null, h('span', { class: 'ct' }), h('span', { class: 'cv num' })), svg, h('div', { class: 'legend' }));
    return { fig, svg, title, lines: new Map() };
  }
  // drawChart draws spec = {title, value, max (fixed) or auto, fmt,
  // series: [{key, label, pts}]} into a chart made by makeChart.
  function drawChart(c, spec, t0, t1) {
    const fig = c.fig;
    setText(fig.querySelector('.ct'), spec.title);
    setText(fig.querySelector('.cv'), spec.value);
    fig.querySelector('.cv').title = spec.value;
    const span = t1 - t0;
    let max = spec.max;
    if (!max) {
      let m = 0;
      for (const sr of spec.series) for (const [t, v] of sr.pts) if (t >= t0 && v > m) m = v;
      max = niceMax(m * 1.1);
    }
    const y = (v) => (CH - 1 - (Math.min(Math.max(v, 0), max) / max) * (CH - 3)).toFixed(1);
    const x = (t) => (((t - t0) / span) * CW).toFixed(1);
    const keep = new Set();
    spec.series.forEach((sr, i) => {
      keep.add(sr.key);
      let l = c.lines.get(sr.key);
      if (!l) {
        l = { line: s('polyline', { class: 's' }), dot: s('line', { class: 'dot' }) };
        c.lines.set(sr.key, l);
        c.svg.append(l.line, l.dot);
      }
      const cls = 'c' + (i % 6);
      l.line.setAttribute('class', 's ' + cls);
      l.dot.setAttribute('class', 'dot ' + cls);
      // One point before the window keeps the line reaching its left edge.
      let from = 0;
      while (from < sr.pts.length - 1 && sr.pts[from + 1][0] < t0) from++;
      const pts = sr.pts.slice(from);
      l.line.setAttribute('points', pts.map(([t, v]) => x(t) + ',' + y(v)).join(' '));
      const lp = pts[pts.length - 1];
      const on = lp && lp[0] >= t0;
      for (const [k, v] of [['x1', on ? x(lp[0]) : -10], ['x2', on ? x(lp[0]) : -10], ['y1', on ? y(lp[1]) : -10], ['y2', on ? y(lp[1]) : -10]]) l.dot.setAttribute(k, v);
    });
    for (const [k, l] of c.lines) {
      if (!keep.has(k)) { l.line.remove(); l.dot.remove(); c.lines.delete(k); }
    }
    const scale = spec.max ? '0–' + spec.fmt(spec.max) : 'scale 0–' + spec.fmt(max);
    c.title.textContent = spec.title + ', last ' + dur(span) + ' (' + scale + ')';
    const legend = fig.querySelector('.legend');
    if (spec.series.length > 1) {
      legend.hidden = false;
      legend.replaceChildren(...spec.series.map((sr, i) =>
        h('span', { class: 'key c' + (i % 6) }, h('span', { class: 'sw' }), h('span', { class: 'kl' }, sr.label + ' ' + spec.fmt(lastOf(sr.pts))))));
    } else {
      legend.hidden = true;
    }
  }
  // chartSpecs lists the charts a host has data for.
  function chartSpecs(m) {
    const out = [];
    const ser = (key) => m.series.get(key) || [];
    const byPrefix = (prefix) => [...m.series.keys()].filter((k) => k.startsWith(prefix)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (m.series.has('cpu')) {
      const c = m.cpu && m.cpu.sp;
      const extra = c && typeof c.load1 === 'number' ? ' · load ' + c.load1.toFixed(2) : '';
      out.push({ key: 'cpu', title: 'CPU', value: pct(lastOf(ser('cpu'))) + extra, max: 100, fmt: pct, series: [{ key: 'cpu', label: 'CPU', pts: ser('cpu') }] });
    }
    if (m.series.has('mem')) {
      const series = [{ key: 'mem', label: 'memory', pts: ser('mem') }];
      if (m.series.has('swap')) series.push({ key: 'swap', label: 'swap', pts: ser('swap') });
      const total = m.mem && m.mem.sp.memory_total_bytes;
      out.push({ key: 'mem', title: 'Memory', value: pct(lastOf(ser('mem'))) + (total ? ' of ' + bytes(total) : ''), max: 100, fmt: pct, series });
    }
    const disks = byPrefix('disk\u0000');
    if (disks.length) {
      const series = disks.map((k) => ({ key: k, label: k.slice(5), pts: ser(k) }));
      const top = Math.max(...series.map((sr) => lastOf(sr.pts) || 0));
      out.push({ key: 'disk', title: 'Disk', value: 'fullest ' + pct(top), max: 100, fmt: pct, series });
    }
    if (m.series.has('net:0')) {
      out.push({ key: 'net', title: 'Network', value: rate((lastOf(ser('net:0')) || 0) + (lastOf(ser('net:1')) || 0)), fmt: rate,
        series: [{ key: 'net:0', label: 'rx', pts: ser('net:0') }, { key: 'net:1', label: 'tx', pts: ser('net:1') }] });
    }
    if (m.series.has('io:0')) {
      out.push({ key: 'io', title: 'Disk I/O', value: rate((lastOf(ser('io:0')) || 0) + (lastOf(ser('io:1')) || 0)), fmt: rate,
        series: [{ key: 'io:0', label: 'read', pts: ser('io:0') }, { key: 'io:1', label: 'write', pts: ser('io:1') }] });
    }
    const gpus = byPrefix('gpu\u0000');
    if (gpus.length) {
      const label = (k) => 'GPU ' + k.slice(4);
      const util = gpus.map((k) => ({ key: k, label: label(k), pts: ser(k) }));
      const mem = gpus.map((k) => ({ key: 'gpumem' + k.slice(3), label: label(k), pts: ser('gpumem' + k.slice(3)) }));
      const avg = (list) => list.reduce((a, sr) => a + (lastOf(sr.pts) || 0), 0) / list.length;
      out.push({ key: 'gpu', title: gpus.length > 1 ? gpus.length + ' GPUs' : 'GPU', value: (gpus.length > 1 ? 'mean ' : '') + pct(avg(util)), max: 100, fmt: pct, series: util });
      out.push({ key: 'gpumem', title: 'GPU memory', value: (gpus.length > 1 ? 'mean ' : '') + pct(avg(mem)), max: 100, fmt: pct, series: mem });
    }
    return out;
  }

  function hostLine(m) {
    const parts = [];
    if (m.ip) parts.push(m.ip);
    const i = m.info;
    if (i) {
      const os = [i.platform || i.os, i.platform_version].filter(Boolean).join(' ');
      if (os) parts.push(os);
      if (i.kernel) parts.push('kernel ' + i.kernel);
      if (typeof i.uptime_seconds === 'number') parts.push('up ' + dur(i.uptime_seconds * 1000));
    }
    const c = m.cpu && m.cpu.sp;
    if (c && c.cores_logical) parts.push(c.cores_logical + ' CPUs');
    if (m.users && typeof m.users.users === 'number') parts.push(m.users.users + (m.users.users === 1 ? ' user' : ' users'));
    return parts.join(' · ');
  }

  function makeHostCard(m) {
    const card = h('section', { class: 'panel host-card', 'data-host': m.name },
      h('div', { class: 'host-head' },
        h('div', { class: 'host-title' }, h('span', { class: 'hname' }), h('span', { class: 'badge hstate' })),
        h('div', { class: 'sub-line hinfo' })),
      h('div', { class: 'charts' }),
      h('div', { class: 'procs' }));
    card._charts = new Map();
    return card;
  }
  function fillHostCard(card, m) {
    setText(card.querySelector('.hname'), m.name || '(no hostname)');
    const lastAt = Math.max(m.last, m.seen);
    const quiet = now() - lastAt > QUIET_MS;
    const b = card.querySelector('.hstate');
    setClass(b, 'badge hstate ' + (quiet ? 's-stopped' : 's-running'));
    setText(b, quiet ? 'quiet ' + (lastAt ? ago(new Date(lastAt).toISOString()) : '') : 'live');
    setText(card.querySelector('.hinfo'), hostLine(m));
    const specs = chartSpecs(m);
    // The charts span the last HOST_WINDOW_MS, or less (a minute at
    // least) while the host's data is younger.
    const t1 = now();
    let t0 = t1 - HOST_WINDOW_MS, first = Infinity;
    for (const a of m.series.values()) if (a.length && a[0][0] < first) first = a[0][0];
    if (first > t0) t0 = Math.min(first, t1 - 60000);
    const box = card.querySelector('.charts');
    const keep = new Set();
    const figs = [];
    for (const spec of specs) {
      keep.add(spec.key);
      let c = card._charts.get(spec.key);
      if (!c) { c = makeChart(spec.key); card._charts.set(spec.key, c); }
      drawChart(c, spec, t0, t1);
      figs.push(c.fig);
    }
    for (const [k, c] of card._charts) if (!keep.has(k)) { c.fig.remove(); card._charts.delete(k); }
    figs.forEach((f, i) => { if (box.children[i] !== f) box.insertBefore(f, box.children[i] || null); });
    if (!specs.length) {
      if (!box.querySelector('.empty')) box.replaceChildren(h('div', { class: 'empty small' }, 'No metrics from this host yet.'));
    } else {
      const e = box.querySelector('.empty');
      if (e) e.remove();
    }
    // Monitored services' processes, newest value each.
    const procs = [...m.procs.values()].filter((p) => now() - p.t < HOST_WINDOW_MS).sort((a, b) => String(a.sp.service).localeCompare(String(b.sp.service)));
    const pbox = card.querySelector('.procs');
    pbox.hidden = procs.length === 0;
    const sig = JSON.stringify(procs.map((p) => [p.sp.service, p.sp.pid, p.sp.cpu_percent, p.sp.rss_bytes, p.sp.threads]));
    if (pbox.dataset.sig !== sig) {
      pbox.dataset.sig = sig;
      pbox.replaceChildren(...procs.map((p) => h('div', { class: 'proc' },
        h('span', { class: 'pname' }, String(p.sp.service)),
        h('span', { class: 'num muted' }, 'pid ' + p.sp.pid + ' · ' + pct(p.sp.cpu_percent) + ' CPU · ' + (typeof p.sp.rss_bytes === 'number' ? bytes(p.sp.rss_bytes) : '—') + (p.sp.threads ? ' · ' + p.sp.threads + ' threads' : '')))));
    }
  }

  function makeEvent() {
    return h('li', { class: 'ev' },
      h('div', { class: 'ev-top' }, h('span', { class: 'badge lvl' }), h('span', { class: 'ev-type mono' }), h('span', { class: 'ev-host' }), h('time', { class: 'ev-time num' })),
      h('div', { class: 'ev-desc' }));
  }
  function fillEvent(li, st) {
    const lvl = stepLevel(st);
    const cls = LEVELS.includes(lvl) ? lvl : 'info';
    if (!li.classList.contains('lvl-' + cls)) setClass(li, 'ev lvl-' + cls);
    const b = li.querySelector('.lvl');
    setClass(b, 'badge lvl lvl-' + cls);
    setText(b, lvl);
    setText(li.querySelector('.ev-type'), st.event.type);
    setText(li.querySelector('.ev-host'), (st.space && st.space.hostname) || '');
    const tm = li.querySelector('.ev-time');
    const iso = new Date(st.time.start).toISOString();
    setText(tm, when(iso).slice(11));
    tm.setAttribute('datetime', iso);
    tm.title = when(iso);
    setText(li.querySelector('.ev-desc'), st.event.description || '');
  }

  function hostsPage(main) {
    main.append(h('h1', null, 'Hosts'));
    if (S.components && !S.components.steps) {
      main.append(notRunning('The STEP bus'));
      return { name: 'hosts', update() {} };
    }
    const count = h('span', { class: 'muted small' });
    const status = h('span', { class: 'muted small hstream' });
    main.firstChild.append(count);
    const search = h('input', { type: 'search', placeholder: 'Filter hosts', 'aria-label': 'Filter hosts', value: H.filter || '' });
    search.addEventListener('input', () => { H.filter = search.value; H.dirty.add('*'); schedule(); });
    const alertsOnly = h('input', { type: 'checkbox', id: 'alerts-only' });
    alertsOnly.checked = !!H.alertsOnly;
    alertsOnly.addEventListener('change', () => { H.alertsOnly = alertsOnly.checked; H.feedDirty = true; schedule(); });
    const grid = h('div', { class: 'host-grid', id: 'hosts' });
    const empty = h('div', { class: 'notice' }, 'No host has published yet. Run stepmon on a host, or POST a STEP to /api/v1/step.');
    const feed = h('ul', { class: 'feed', id: 'feed' });
    const feedEmpty = h('div', { class: 'empty' }, 'No events yet: alerts, process, file and login events show here, newest first.');
    const feedCount = h('span', { class: 'count' });
    main.append(
      h('div', { class: 'toolbar' }, search, status),
      h('div', { class: 'hosts-layout' },
        h('div', { class: 'hosts-main' }, grid, empty),
        h('aside', { class: 'panel feed-panel' },
          h('div', { class: 'feed-head' }, h('h2', null, 'Events', feedCount),
            h('label', { class: 'small muted', for: 'alerts-only' }, alertsOnly, ' alerts only')),
          feed, feedEmpty)));
    openSteps();
    let lastFull = 0;
    return {
      name: 'hosts',
      leave: closeSteps,
      update() {
        setText(status, H.status === 'live' ? 'live stream' : H.status === 'absent' ? 'the STEP bus is not running' : H.status || 'connecting…');
        setClass(status, 'small hstream ' + (H.status === 'live' ? 'on' : 'muted'));
        const q = (H.filter || '').trim().toLowerCase();
        const all = [...H.hosts.values()];
        const shown = all.filter((m) => !q || m.name.toLowerCase().includes(q) || m.ip.includes(q)).sort((a, b) => a.name.localeCompare(b.name));
        setText(count, q ? shown.length + ' of ' + all.length : String(all.length));
        empty.hidden = shown.length > 0;
        setText(empty, all.length ? 'No host matches the filter.' : 'No host has published yet. Run stepmon on a host, or POST a STEP to /api/v1/step.');
        // Charts move with the clock: all cards every 2 s, changed ones at once.
        const full = Date.now() - lastFull > 2000 || H.dirty.has('*');
        if (full) lastFull = Date.now();
        syncRows(grid, shown, (m) => 'h:' + m.name, makeHostCard, (card, m) => {
          if (full || H.dirty.has(m.name) || !card._charts.size) fillHostCard(card, m);
        });
        H.dirty.clear();
        if (H.feedDirty || full) {
          H.feedDirty = false;
          const evs = H.alertsOnly ? H.feed.filter((st) => LEVELS.includes(stepLevel(st))) : H.feed;
          const had = new Set([...feed.children].map((li) => li.dataset.key));
          syncRows(feed, evs, (st) => st.id, makeEvent, (li, st) => {
            fillEvent(li, st);
            // Alerts stand out by their colour; other news flashes.
            if (!had.has(st.id) && had.size && !li.matches('.lvl-warning, .lvl-critical')) flash(li);
          });
          setText(feedCount, String(evs.length));
          feedEmpty.hidden = evs.length > 0;
        }
      },
    };
  }

  // ---- routing ----
  function route() {
    const p = location.pathname.replace(/\/+$/, '') || '/';
    const main = document.getElementById('view');
    if (S.view && S.view.leave) S.view.leave();
    main.replaceChildren();
    let nav = 'services';
    let m;
    if (p === '/' || p === '/services') S.view = servicesPage(main);
    else if ((m = /^\/services\/(\d+)$/.exec(p))) S.view = servicePage(main, Number(m[1]));
    else if (p === '/history') { nav = 'history'; S.view = historyPage(main); }
    else if (p === '/groups') { nav = 'groups'; S.view = groupsPage(main); }
    else if (p === '/names') { nav = 'names'; S.view = namesPage(main); }
    else if (p === '/hosts') { nav = 'hosts'; S.view = hostsPage(main); }
    else if (p === '/daemon') { nav = 'daemon'; S.view = daemonPage(main); }
    else {
      nav = '';
      main.append(h('div', { class: 'notfound' }, h('h1', null, '404'), h('p', null, 'There is no page at ', h('code', null, location.pathname), '.')));
      S.view = { name: 'notfound', update() {} };
    }
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === nav);
    const titles = { services: 'Services', service: 'Service', history: 'History', groups: 'Service groups', names: 'Names', hosts: 'Hosts', daemon: 'Daemon', notfound: 'Not found' };
    document.title = (titles[S.view.name] || 'STK') + ' · STK status';
    S.view.update();
  }
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const u = new URL(a.href, location.href);
    if (u.origin !== location.origin || u.pathname.startsWith('/api/') || u.pathname === '/metrics') return;
    e.preventDefault();
    if (u.pathname !== location.pathname) history.pushState(null, '', u.pathname);
    route();
    window.scrollTo(0, 0);
  });
  window.addEventListener('popstate', route);

  function footer() {
    const st = S.stats;
    if (!st) return;
    const f = document.getElementById('foot');
    const txt = 'stkd ' + (st.daemon.version || '') + ' · ';
    if (!f.firstChild) {
      f.append(h('span'), h('a', { href: '/api/v1/stats' }, 'JSON API'), ' · ', h('a', { href: '/metrics' }, 'metrics'));
    }
    setText(f.firstChild, txt);
  }

  async function start() {
    live('', 'Connecting');
    for (;;) {
      try {
        S.stats = await getJSON('/api/v1/stats');
        S.components = S.stats.components;
        S.offset = tms(S.stats.now) - Date.now();
        if (S.components.monitor) loadSnapshot(await getJSON('/api/v1/snapshot'));
        break;
      } catch (e) {
        live('off', 'Offline');
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    footer();
    route();
    connect();
    setInterval(() => { footer(); schedule(); }, 1000); // ages and uptimes
  }
  start();
})();
