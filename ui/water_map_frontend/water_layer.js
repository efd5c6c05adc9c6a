// Defines window.hikeshiWaterLayer(map, data, options): the water sources as Leaflet markers
// (letter icons per kind, clustered by zoom), memo labels only where they fit, and coverage
// circles in their own pane beneath the markers. Shared by the 水利マップ component
// (ui/water_map_view.py) and the folium maps (ui/water_map_folium.py).
window.hikeshiWaterLayer = function (map, data, options) {
  var GREY = "#9e9e9e";
  var icons = {};
  window.hikeshiWaterReady = false;
  if (!map.getPane("hikeshiCoverage")) {
    // above the tiles (200), beneath other overlays (400) and the markers (600)
    var pane = map.createPane("hikeshiCoverage");
    pane.style.zIndex = 350;
    pane.style.pointerEvents = "none";
  }
  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function icon(kind, status, overdue) {
    var key = kind * 6 + status * 2 + overdue;
    if (!icons[key]) {
      var classes = "hk-ws hk-ws-s" + status + (overdue ? " hk-ws-overdue" : "");
      var colour = status === 1 ? GREY : data.colors[kind];
      icons[key] = L.divIcon({
        className: classes,
        html: '<span style="background:' + colour + '">' + data.letters[kind] + "</span>",
        iconSize: [24, 24], iconAnchor: [12, 12], tooltipAnchor: [0, -12]
      });
    }
    return icons[key];
  }
  var SourceMarker = L.Marker.extend({
    onAdd: function (map) {
      L.Marker.prototype.onAdd.call(this, map);
      var element = this.getElement();
      element.setAttribute("data-code", this.options.code);
      element.setAttribute("aria-label", this.options.code + " " + this.options.kindName);
    }
  });
  var layer = L.featureGroup();
  var coverage = L.featureGroup().addTo(layer);
  var circles = {};  // by code: the coverage circle of a usable source
  function addCircle(r) {
    if (!options.coverage || r[3] !== 0) { return; }
    circles[r[5]] = L.circle([r[0], r[1]], {radius: r[7], weight: 1, color: "#1565c0",
      opacity: 0.5, fillColor: "#42a5f5", fillOpacity: 0.18, interactive: false,
      pane: "hikeshiCoverage"}).addTo(coverage);
  }
  data.rows.forEach(addCircle);
  function ready() {
    window.hikeshiWaterReady = true;
    fitLabels();
  }
  var group = options.cluster
    ? L.markerClusterGroup({chunkedLoading: true, maxClusterRadius: 45,
        disableClusteringAtZoom: 17, showCoverageOnHover: false, spiderfyOnMaxZoom: false,
        chunkProgress: function (done, total) { if (done === total) { ready(); } }})
    : L.featureGroup();
  // A marker's hover text is bound at its first hover: 20,000 tooltips made up front cost more
  // than drawing the markers. Memo labels (permanent) are bound at once.
  function makeMarker(r) {
    var marker = new SourceMarker([r[0], r[1]], {
      icon: icon(r[2], r[3], r[4]), code: r[5], kindName: data.kinds[r[2]], riseOnHover: true
    });
    marker.hikeshiRow = r;
    if (options.labels && r[6]) {
      marker.bindTooltip(esc(r[6]), {permanent: true, direction: "right", offset: [12, 12], className: "hk-ws-label"});
    }
    return marker;
  }
  var markers = data.rows.map(makeMarker);
  function hint(r) {
    return esc(r[5]) + "（" + esc(data.kinds[r[2]]) + "・" + esc(data.statuses[r[3]]) + "）"
      + (r[4] ? " 点検期限切れ" : "") + (r[6] ? "<br>" + esc(r[6]) : "");
  }
  group.on("mouseover", function (e) {
    var marker = e.layer;
    if (marker && marker.hikeshiRow && !marker.getTooltip()) {
      marker.bindTooltip(hint(marker.hikeshiRow), {direction: "top"}).openTooltip();
    }
  });
  // A memo label is shown only where it overlaps no other shown label and no marker or cluster
  // icon but its own; the others wait for a closer zoom.
  function overlap(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  function fitLabels() {
    if (!options.labels || !layer._map) { return; }
    var icons = Array.prototype.map.call(
      map.getPane("markerPane").children, function (el) { return [el, el.getBoundingClientRect()]; });
    var shown = [];
    markers.forEach(function (marker) {
      var tip = marker.getTooltip();
      var el = marker._map && tip && tip.options.permanent ? tip.getElement() : null;
      if (!el) { return; }
      el.classList.remove("hk-ws-label-hidden");
      var box = el.getBoundingClientRect();
      var clash = shown.some(function (other) { return overlap(other, box); })
        || icons.some(function (i) { return i[0] !== marker._icon && overlap(i[1], box); });
      if (clash) { el.classList.add("hk-ws-label-hidden"); } else { shown.push(box); }
    });
  }
  var pending = null;
  var trailing = null;
  function later() {
    clearTimeout(pending);
    clearTimeout(trailing);
    pending = setTimeout(fitLabels, 60);
    // and once more when CSS transitions (a cluster icon gliding to its place) and late layout
    // have surely ended: they change where an icon is drawn without any event or mutation, and
    // a loaded machine left a label over an icon that had moved after the first placement
    trailing = setTimeout(fitLabels, 600);
  }
  // Markercluster adds and removes icons after a move or zoom, some after an animation, and
  // labels move when they are first laid out or a font arrives: the labels are placed again
  // once the icons and labels have stopped changing.
  var changes = new MutationObserver(later);
  layer.on("add", function () {
    if (options.fit && !map.hikeshiFitted && data.rows.length) {
      map.hikeshiFitted = true;
      map.fitBounds(data.rows.map(function (r) { return [r[0], r[1]]; }),
        {padding: [20, 20], animate: false});
    }
    changes.observe(  // icons added, removed, or moved in place (a cluster's position)
      map.getPane("markerPane"), {childList: true, subtree: true, attributeFilter: ["style"]});
    changes.observe(
      map.getPane("tooltipPane"), {childList: true, subtree: true, attributeFilter: ["style"]});
    map.on("zoomend moveend", later);
    group.on("animationend", later);  // clusters split or merged: icons moved without a mutation
    map.getPane("markerPane").addEventListener("transitionend", later);
    if (document.fonts) { document.fonts.ready.then(later); }
    addMarkers();
  });
  layer.on("remove", function () {
    changes.disconnect();
    map.off("zoomend moveend", later);
    group.off("animationend", later);
    map.getPane("markerPane").removeEventListener("transitionend", later);
  });
  // The markers join the cluster group once it is on the map: before, every addLayers call
  // looks for each marker among those already waiting (quadratic: half a second at 20,000).
  var added = false;
  function addMarkers() {
    if (added) { return; }
    added = true;
    if (options.cluster) {
      group.addLayers(markers);
    } else {
      markers.forEach(function (marker) { group.addLayer(marker); });
      ready();
    }
  }
  group.addTo(layer);
  layer.hikeshiMarkers = group;
  // A few sources changed (a write): their markers and circles are replaced in place, the rest
  // of the layer and its clusters stay as they are. Rows are compared as a whole.
  layer.hikeshiUpdate = function (removed, addedRows) {
    var gone = {};
    removed.forEach(function (r) { gone[r[5]] = true; });
    var old = markers.filter(function (m) { return gone[m.options.code]; });
    removed.forEach(function (r) {
      if (circles[r[5]]) { coverage.removeLayer(circles[r[5]]); delete circles[r[5]]; }
    });
    var fresh = addedRows.map(makeMarker);
    addedRows.forEach(addCircle);
    markers = markers.filter(function (m) { return !gone[m.options.code]; }).concat(fresh);
    group.removeLayers(old);
    if (options.cluster) {
      group.addLayers(fresh);
    } else {
      fresh.forEach(function (marker) { group.addLayer(marker); });
    }
    later();
  };
  return layer;
};
