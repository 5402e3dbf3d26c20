// linkgraph overview page. Built only from the public /v1/ API; every piece
// of text that comes from the data (anchors, URLs, domains) is set with
// textContent, never parsed as HTML.
"use strict";

(function () {
  const PAGE_SIZE = 50;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const fmt = new Intl.NumberFormat("en-US");
  let token = sessionStorage.getItem("linkgraph-token") || "";
  let current = null; // the domain shown
  let generation = 0; // bumps on every navigation; stale answers are dropped
  let totalRefdomains = 0; // of the domain shown, for the anchors' shares
  let tables = {}; // the tables shown, by name

  /** An element with optional class and text. */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /** A link to an http(s) URL from the data; anything else is plain text. */
  function urlCell(url) {
    const td = el("td", "url");
    if (typeof url === "string" && /^https?:\/\//i.test(url)) {
      const a = el("a", null, url);
      a.href = url;
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
      td.appendChild(a);
    } else {
      td.textContent = url == null ? "" : String(url);
    }
    return td;
  }

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /** GET /v1/<path> with the token; JSON or text. */
  async function api(path, params, asText) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") q.append(k, v);
    }
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const res = await fetch("/v1/" + path + "?" + q.toString(), { headers });
    if (res.status === 401) {
      $("#auth").hidden = false;
      $("#token-input").focus();
      throw new HttpError(401, "this server needs its API token");
    }
    if (!res.ok) {
      let message = res.statusText;
      try { message = (await res.json()).error || message; } catch (_) { /* not JSON */ }
      throw new HttpError(res.status, message);
    }
    return asText ? res.text() : res.json();
  }

  function setStatus(text, isError) {
    const s = $("#status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  /** Saves `text` as a file named `name` (the browser's download). */
  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = el("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---- headline figures and mixes -------------------------------------

  function figure(name, value, pending) {
    const dd = $(`[data-figure="${name}"]`);
    dd.textContent = value;
    dd.classList.toggle("pending", !!pending);
  }

  function showSummary(s) {
    totalRefdomains = s.referring_domains;
    if (tables.anchors) tables.anchors.rerender();
    figure("referring_domains", fmt.format(s.referring_domains));
    figure("backlinks", fmt.format(s.backlinks));
    figure("follow_share", (s.follow_share * 100).toFixed(1) + "%");
    figure("new_refdomains", fmt.format(s.new_refdomains));
    figure("lost_refdomains", fmt.format(s.lost_refdomains));
    if (s.authority === null || s.authority === undefined) {
      figure("authority", "not computed yet", true);
    } else {
      figure("authority", s.authority.toFixed(1));
    }
    mix("#anchor-mix", s.anchor_mix, s.backlinks);
    mix("#placement-mix", s.placement, s.backlinks);
    mix("#rel-mix", s.rel, s.backlinks);
  }

  function mix(sel, shares, total) {
    const body = $(sel + " tbody");
    body.replaceChildren();
    for (const [name, share] of Object.entries(shares)) {
      const tr = el("tr");
      tr.appendChild(el("th", null, name)).scope = "row";
      tr.appendChild(el("td", "num", fmt.format(share.links)));
      tr.appendChild(el("td", "num", fmt.format(share.refdomains)));
      const td = el("td", "share");
      const pct = total ? (100 * share.links) / total : 0;
      const track = el("span", "track");
      const bar = track.appendChild(el("span", "bar"));
      bar.style.width = pct.toFixed(1) + "%";
      td.append(track, el("span", null, pct.toFixed(1) + "%"));
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  // ---- weekly chart -----------------------------------------------------

  function showVelocity(v) {
    const weeks = v.series;
    const labels = weeks.map((p) => p.start.slice(0, 10));
    const spikeAt = new Map(v.spikes.map((s) => [s.start, s]));
    const chart = $("#chart");
    chart.replaceChildren();
    chart.dataset.weeks = String(weeks.length);
    if (!weeks.length) {
      chart.appendChild(el("p", "empty", "No link events recorded yet."));
    } else {
      const c = new Chartist.BarChart(
        chart,
        {
          labels,
          series: [
            weeks.map((p) => p.new_refdomains),
            weeks.map((p) => p.discovered_refdomains),
            weeks.map((p) => -p.lost_refdomains),
          ],
        },
        {
          stackBars: true,
          axisX: {
            showGrid: false,
            labelInterpolationFnc: (value, i) =>
              weeks.length <= 16 || i % Math.ceil(weeks.length / 16) === 0 ? value : null,
          },
          axisY: { onlyInteger: true },
        }
      );
      c.on("draw", (d) => {
        if (d.type === "bar") {
          d.element.attr({ "data-week": labels[d.index] });
          if (d.seriesIndex === 0 && spikeAt.has(weeks[d.index].start)) {
            d.element.addClass("lg-spike");
          }
        }
      });
    }
    const list = $("#spikes");
    list.replaceChildren();
    for (const s of v.spikes) {
      list.appendChild(el("li", null,
        `Spike: week of ${s.start.slice(0, 10)}, ${fmt.format(s.new_refdomains)} new referring domains ` +
        `against a baseline of ${s.baseline.toFixed(1)} (score ${s.score.toFixed(1)})`));
    }
    const body = $("#weeks tbody");
    body.replaceChildren();
    for (const p of weeks) {
      const tr = el("tr");
      tr.appendChild(el("td", null, p.start.slice(0, 10)));
      tr.appendChild(el("td", "num", p.new_refdomains));
      tr.appendChild(el("td", "num", p.discovered_refdomains));
      tr.appendChild(el("td", "num", p.lost_refdomains));
      tr.appendChild(el("td", null, spikeAt.has(p.start) ? "spike" : ""));
      body.appendChild(tr);
    }
  }

  // ---- broken pages to reclaim ------------------------------------------

  async function showReclaim(domain, gen) {
    const list = $("#reclaim");
    list.replaceChildren();
    const pages = await api("pages", { target: domain, sort: "http_status", order: "desc", limit: 200 });
    const dead = pages.pages.filter((p) => p.http_status === 404 || p.http_status === 410).slice(0, 20);
    if (gen !== generation) return;
    if (!dead.length) {
      list.appendChild(el("li", "empty", "No linked page of this domain answers 404 or 410."));
      return;
    }
    for (const p of dead) {
      const links = await api("backlinks", { target: p.url, limit: 200 });
      if (gen !== generation) return;
      const domains = [...new Set(links.links.map((l) => new URL(l.source_url).hostname))];
      const li = el("li");
      li.append(el("span", "url", p.url), ` answers ${p.http_status}: `);
      li.append(`${fmt.format(p.refdomains)} referring domain${p.refdomains === 1 ? "" : "s"} ` +
        `(${fmt.format(p.links)} link${p.links === 1 ? "" : "s"}) point at it, from `);
      li.append(el("span", "domains", domains.slice(0, 8).join(", ") + (domains.length > 8 ? `, and ${domains.length - 8} more hosts` : "")));
      li.append(". Redirect it to a live page to reclaim them.");
      list.appendChild(li);
    }
  }

  // ---- paged, sortable tables -------------------------------------------

  const num = (v) => (v === null || v === undefined ? "" : fmt.format(v));
  const text = (v) => (v === null || v === undefined ? "" : Array.isArray(v) ? v.join(" ") : String(v));
  const day = (v) => (v ? String(v).slice(0, 10) : "");

  /** Each table: its endpoint, rows field, columns and fixed parameters. */
  const signals = (v) => (Array.isArray(v) ? v.map((x) => `${x.kind}: ${x.detail}`).join("\n") : "");

  const TABLES = {
    risk: {
      endpoint: "risk", rows: "domains",
      columns: [["domain", "Domain", text], ["score", "Score", num, "num"], ["signals", "Signals", signals, "signals", false]],
    },
    refdomains: {
      endpoint: "refdomains", rows: "domains",
      columns: [["domain", "Domain", text], ["links", "Links", num, "num"], ["follow_links", "Follow", num, "num"],
        ["first_seen", "First seen", day], ["last_seen", "Last seen", day],
        ["authority", "Authority", (v) => (v === null || v === undefined ? "–" : v.toFixed(1)), "num"]],
    },
    backlinks: {
      endpoint: "backlinks", rows: "links",
      columns: [["source_url", "From", null, "url"], ["target_url", "To", null, "url"], ["anchor", "Anchor", text],
        ["rel", "Rel", text], ["placement", "Placement", text], ["first_seen", "First seen", day], ["last_seen", "Last seen", day]],
    },
    anchors: {
      endpoint: "anchors", rows: "anchors",
      columns: [["anchor", "Anchor", text], ["kind", "Class", text], ["refdomains", "Domains", num, "num"],
        ["refdomains", "Share of domains", (v) => (totalRefdomains ? ((100 * v) / totalRefdomains).toFixed(1) + "%" : ""), "num"],
        ["links", "Links", num, "num"], ["follow_links", "Follow", num, "num"], ["first_seen", "First seen", day]],
    },
    pages: {
      endpoint: "pages", rows: "pages",
      columns: [["url", "Page", null, "url"], ["refdomains", "Domains", num, "num"], ["links", "Links", num, "num"],
        ["follow_links", "Follow", num, "num"], ["http_status", "Status", text, "num"]],
    },
    broken: {
      endpoint: "broken", rows: "links", params: { direction: "inbound" },
      columns: [["target_url", "Dead page", null, "url"], ["http_status", "Status", text, "num"],
        ["source_url", "Linked from", null, "url"], ["anchor", "Anchor", text], ["first_seen", "First seen", day]],
    },
  };

  class Table {
    constructor(section, name, domain) {
      this.spec = TABLES[name];
      this.name = name;
      this.domain = domain;
      this.sort = null; // null: the report's own order
      this.desc = false;
      this.cursors = [null]; // the cursor of each page seen so far
      this.pageIndex = 0;
      this.section = section;
      section.querySelectorAll(".table-tools, table, .empty").forEach((e) => e.remove());
      const tools = el("div", "table-tools");
      this.count = el("span", "count");
      this.prev = el("button", null, "Previous page");
      this.prev.type = "button";
      this.prev.dataset.action = "prev";
      this.next = el("button", null, "Next page");
      this.next.type = "button";
      this.next.dataset.action = "next";
      const csv = el("button", null, "Download CSV");
      csv.type = "button";
      csv.dataset.action = "csv";
      tools.append(this.count, this.prev, this.next, csv);
      this.prev.addEventListener("click", () => this.go(this.pageIndex - 1));
      this.next.addEventListener("click", () => this.go(this.pageIndex + 1));
      csv.addEventListener("click", () => this.csv());
      this.table = el("table");
      const head = el("tr");
      for (const [field, label, , cls, sortable] of this.spec.columns) {
        const th = el("th", cls === "num" ? "num" : null);
        th.scope = "col";
        th.dataset.field = field;
        if (sortable === false) {
          th.textContent = label;
        } else {
          const b = el("button", null, label);
          b.type = "button";
          b.addEventListener("click", () => this.sortBy(field));
          th.appendChild(b);
        }
        head.appendChild(th);
      }
      this.table.appendChild(el("thead")).appendChild(head);
      this.body = this.table.appendChild(el("tbody"));
      // What the report could not see (risk: shared hosting, no ranks yet).
      this.notes = el("ul", "notes");
      section.append(tools, this.table, this.notes);
    }

    sortBy(field) {
      if (this.sort === field) this.desc = !this.desc;
      else { this.sort = field; this.desc = false; }
      for (const th of this.table.querySelectorAll("th")) {
        if (th.dataset.field === this.sort) th.setAttribute("aria-sort", this.desc ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      }
      this.cursors = [null];
      this.go(0);
    }

    params(extra) {
      return Object.assign({ target: this.domain }, this.spec.params || {}, extra);
    }

    async go(index) {
      if (index < 0 || index >= this.cursors.length) return;
      const gen = generation;
      const params = this.params({ limit: PAGE_SIZE, cursor: this.cursors[index] || "" });
      if (this.sort) Object.assign(params, { sort: this.sort, order: this.desc ? "desc" : "asc" });
      this.section.setAttribute("aria-busy", "true");
      try {
        const doc = await api(this.spec.endpoint, params);
        if (gen !== generation) return;
        this.pageIndex = index;
        this.cursors.length = index + 1;
        if (doc.next_cursor) this.cursors.push(doc.next_cursor);
        this.render(doc[this.spec.rows] || []);
        this.notes.replaceChildren(...(Array.isArray(doc.notes) ? doc.notes : []).map((n) => el("li", null, n)));
      } catch (e) {
        this.body.replaceChildren();
        const tr = el("tr");
        const td = el("td", "empty", "Cannot load: " + e.message);
        td.colSpan = this.spec.columns.length;
        tr.appendChild(td);
        this.body.appendChild(tr);
      } finally {
        this.section.removeAttribute("aria-busy");
      }
    }

    rerender() {
      if (this.rows) this.render(this.rows);
    }

    render(rows) {
      this.rows = rows;
      this.body.replaceChildren();
      for (const row of rows) {
        const tr = el("tr");
        for (const [field, , show, cls] of this.spec.columns) {
          tr.appendChild(cls === "url" ? urlCell(row[field]) : el("td", cls || null, show(row[field])));
        }
        this.body.appendChild(tr);
      }
      if (!rows.length) {
        const tr = el("tr");
        const td = el("td", "empty", "No rows.");
        td.colSpan = this.spec.columns.length;
        tr.appendChild(td);
        this.body.appendChild(tr);
      }
      const first = this.pageIndex * PAGE_SIZE;
      this.count.textContent = rows.length
        ? `rows ${fmt.format(first + 1)}–${fmt.format(first + rows.length)}${this.cursors.length > this.pageIndex + 1 ? "" : " (last page)"}`
        : "";
      this.prev.disabled = this.pageIndex === 0;
      this.next.disabled = this.cursors.length <= this.pageIndex + 1;
    }

    async csv() {
      try {
        const body = await api(this.spec.endpoint, this.params({ format: "csv" }), true);
        download(`${this.name}-${this.domain}.csv`, body, "text/csv");
      } catch (e) {
        setStatus(`Cannot download ${this.name}: ${e.message}`, true);
      }
    }
  }

  // ---- navigation ---------------------------------------------------------

  async function open(domain) {
    const gen = ++generation;
    current = domain;
    $("#welcome").hidden = true;
    $("#overview").hidden = false;
    $("#title").textContent = domain;
    document.title = domain + " · linkgraph";
    $("#domain-input").value = domain;
    setStatus("Loading…");
    totalRefdomains = 0;
    tables = {};
    for (const name of Object.keys(TABLES)) {
      tables[name] = new Table($(`[data-table="${name}"]`), name, domain);
    }
    // What the first screen shows loads first; the tables further down,
    // each a read of the domain's every link, load once it is up, so a
    // large domain opens as fast as its headline figures come.
    const first = ["refdomains", "backlinks"];
    const jobs = [
      ...first.map((name) => tables[name].go(0)),
      api("summary", { target: domain }).then((s) => gen === generation && showSummary(s)),
      api("velocity", { target: domain, bucket: "week" }).then((v) => gen === generation && showVelocity(v)),
    ];
    const failed = (await Promise.allSettled(jobs)).find((r) => r.status === "rejected");
    if (gen !== generation) return;
    if (failed) setStatus("Cannot load " + domain + ": " + failed.reason.message, true);
    else setStatus("");
    document.body.dataset.loaded = domain;
    await Promise.allSettled(
      Object.keys(tables).filter((name) => !first.includes(name)).map((name) => tables[name].go(0))
    );
    if (gen !== generation) return;
    try {
      await showReclaim(domain, gen);
    } catch (e) {
      if (gen === generation) setStatus("Cannot list the broken pages: " + e.message, true);
    }
    if (gen === generation) document.body.dataset.reclaimed = domain;
  }

  function route() {
    const m = location.pathname.match(/^\/domain\/([^/]+)\/?$/);
    if (m) open(decodeURIComponent(m[1]));
    else {
      $("#welcome").hidden = false;
      $("#overview").hidden = true;
    }
  }

  $("#disavow").addEventListener("click", async () => {
    if (!current) return;
    try {
      const text = await api("disavow", { target: current }, true);
      download(`disavow-${current}.txt`, text, "text/plain");
    } catch (e) {
      setStatus("Cannot build the disavow file: " + e.message, true);
    }
  });
  $("#open").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = $("#domain-input").value.trim().toLowerCase();
    if (!d) return;
    history.pushState(null, "", "/domain/" + encodeURIComponent(d));
    route();
  });
  $("#auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("#token-input").value.trim();
    sessionStorage.setItem("linkgraph-token", token);
    $("#auth").hidden = true;
    if (current) open(current);
  });
  window.addEventListener("popstate", route);
  route();
})();
