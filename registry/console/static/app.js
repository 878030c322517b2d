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
      const td = el("td", "—");
      td.title = "TTL granted by another registry replica";
      return td;
    }
    const expires = inst.renew_time_ms + inst.ttl_s * 1000;
    const td = el("td", leftText(expires), "num");
    td.dataset.expires = String(expires);
    td.title = "TTL " + inst.ttl_s + " s";
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
      el("td", inst.health, "health-" + inst.health),
      timeCell(inst.register_time_ms),
      timeCell(inst.renew_time_ms),
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

  function renderInstances(names) {
    $("instances").replaceChildren(...names.map((n) => instanceTable(state.services.get(n))));
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
  }

  const handlers = {
    snapshot(data) {
      state.services = new Map();
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
          if (inst.instance_id in renewed) inst.renew_time_ms = renewed[inst.instance_id];
        }
      }
    },
    health(data) {
      for (const h of data.health) {
        const service = state.services.get(h.service);
        const inst = service && service.instances.find((i) => i.instance_id === h.instance_id);
        if (inst) inst.health = h.health;
      }
    },
  };

  function connect() {
    const source = new EventSource("/api/v1/events");
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (message) => {
        state.live = true;
        handle(JSON.parse(message.data));
        render();
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
