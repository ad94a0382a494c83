extension WebAssets {
    /// The page's script: log-in, the three views, live updates by server-sent events
    /// (`/api/events`), controls that post commands. Every text from the bridge is set with
    /// `textContent`, never parsed as HTML.
    static let script = #"""
        'use strict';
        (() => {
          const state = {
            csrf: '', user: '', home: null, health: null, healthAt: 0, pairing: null, pairingAt: 0,
            source: null, outcomes: [], view: 'home', revoking: null,
          };
          const $ = (id) => document.getElementById(id);

          function h(tag, props, ...children) {
            const node = document.createElement(tag);
            for (const [key, value] of Object.entries(props || {})) {
              if (value === undefined || value === null || value === false) continue;
              if (key === 'class') node.className = value;
              else if (key === 'data') for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
              else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
              else if (key === 'value') node.value = value;
              else node.setAttribute(key, value === true ? '' : String(value));
            }
            for (const child of children.flat(2)) {
              if (child === undefined || child === null || child === false) continue;
              node.append(child instanceof Node ? child : String(child));
            }
            return node;
          }

          function toast(text, isError) {
            const node = $('toast');
            node.textContent = text;
            node.className = isError ? 'toast error' : 'toast';
            node.hidden = false;
            clearTimeout(toast.timer);
            toast.timer = setTimeout(() => { node.hidden = true; }, 6000);
          }

          function ago(seconds) {
            if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return 'never';
            if (seconds < 2) return 'just now';
            if (seconds < 90) return Math.round(seconds) + ' s ago';
            if (seconds < 5400) return Math.round(seconds / 60) + ' min ago';
            return Math.round(seconds / 3600) + ' h ago';
          }

          function duration(seconds) {
            const s = Math.max(0, Math.floor(seconds));
            const d = Math.floor(s / 86400), hours = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
            if (d) return d + ' d ' + hours + ' h';
            if (hours) return hours + ' h ' + m + ' min';
            if (m) return m + ' min ' + (s % 60) + ' s';
            return (s % 60) + ' s';
          }

          async function api(path, body) {
            const init = { method: body === undefined ? 'GET' : 'POST', credentials: 'same-origin', cache: 'no-store', headers: {} };
            if (body !== undefined) {
              init.headers['Content-Type'] = 'application/json';
              init.headers['X-CSRF-Token'] = state.csrf;
              init.body = JSON.stringify(body);
            }
            const response = await fetch(path, init);
            let data = {};
            try { data = await response.json(); } catch (e) { data = {}; }
            if (response.status === 401 && path !== '/api/login') {
              start();
              throw new Error(data.error || 'log in first');
            }
            if (!response.ok) throw new Error(data.error || ('HTTP ' + response.status));
            return data;
          }

          function showOnly(...ids) {
            for (const id of ['setup', 'login', 'home', 'pairing', 'health']) $(id).hidden = !ids.includes(id);
          }

          // MARK: Session

          async function start() {
            closeStream();
            state.csrf = '';
            $('nav').hidden = true;
            let session;
            try {
              const response = await fetch('/api/session', { cache: 'no-store', credentials: 'same-origin' });
              session = await response.json();
            } catch (e) {
              problem('The bridge does not answer. Reload the page once it runs.');
              return;
            }
            problem('');
            if (session.state === 'setup') {
              $('setup-command').textContent = session.command;
              $('setup-problem').textContent = session.problem || '';
              showOnly('setup');
              return;
            }
            if (session.state === 'login') {
              state.csrf = session.login_token;
              showOnly('login');
              $('login-password').focus();
              return;
            }
            ready(session);
          }

          function ready(session) {
            state.csrf = session.csrf;
            state.user = session.user;
            $('user').textContent = session.user;
            $('nav').hidden = false;
            openStream();
            route();
          }

          function problem(text) {
            $('problem').textContent = text;
            $('problem').hidden = !text;
          }

          $('login-form').addEventListener('submit', async (event) => {
            event.preventDefault();
            const form = event.target;
            $('login-error').textContent = '';
            try {
              const session = await api('/api/login', { user: form.user.value, password: form.password.value });
              form.password.value = '';
              ready(session);
            } catch (error) {
              form.password.value = '';
              $('login-error').textContent = error.message;
              if (!state.csrf) start();
            }
          });

          $('logout').addEventListener('click', async () => {
            try { await api('/api/logout', {}); } catch (e) { /* logged out anyway */ }
            start();
          });

          function route() {
            const wanted = (location.hash || '#home').slice(1);
            state.view = ['home', 'pairing', 'health'].includes(wanted) ? wanted : 'home';
            for (const link of document.querySelectorAll('#nav a')) {
              link.classList.toggle('current', link.dataset.view === state.view);
            }
            if (!state.csrf || $('nav').hidden) return;
            showOnly(state.view);
            if (state.view === 'pairing') loadPairing();
            renderHome();
            renderHealth();
          }
          window.addEventListener('hashchange', route);

          // MARK: Live updates

          function openStream() {
            closeStream();
            const source = new EventSource('/api/events');
            state.source = source;
            source.addEventListener('home', (event) => {
              state.home = JSON.parse(event.data);
              renderHome();
            });
            source.addEventListener('items', (event) => {
              for (const item of JSON.parse(event.data).items) updateItem(item);
            });
            source.addEventListener('health', (event) => {
              state.health = JSON.parse(event.data);
              state.healthAt = Date.now();
              renderHealth();
              renderGatewayHeads();
            });
            source.addEventListener('pairing', (event) => pairingEvent(JSON.parse(event.data)));
            source.addEventListener('command_error', (event) => {
              const data = JSON.parse(event.data);
              toast(data.topic + ': ' + data.error, true);
            });
            source.onopen = () => { $('live').classList.add('on'); };
            source.onerror = () => {
              $('live').classList.remove('on');
              if (source.readyState === EventSource.CLOSED && state.source === source) {
                state.source = null;
                setTimeout(start, 500);
              }
            };
          }

          function closeStream() {
            if (state.source) state.source.close();
            state.source = null;
            $('live').classList.remove('on');
          }

          // MARK: Home

          function gatewayHealth(name) {
            const gateways = (state.health && state.health.gateways) || {};
            return gateways[name];
          }

          function gatewayMeta(gateway) {
            const health = gatewayHealth(gateway.name) || gateway;
            const parts = [];
            if (health.firmware) parts.push('firmware ' + health.firmware);
            if (health.address) parts.push(health.address);
            const since = health.seconds_since_contact;
            const elapsed = health === gateway ? 0 : (Date.now() - state.healthAt) / 1000;
            parts.push('last contact ' + (since === undefined ? 'never' : ago(since + elapsed)));
            parts.push(gateway.devices.length + ' devices, ' + gateway.groups.length + ' rooms');
            return parts.join(' · ');
          }

          function pill(value) {
            const labels = { online: 'online', offline: 'offline', pairing_needed: 'pair again' };
            return h('span', { class: 'pill ' + value, data: { state: value } }, labels[value] || value);
          }

          function renderHome() {
            const root = $('home');
            if (root.hidden) return;
            if (!state.home) {
              root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
              return;
            }
            root.replaceChildren(...state.home.gateways.map((gateway) => h('section', {
              class: 'gateway', data: { gateway: gateway.name },
            },
            h('div', { class: 'gateway-head' },
              h('h2', {}, state.home.several_gateways ? 'Gateway ' + gateway.name : 'Gateway'),
              pill((gatewayHealth(gateway.name) || gateway).state),
              h('p', { class: 'meta gateway-meta' }, gatewayMeta(gateway))),
            gateway.groups.length ? h('h3', {}, 'Rooms') : null,
            h('div', { class: 'cards' }, gateway.groups.map(card)),
            gateway.devices.length ? h('h3', {}, 'Devices') : null,
            h('div', { class: 'cards' }, gateway.devices.map(card)))));
          }

          function renderGatewayHeads() {
            if (!state.home) return;
            for (const gateway of state.home.gateways) {
              const section = document.querySelector('.gateway[data-gateway="' + CSS.escape(gateway.name) + '"]');
              if (!section) continue;
              const health = gatewayHealth(gateway.name);
              if (health) section.querySelector('.pill').replaceWith(pill(health.state));
              section.querySelector('.gateway-meta').textContent = gatewayMeta(gateway);
            }
          }

          function summary(item) {
            const s = item.state || {};
            if (!item.online) return 'offline';
            if ('position' in s) return s.position + ' % open';
            if (s.state === 'OFF') return 'off';
            if (s.state === 'ON') {
              const parts = ['on'];
              if ('brightness' in s) parts.push(Math.round(s.brightness / 254 * 100) + ' %');
              if ('color_temp_kelvin' in s) parts.push(s.color_temp_kelvin + ' K');
              return parts.join(', ');
            }
            if ('fan_mode' in s) return 'fan ' + s.fan_mode + ('pm25' in s ? ', PM2.5 ' + s.pm25 : '');
            if ('battery' in s) return 'battery ' + s.battery + ' %';
            return '–';
          }

          function card(item) {
            const s = item.state || {};
            return h('article', {
              class: 'card' + (item.online ? '' : ' offline'),
              data: {
                key: item.key, kind: item.kind, target: item.target || '', state: s.state || '',
                brightness: s.brightness ?? '', position: s.position ?? '', colorTemp: s.color_temp ?? '',
              },
            },
            h('header', {}, h('h4', {}, item.name), item.online ? null : pill('offline')),
            h('p', { class: 'summary' }, summary(item)),
            controls(item),
            h('p', { class: 'meta' }, item.kind === 'group'
              ? item.members.length + ' devices'
              : [item.type.replace('_', ' '), item.model].filter(Boolean).join(' · ')));
          }

          function controls(item) {
            const c = item.controls || {};
            const s = item.state || {};
            const disabled = !item.online || !item.target;
            const parts = [];
            if (c.switch) {
              const on = s.state === 'ON';
              parts.push(h('button', {
                type: 'button', class: 'switch' + (on ? ' on' : ''), 'aria-pressed': String(on), disabled,
                onclick: () => send(item, { state: on ? 'OFF' : 'ON' }),
              }, on ? 'On' : 'Off'));
            }
            if (c.brightness) {
              parts.push(slider(item, 'Brightness', 'brightness', 1, 254, s.brightness,
                (v) => ({ state: 'ON', brightness: v }), disabled));
            }
            if (c.color_temp) {
              parts.push(slider(item, 'Colour temperature (mired)', 'color_temp', c.color_temp[0], c.color_temp[1],
                s.color_temp, (v) => ({ state: 'ON', color_temp: v }), disabled));
            }
            if (c.position) {
              parts.push(slider(item, 'Position (% open)', 'position', 0, 100, s.position, (v) => ({ position: v }), disabled));
              parts.push(h('div', { class: 'buttons' },
                h('button', { type: 'button', disabled, onclick: () => send(item, { state: 'OPEN' }) }, 'Open'),
                h('button', { type: 'button', disabled, onclick: () => send(item, { state: 'CLOSE' }) }, 'Close')));
            }
            if (c.scenes && c.scenes.length) {
              parts.push(h('label', { class: 'control' }, h('span', {}, 'Scene'), h('select', {
                name: 'scene', disabled,
                onchange: (event) => {
                  if (event.target.value) send(item, { scene: event.target.value });
                  event.target.value = '';
                },
              }, h('option', { value: '' }, 'choose…'), c.scenes.map((scene) => h('option', { value: scene.id }, scene.name)))));
            }
            return parts.length ? h('div', { class: 'controls' }, parts) : null;
          }

          function slider(item, label, name, min, max, value, command, disabled) {
            const output = h('output', {}, value ?? '–');
            const input = h('input', {
              type: 'range', min, max, step: 1, value: value ?? min, name, disabled, 'aria-label': label,
              oninput: (event) => { output.textContent = event.target.value; },
              onchange: (event) => send(item, command(Number(event.target.value))),
            });
            return h('label', { class: 'control' }, h('span', {}, label), input, output);
          }

          async function send(item, command) {
            try {
              await api('/api/command', { target: item.target, command });
            } catch (error) {
              toast(item.name + ': ' + error.message, true);
            }
          }

          function updateItem(item) {
            if (state.home) {
              for (const gateway of state.home.gateways) {
                for (const list of [gateway.devices, gateway.groups]) {
                  const index = list.findIndex((old) => old.key === item.key);
                  if (index >= 0) list[index] = item;
                }
              }
            }
            const old = document.querySelector('.card[data-key="' + CSS.escape(item.key) + '"]');
            if (!old) return;
            const active = document.activeElement;
            if (old.contains(active) && active.type === 'range') {
              // Do not pull a slider away from a finger: update the words only.
              old.querySelector('.summary').textContent = summary(item);
              return;
            }
            old.replaceWith(card(item));
          }

          // MARK: Pairing

          async function loadPairing() {
            try {
              state.pairing = await api('/api/pairing');
              state.pairingAt = Date.now();
            } catch (error) {
              toast(error.message, true);
              return;
            }
            const pending = (state.pairing.pending || []).length;
            $('pending-badge').textContent = String(pending);
            $('pending-badge').hidden = pending === 0;
            renderPairing();
          }

          function pairingEvent(event) {
            const d = event.data || {};
            const texts = {
              requested: () => (d.name || 'A device') + (String(d.name).includes(d.ip) ? '' : ' at ' + d.ip) + ' asks to pair',
              allowed: () => 'Allowed ' + d.name + ' as ' + d.device + '; it has ' + d.seconds_to_fetch + ' s to collect its credentials',
              fetched: () => d.name + ' collected its credentials',
              connected: () => d.name + ' connected to the broker',
              denied: () => 'Denied ' + d.name,
              expired: () => d.unfetched ? d.name + ' did not collect its credentials in time' : 'The request of ' + d.name + ' expired',
              revoked: () => 'Revoked ' + d.device + ' (' + d.name + ')',
            };
            if (texts[event.event]) {
              const text = texts[event.event]();
              state.outcomes.unshift({ time: new Date(), text, kind: event.event });
              state.outcomes.length = Math.min(state.outcomes.length, 20);
              if (['requested', 'fetched', 'connected'].includes(event.event)) toast(text);
            }
            if (event.event !== 'snapshot') loadPairing();
          }

          function decide(command, body) {
            return api('/api/pairing/' + command, body).then(() => loadPairing()).catch((error) => toast(error.message, true));
          }

          function renderPairing() {
            const root = $('pairing');
            if (root.hidden) return;
            const p = state.pairing;
            if (!p) {
              root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
              return;
            }
            if (!p.enabled) {
              root.replaceChildren(h('div', { class: 'panel' }, h('h2', {}, 'Pairing is off'),
                h('p', {}, 'To let Wi-Fi devices ask for broker credentials, ' + p.how + '.')), auditPanel(p.audit));
              return;
            }
            root.replaceChildren(windowPanel(p), pendingPanel(p), outcomesPanel(), devicesPanel(p), auditPanel(p.audit));
          }

          function windowPanel(p) {
            const open = p.status.window;
            const panel = h('div', { class: 'panel', id: 'window', data: { open: open ? 'true' : 'false' } }, h('h2', {}, 'Pairing window'));
            if (open) {
              const until = state.pairingAt + open.seconds_left * 1000;
              panel.append(h('p', {}, 'Open: devices may ask for ', h('span', { data: { until } }, duration(open.seconds_left)), ' more',
                open.legacy ? ', EmonESP legacy requests too.' : '.'),
              h('button', { type: 'button', id: 'close-window', onclick: () => decide('close', {}) }, 'Close now'));
            } else {
              const minutes = h('select', { id: 'window-minutes', 'aria-label': 'minutes' },
                [1, 2, 3, 5, 10, 15].map((m) => h('option', { value: m, selected: m === 5 }, m + ' min')));
              const legacy = h('input', { type: 'checkbox', id: 'window-legacy' });
              panel.append(h('p', {}, 'Closed: no device can ask.'),
                h('div', { class: 'row' }, h('label', {}, 'Open for ', minutes),
                  p.legacy_allowed ? h('label', { class: 'check' }, legacy, ' also EmonESP legacy requests (plain HTTP)') : null,
                  h('button', {
                    type: 'button', id: 'open-window', class: 'primary',
                    onclick: () => decide('open', { minutes: Number(minutes.value), legacy: p.legacy_allowed && legacy.checked }),
                  }, 'Open')));
              if (p.legacy_allowed) {
                panel.append(h('p', { class: 'meta' }, 'EmonESP devices get their credentials over plain HTTP and use plain MQTT: treat them as untrusted.'));
              }
            }
            panel.append(h('p', { class: 'meta' }, 'HTTPS certificate ', h('code', {}, p.status.fingerprint || '')));
            return panel;
          }

          function table(headers, rows, empty) {
            if (!rows.length) return h('p', { class: 'muted' }, empty);
            return h('div', { class: 'table' }, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
              h('tbody', {}, rows)));
          }

          function pendingPanel(p) {
            const rows = (p.pending || []).map((r) => h('tr', { data: { request: r.id } },
              h('td', {}, h('strong', {}, r.name)), h('td', {}, r.ip), h('td', {}, r.mac || '–'),
              h('td', {}, r.mode === 'legacy' ? 'EmonESP (plain HTTP)' : 'secure (HTTPS)'),
              h('td', { data: { born: state.pairingAt - r.age * 1000 } }, duration(r.age)),
              h('td', {}, r.verification_code ? h('code', { class: 'code' }, r.verification_code) : '–'),
              h('td', { class: 'actions' },
                h('button', { type: 'button', class: 'primary allow', onclick: () => decide('allow', { id: r.id }) }, 'Allow'),
                h('button', { type: 'button', class: 'deny', onclick: () => decide('deny', { id: r.id }) }, 'Deny'))));
            return h('div', { class: 'panel', id: 'pending' }, h('h2', {}, 'Requests'),
              h('p', { class: 'meta' }, 'Allow a secure device only if it shows the same verification code.'),
              table(['Name', 'IP', 'MAC', 'Mode', 'Age', 'Code', ''], rows, 'No device is asking.'));
          }

          function outcomesPanel() {
            return h('div', { class: 'panel', id: 'outcomes' }, h('h2', {}, 'What happened'),
              state.outcomes.length
                ? h('ul', { class: 'log' }, state.outcomes.map((o) => h('li', { data: { kind: o.kind } },
                  h('time', {}, o.time.toLocaleTimeString()), ' ', o.text)))
                : h('p', { class: 'muted' }, 'Nothing since this page was opened.'));
          }

          function devicesPanel(p) {
            const rows = (p.devices || []).map((d) => h('tr', { data: { device: d.id, state: d.state } },
              h('td', {}, h('strong', {}, d.name)), h('td', {}, d.id), h('td', {}, d.mode), h('td', {}, d.ip),
              h('td', {}, d.mac || '–'), h('td', {}, h('code', {}, d.topic_prefix + '/#')),
              h('td', {}, new Date(d.paired_at).toLocaleString()), h('td', {}, d.state),
              h('td', { class: 'actions' }, d.state === 'revoked' ? null : h('button', {
                type: 'button', class: 'revoke' + (state.revoking === d.id ? ' danger' : ''),
                onclick: (event) => {
                  if (state.revoking !== d.id) {
                    state.revoking = d.id;
                    event.target.textContent = 'Really revoke?';
                    event.target.classList.add('danger');
                    return;
                  }
                  state.revoking = null;
                  decide('revoke', { device: d.id });
                },
              }, state.revoking === d.id ? 'Really revoke?' : 'Revoke'))));
            return h('div', { class: 'panel', id: 'devices' }, h('h2', {}, 'Paired devices'),
              table(['Name', 'Device', 'Mode', 'IP', 'MAC', 'Topics', 'Paired', 'State', ''], rows, 'No paired devices.'));
          }

          function auditPanel(entries) {
            const rows = (entries || []).map((e) => h('tr', {},
              h('td', {}, new Date(e.time).toLocaleString()), h('td', {}, e.event), h('td', {}, e.by || ''),
              h('td', {}, e.client || ''),
              h('td', {}, [e.name, e.device || e.request, e.ip, e.target, e.detail].filter(Boolean).join(' · '))));
            return h('div', { class: 'panel', id: 'audit' }, h('h2', {}, 'Audit log'),
              table(['Time', 'Event', 'By', 'From', 'About'], rows, 'Empty.'));
          }

          // MARK: Health

          function renderHealth() {
            const root = $('health');
            if (root.hidden) return;
            const x = state.health;
            if (!x) {
              root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
              return;
            }
            const elapsed = (Date.now() - state.healthAt) / 1000;
            const dl = (pairs) => h('dl', {}, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
            const gateways = Object.entries(x.gateways || {}).map(([name, g]) => h('div', { class: 'panel', data: { gateway: name } },
              h('h2', {}, 'Gateway ' + name, ' ', pill(g.state)),
              dl([
                ['Address', g.address || '–'], ['Firmware', g.firmware || '–'],
                ['Last contact', g.seconds_since_contact === undefined ? 'never' : ago(g.seconds_since_contact + elapsed)],
                ['Reconnects', String(g.reconnects)], ['Devices', String(g.devices)], ['Rooms', String(g.groups)],
                ['Last full read', (g.view && g.view.last_full_read) || '–'],
                ['Repairs', String((g.view && g.view.repairs) ?? 0)],
              ])));
            root.replaceChildren(
              h('div', { class: 'panel', id: 'overall' }, h('h2', {}, 'Bridge ', h('span', {
                class: 'pill ' + (x.healthy ? 'online' : 'offline'), data: { healthy: String(x.healthy) },
              }, x.healthy ? 'healthy' : 'not healthy')),
              dl([['Version', x.version], ['Up for', h('span', { data: { upfrom: Date.now() - (x.uptime + elapsed) * 1000 } }, duration(x.uptime + elapsed))],
                ['Started', new Date(x.started_at).toLocaleString()], ['Devices', String(x.devices)], ['Rooms', String(x.groups)],
                ['Scenes', String(x.scenes)], ['Command errors', String(x.command_errors)]])),
              h('div', { class: 'panel', id: 'broker' }, h('h2', {}, 'Broker ', pill(x.broker.connected ? 'online' : 'offline')),
                dl([['Connected', x.broker.connected ? 'yes' : 'no'], ['Reconnects', String(x.broker.reconnects)]])),
              ...gateways);
          }

          // Ticking texts (ages, count-downs, uptime): no requests, only the clock.
          setInterval(() => {
            const now = Date.now();
            for (const node of document.querySelectorAll('[data-until]')) {
              const left = (Number(node.dataset.until) - now) / 1000;
              node.textContent = duration(left);
              if (left <= 0 && state.view === 'pairing') loadPairing();
            }
            for (const node of document.querySelectorAll('[data-born]')) node.textContent = duration((now - Number(node.dataset.born)) / 1000);
            for (const node of document.querySelectorAll('[data-upfrom]')) node.textContent = duration((now - Number(node.dataset.upfrom)) / 1000);
          }, 1000);

          start();
        })();

        """#
}
