// Switchboard registry console: live view of the registry from /api/v1/events (SSE).
// Every value from the registry is put into the page with textContent, never as HTML.
"use strict";

(function () {
  const state = { services: new Map(), timeline: [], revision: 0, live: false };
  const TIMELINE_SHOWN = 200;
  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function ago(ms) {
    if (!ms) return "—";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s ago";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
  }

  function timeCell(ms) {
    const td = el("td", ago(ms));
    td.dataset.since = String(ms);
    if (ms) td.title = new Date(ms).toISOString();
    return td;
  }

  function leftText(ms) {
    const s = Math.max(0, Math.ceil((ms - Date.now()) / 1000));
    return s + " s";
  }

  // The lease runs out at the last renewal + its TTL (unknown when another replica granted it).
  function leaseCell(inst) {
    if (inst.ttl_s === null || inst.ttl_s === undefined) {
      const td = el("td", "—", "lease-unknown");
      td.title = "TTL granted by another registry replica";
      return td;
    }
    const expires = inst.renew_time_ms + inst.ttl_s * 1000;
    const td = el("td", leftText(expires), "num lease");
    td.dataset.expires = String(expires);
    td.title = "TTL " + inst.ttl_s + " s";
    return td;
  }

  function renewedCell(inst) {
    const td = timeCell(inst.renew_time_ms);
    td.classList.add("renewed");
    return td;
  }

  function filterText() {
    return $("filter").value.trim().toLowerCase();
  }

  function shown(name) {
    const f = filterText();
    return f === "" || name.toLowerCase().includes(f);
  }

  function sectionId(name) {
    return "service-" + name.replace(/[^a-z0-9-]/gi, "_");
  }

  function renderServices(names) {
    const body = $("services").tBodies[0];
    const rows = names.map((name) => {
      const tr = el("tr");
      tr.dataset.service = name;
      const th = el("th");
      th.scope = "row";
      const link = el("a", name);
      link.href = "#" + sectionId(name);
      th.append(link);
      tr.append(th, el("td", state.services.get(name).instance_count, "num"));
      return tr;
    });
    body.replaceChildren(...rows);
    $("no-services").hidden = state.services.size !== 0;
  }

  function metadataList(metadata) {
    const dl = el("dl", null, "meta");
    for (const key of Object.keys(metadata).sort()) {
      dl.append(el("dt", key), el("dd", metadata[key]));
    }
    return dl;
  }

  function instanceRow(inst) {
    const tr = el("tr");
    tr.dataset.instance = inst.instance_id;
    const th = el("th", inst.instance_id, "mono");
    th.scope = "row";
    const meta = el("td");
    meta.append(metadataList(inst.metadata));
    tr.append(
      th,
      el("td", inst.address, "mono"),
      el("td", inst.version),
      el("td", inst.health, "health health-" + inst.health),
      timeCell(inst.register_time_ms),
      renewedCell(inst),
      leaseCell(inst),
      meta,
    );
    return tr;
  }

  function instanceTable(service) {
    const section = el("section");
    section.id = sectionId(service.name);
    section.dataset.service = service.name;
    const table = el("table");
    const caption = el("caption", service.name + " (" + service.instance_count + ")");
    const head = el("thead");
    const hr = el("tr");
    for (const title of ["Instance", "Address", "Version", "Health", "Registered", "Renewed", "Lease left", "Metadata"]) {
      const th = el("th", title);
      th.scope = "col";
      hr.append(th);
    }
    head.append(hr);
    const body = el("tbody");
    body.append(...service.instances.map(instanceRow));
    table.append(caption, head, body);
    const scroll = el("div", null, "scroll");
    scroll.append(table);
    section.append(scroll);
    return section;
  }

  // One section per service, rebuilt only when that service changed (a 1,000-row page
  // must not be redrawn for every health result or renewal: those update cells in place).
  const sections = new Map();
  const dirty = new Set();

  function renderInstances(names) {
    for (const name of [...sections.keys()]) {
      if (!state.services.has(name)) sections.delete(name);
    }
    for (const name of dirty) {
      if (state.services.has(name)) sections.set(name, instanceTable(state.services.get(name)));
    }
    dirty.clear();
    const wanted = [...sections.keys()].sort().map((name) => sections.get(name));
    const box = $("instances");
    const current = [...box.children];
    if (wanted.length !== current.length || wanted.some((node, i) => node !== current[i])) {
      box.replaceChildren(...wanted);
    }
    const visible = new Set(names);
    for (const [name, section] of sections) section.hidden = !visible.has(name);
  }

  function findRow(service, instanceId) {
    const section = sections.get(service);
    if (!section) return null;
    for (const tr of section.querySelectorAll("tbody tr")) {
      if (tr.dataset.instance === instanceId) return tr;
    }
    return null;
  }

  function renderTimeline() {
    const rows = [];
    for (let i = state.timeline.length - 1; i >= 0 && rows.length < TIMELINE_SHOWN; i--) {
      const e = state.timeline[i];
      if (!shown(e.service)) continue;
      const tr = el("tr");
      tr.dataset.type = e.type;
      tr.dataset.instance = e.instance_id;
      tr.append(
        el("td", e.revision, "num"),
        el("td", e.type, "type-" + e.type),
        el("td", e.service),
        el("td", e.instance_id, "mono"),
        el("td", e.address, "mono"),
        timeCell(e.time_ms),
      );
      rows.push(tr);
    }
    $("timeline").tBodies[0].replaceChildren(...rows);
  }

  function renderStatus() {
    const status = $("status");
    status.textContent = state.live
      ? "live · revision " + state.revision + " · " + state.services.size + " services"
      : "reconnecting…";
    status.classList.toggle("live", state.live);
  }

  let scheduled = false;
  function render() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      const names = [...state.services.keys()].sort().filter(shown);
      renderServices(names);
      renderInstances(names);
      renderTimeline();
      renderStatus();
    }, 0);
  }

  function tick() {
    for (const td of document.querySelectorAll("td[data-since]")) {
      td.textContent = ago(Number(td.dataset.since));
    }
    for (const td of document.querySelectorAll("td[data-expires]")) {
      td.textContent = leftText(Number(td.dataset.expires));
    }
  }

  function putService(service) {
    if (service.instance_count === 0) state.services.delete(service.name);
    else state.services.set(service.name, service);
    dirty.add(service.name);
  }

  const handlers = {
    snapshot(data) {
      state.services = new Map();
      sections.clear();
      for (const service of data.services) putService(service);
      state.timeline = data.timeline;
      state.revision = data.revision;
    },
    service(data) {
      putService(data);
    },
    change(data) {
      putService(data.service);
      state.timeline.push(data.event);
      if (state.timeline.length > 1000) state.timeline.splice(0, state.timeline.length - 1000);
      state.revision = Math.max(state.revision, data.event.revision);
    },
    renewals(data) {
      for (const [name, renewed] of Object.entries(data.renewals)) {
        const service = state.services.get(name);
        if (!service) continue;
        for (const inst of service.instances) {
          if (!(inst.instance_id in renewed)) continue;
          inst.renew_time_ms = renewed[inst.instance_id];
          const tr = findRow(name, inst.instance_id);
          if (tr) {
            tr.querySelector("td.renewed").replaceWith(renewedCell(inst));
            tr.querySelector("td.lease, td.lease-unknown").replaceWith(leaseCell(inst));
          }
        }
      }
    },
    health(data) {
      for (const h of data.health) {
        const service = state.services.get(h.service);
        const inst = service && service.instances.find((i) => i.instance_id === h.instance_id);
        if (!inst) continue;
        inst.health = h.health;
        const tr = findRow(h.service, h.instance_id);
        if (tr) tr.querySelector("td.health").replaceWith(el("td", h.health, "health health-" + h.health));
      }
    },
  };

  function connect() {
    const source = new EventSource("/api/v1/events");
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (message) => {
        state.live = true;
        handle(JSON.parse(message.data));
        if (name === "snapshot" || name === "service" || name === "change") render();
        else renderStatus();
      });
    }
    source.addEventListener("error", () => {
      state.live = false;
      renderStatus();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("filter").addEventListener("input", render);
    $("filter-form").addEventListener("submit", (event) => event.preventDefault());
    setInterval(tick, 1000);
    connect();
  });
})();
