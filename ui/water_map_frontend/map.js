// The 水利マップ component (ui/water_map_view.py): one Leaflet map that stays in this frame for
// as long as the page shows it. The sources are fetched from args.data_url once per
// args.version; a rerun brings only the filters' bit set, the options and the selection.
// Panning and zooming stay here (the view is kept in sessionStorage, never sent); only a click
// is sent to the page, as the component's value.
(function () {
  "use strict";
  // services.water_sources.map_data.DATA_ROUTE: the current version is asked for as soon as
  // this frame loads, before Streamlit hands it its args (the page's other elements render
  // meanwhile); it is used if it is the version the args name (its ETag says so).
  var DATA_ROUTE = "/api/water-map";
  var early = fetch(DATA_ROUTE, {credentials: "same-origin"})
    .then(function (response) {
      if (!response.ok) { return null; }
      var etag = response.headers.get("ETag");
      return response.json().then(function (body) { return {etag: etag, body: body}; });
    })
    .catch(function () { return null; });
  var map = null;
  var args = null;
  var data = null;
  var dataVersion = null;
  var fetching = null;
  var layer = null;
  var layerRows = null;  // the rows the layer shows
  var drawn = {};
  var highlight = null;
  var clicks = 0;
  var frameId = Math.random().toString(36).slice(2);  // a new frame's clicks are new ones

  function send(type, fields) {
    var message = {isStreamlitMessage: true, type: type};
    Object.keys(fields || {}).forEach(function (k) { message[k] = fields[k]; });
    window.parent.postMessage(message, "*");
  }

  function choose(value) {
    clicks += 1;
    value.n = clicks;
    value.frame = frameId;
    send("streamlit:setComponentValue", {value: value, dataType: "json"});
  }

  function loadAssets(assets, done) {
    assets.css.forEach(function (href) {
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = href;
      document.head.appendChild(link);
    });
    // downloaded side by side, run in this order (async = false)
    var waiting = assets.js.length;
    assets.js.forEach(function (src) {
      var script = document.createElement("script");
      script.src = src;
      script.async = false;
      script.onload = function () {
        waiting -= 1;
        if (!waiting) { done(); }
      };
      document.head.appendChild(script);
    });
  }

  function savedView() {
    try {
      return JSON.parse(sessionStorage.getItem(args.view_key) || "null");
    } catch (e) {
      return null;
    }
  }

  function setUp() {
    map = L.map("map", {preferCanvas: true});
    window.map = map;
    var bases = {};
    args.tiles.forEach(function (t, i) {
      var tiles = L.tileLayer(t.url, {attribution: t.attribution, maxZoom: t.max_zoom});
      bases[t.name] = tiles;
      if (i === 0) { tiles.addTo(map); }
    });
    highlight = L.featureGroup().addTo(map);
    map.hikeshiControl = L.control.layers(bases, {"選択": highlight}, {collapsed: true}).addTo(map);
    L.control.scale({imperial: false}).addTo(map);
    var view = savedView();
    if (view) {
      map.setView(view.center, view.zoom, {animate: false});
      map.hikeshiFitted = true;  // the user's view, not the sources' bounds
    } else if (args.center) {
      map.setView(args.center, 15);
      map.hikeshiFitted = true;
    } else {
      map.setView([36.2, 138.25], 5);
    }
    map.on("moveend", function () {
      var c = map.getCenter();
      sessionStorage.setItem(args.view_key,
        JSON.stringify({center: [c.lat, c.lng], zoom: map.getZoom()}));
    });
    map.on("click", function (e) {
      choose({kind: "point", lat: e.latlng.lat, lng: e.latlng.lng});
    });
  }

  function kept(mask) {
    if (!mask) { return data.rows; }
    var bits = atob(mask);
    return data.rows.filter(function (r, i) {
      return (bits.charCodeAt(i >> 3) >> (i & 7)) & 1;
    });
  }

  // The rows in `before` and not in `after` and those in `after` and not in `before`, or null
  // when more than a few differ (a filter change, another user's import): then the layer is
  // drawn anew.
  function changes(before, after) {
    var count = {};
    before.forEach(function (r) { var k = JSON.stringify(r); count[k] = (count[k] || 0) + 1; });
    var added = after.filter(function (r) {
      var k = JSON.stringify(r);
      if (count[k]) { count[k] -= 1; return false; }
      return true;
    });
    if (added.length > 50) { return null; }
    var removed = before.filter(function (r) {
      var k = JSON.stringify(r);
      if (count[k]) { count[k] -= 1; return true; }
      return false;
    });
    return removed.length > 50 ? null : {removed: removed, added: added};
  }

  function drawSources() {
    var wanted = {version: dataVersion, mask: args.mask, labels: args.labels,
                  coverage: args.coverage};
    if (JSON.stringify(wanted) === JSON.stringify(drawn)) { return; }
    var rows = kept(args.mask);
    var delta = layer && wanted.labels === drawn.labels && wanted.coverage === drawn.coverage
      ? changes(layerRows, rows) : null;
    if (delta) {  // a write: only its sources change, the clusters and the view stay
      layer.hikeshiUpdate(delta.removed, delta.added);
      layerRows = rows;
      drawn = wanted;
      return;
    }
    if (layer) {
      map.hikeshiControl.removeLayer(layer);
      map.removeLayer(layer);
    }
    var shown = {kinds: data.kinds, statuses: data.statuses, letters: args.letters,
                 colors: args.colors, rows: rows};
    layer = window.hikeshiWaterLayer(
      map, shown, {labels: args.labels, coverage: args.coverage, cluster: true, fit: true});
    layer.hikeshiMarkers.on("click", function (e) {
      if (e.layer && e.layer.options.code !== undefined) {
        choose({kind: "source", code: e.layer.options.code});
      }
    });
    layer.addTo(map);
    map.hikeshiControl.addOverlay(layer, "水利");
    layerRows = rows;
    drawn = wanted;
  }

  function drawSelection() {
    highlight.clearLayers();
    var selected = args.selected && data.rows.find(function (r) { return r[5] === args.selected; });
    if (selected) {
      L.circleMarker([selected[0], selected[1]],
        {radius: 17, color: "#ffd600", weight: 4, fill: false, interactive: false}).addTo(highlight);
    }
    if (args.point) {
      L.circleMarker(args.point, {radius: 7, color: "#000", weight: 2, fillColor: "#ffd600",
        fillOpacity: 1, interactive: false}).addTo(highlight);
    }
  }

  function draw() {
    if (dataVersion !== args.version) {
      fetchData();
      return;
    }
    drawSources();
    drawSelection();
  }

  function fetchVersion(version) {
    var prefetched = early || Promise.resolve(null);
    early = null;
    return prefetched.then(function (hit) {
      if (hit && hit.etag === '"' + version + '"') { return hit.body; }
      return fetch(args.data_url, {credentials: "same-origin"}).then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.json();
      });
    });
  }

  function fetchData() {
    var version = args.version;
    if (fetching === version) { return; }
    fetching = version;
    fetchVersion(version)
      .then(function (body) {
        data = body;
        dataVersion = version;
        fetching = null;
        if (map) { draw(); }
      })
      .catch(function () {
        fetching = null;
        var message = document.createElement("div");
        message.className = "hk-wm-message";
        message.textContent = "水利の位置を読み込めませんでした。ページを再読み込みしてください。";
        document.body.appendChild(message);
      });
  }

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent || !event.data || event.data.type !== "streamlit:render") {
      return;
    }
    var first = args === null;
    args = event.data.args;
    if (first) {
      send("streamlit:setFrameHeight", {height: args.height});
      fetchData();
      loadAssets(args.assets, function () {
        setUp();
        if (data) { draw(); }
      });
    } else if (map) {
      draw();
    }
  });
  send("streamlit:componentReady", {apiVersion: 1});
})();
