/* Trellis site tracking: one <script> tag, no third-party requests.
 * <script async src="https://HOST/hooks/connectors/site-tracking/snippet.js" data-key="WRITE_KEY"></script>
 * Optional: data-consent="required" waits for trellis('consent', true); Do-Not-Track is honoured.
 * API: trellis('track', name, props), trellis('identify', userId, traits), trellis('consent', bool). */
(function (w, d) {
  var s = d.currentScript, n = w.navigator;
  if (!s || w.trellis && w.trellis.loaded) return;
  var key = s.getAttribute('data-key'), base = s.src.replace(/\/snippet\.js(\?.*)?$/, '');
  if (!key || n.doNotTrack == '1' || w.doNotTrack == '1') return;
  var queue = [], consent = s.getAttribute('data-consent') != 'required' && w.trellisConsent !== false;
  function store(k, v) { try { if (v === undefined) return localStorage.getItem(k); localStorage.setItem(k, v); } catch (e) {} return v; }
  function id() { return w.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2); }
  var aid = null;
  var q = new URLSearchParams(location.search), utm = {}, keys = ['source', 'medium', 'campaign', 'term', 'content'];
  keys.forEach(function (k) { var v = q.get('utm_' + k); if (v) utm[k == 'campaign' ? 'name' : k] = v; });
  try { if (Object.keys(utm).length) sessionStorage.setItem('trellis_utm', JSON.stringify(utm)); else utm = JSON.parse(sessionStorage.getItem('trellis_utm') || '{}'); } catch (e) {}
  function page() { return { url: location.href, path: location.pathname, referrer: d.referrer, title: d.title, search: location.search }; }
  // Nothing is stored or sent before consent: calls wait in memory, dated when made.
  function send(type, body, beacon) {
    body.timestamp = body.timestamp || new Date().toISOString();
    if (!consent) { queue.push([type, body]); return; }
    aid = aid || store('trellis_aid') || store('trellis_aid', id());
    var uid = store('trellis_uid');
    body.type = type; body.writeKey = key; body.anonymousId = aid; body.messageId = id();
    body.sentAt = new Date().toISOString();
    if (body.userId) store('trellis_uid', body.userId); else if (uid) body.userId = uid;
    body.context = { page: page(), campaign: utm, userAgent: n.userAgent, library: { name: 'trellis-snippet', version: '1' } };
    var url = base + '/v1/' + type, text = JSON.stringify(body);
    if (beacon && n.sendBeacon) n.sendBeacon(url, new Blob([text], { type: 'text/plain' }));
    else w.fetch(url, { method: 'POST', body: text, keepalive: true, headers: { 'Content-Type': 'text/plain' } }).catch(function () {});
  }
  function identify(userId, traits) { var b = { traits: traits || {} }; if (userId) b.userId = String(userId); send('identify', b); }
  var api = function (cmd, a, b) {
    if (cmd == 'track') send('track', { event: a, properties: b || {} });
    else if (cmd == 'identify') identify(a, b);
    else if (cmd == 'consent') { consent = !!a; if (consent) queue.splice(0).forEach(function (x) { send(x[0], x[1]); }); }
  };
  var pending = w.trellis && w.trellis.q || [];
  w.trellis = api; api.loaded = true;
  send('page', { properties: page() });
  pending.forEach(function (args) { api.apply(null, args); });
  // Arrived from a WeCom / WeChat link that names the visitor.
  var ext = q.get('external_userid') || q.get('trellis_ext');
  if (ext) identify(null, { external_contact_id: ext });
  // Downloads (whitepapers and other documents) and links to other sites.
  d.addEventListener('click', function (e) {
    var a = e.target && e.target.closest && e.target.closest('a[href]');
    if (!a) return;
    var href = a.href, file = /\.(pdf|docx?|pptx?|xlsx?|zip|rar|7z)(\?|#|$)/i.test(href);
    if (file || a.hasAttribute('download')) send('track', { event: 'download', properties: { url: href, file: href.split('/').pop().split(/[?#]/)[0], text: (a.textContent || '').trim().slice(0, 200) } }, true);
    else if (a.host && a.host != location.host) send('track', { event: 'outbound_click', properties: { url: href, text: (a.textContent || '').trim().slice(0, 200) } }, true);
  }, true);
  // A filled-in form names the visitor.
  d.addEventListener('submit', function (e) {
    var f = e.target, traits = {}, found = false;
    if (!f || !f.elements) return;
    Array.prototype.forEach.call(f.elements, function (el) {
      var nm = (el.name || el.id || '').toLowerCase(), v = (el.value || '').trim();
      if (!v || /^(password|checkbox|radio|hidden|submit|button|file)$/.test(el.type)) return;
      if ((el.type == 'email' || /e-?mail|邮箱/.test(nm)) && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v)) { traits.email = v.toLowerCase(); found = true; }
      else if ((el.type == 'tel' || /phone|mobile|^tel$|手机|电话/.test(nm)) && v.replace(/\D/g, '').length >= 7) { traits.phone = v; found = true; }
      else if (/^(name|full_?name|姓名)$/.test(nm)) traits.name = v;
      else if (/company|公司/.test(nm)) traits.company = v;
    });
    if (found) identify(null, traits);
  }, true);
  // Time the page was visible, sent as the visitor leaves.
  var shown = d.visibilityState == 'visible' ? Date.now() : 0, seen = 0, left = false;
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState == 'visible') shown = Date.now(); else if (shown) { seen += Date.now() - shown; shown = 0; }
  });
  w.addEventListener('pagehide', function () {
    if (left) return; left = true;
    if (shown) seen += Date.now() - shown;
    send('track', { event: 'page_leave', properties: { seconds: Math.round(seen / 1000), path: location.pathname, url: location.href } }, true);
  });
})(window, document);
