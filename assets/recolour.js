/* Depth-slider recolour without a server round trip.
 *
 * The server ships, once per result and colour scheme, for every depth: the colour slot of every
 * point (base64 uint16), the palette those slots index, the legend (largest groups with colour,
 * size and branch label) and the map labels of the largest branches (dcc.Store "map-groups", see
 * app/figures.depth_payload). On a slider change we decode that depth once (cached), restyle the
 * graph node directly - marker colours, their step colour scale and the label trace - and render
 * the legend. Going through the figure prop (Patch) would make dcc.Graph run Plotly.react over the
 * whole figure; restyling the node costs about what a bare Plotly.restyle costs
 * (bench/bench_app.py measures the ratio).
 */
(function () {
  var TRACE_POINTS = 0, TRACE_LABELS = 5;
  var decoded = {token: null, depths: {}};

  function slotsFor(payload, depth) {
    if (decoded.token !== payload.token) {
      decoded = {token: payload.token, depths: {}};
    }
    var cached = decoded.depths[depth];
    if (cached) { return cached; }
    var bin = atob(payload.depths[depth].slots);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var out = new Uint16Array(bytes.buffer);   // little-endian, as the server packs it
    decoded.depths[depth] = out;
    return out;
  }

  function colourScale(colours) {
    var m = colours.length, scale = [];
    if (m === 1) { return [[0, colours[0]], [1, colours[0]]]; }
    for (var k = 0; k < m; k++) { scale.push([k / m, colours[k]], [(k + 1) / m, colours[k]]); }
    return scale;
  }

  function span(className, children, extra) {
    return {type: 'Span', namespace: 'dash_html_components',
            props: Object.assign({className: className, children: children}, extra || {})};
  }

  function legendChildren(info) {
    var items = info.legend.map(function (g) {
      var text = g[0] + (g[3] ? ' · ' + g[3] : '') + ' (' + g[1] + ')';
      return span('legend-item', [span('swatch', null, {style: {background: g[2]}}), text],
                  {title: text + ' entities'});
    });
    var more = info.n_groups - info.legend.length;
    if (more > 0) {
      var note = '+ ' + more + ' more groups' +
        (info.other_groups > 0 ? ' (' + info.other_groups + ' small ones, ' + info.other_points +
         ' points, in their parent\u2019s colour)' : ' (colours on the map)');
      items.push(span('legend-item muted', note));
    }
    return items;
  }

  function graphDiv() {
    return document.querySelector('#map .js-plotly-plot');
  }

  function restyle(payload, d) {
    var gd = graphDiv();
    // Only touch a graph that shows this payload's points (a new figure may be on its way).
    // (gd.data may hold base64 typed-array specs; _fullData has the decoded arrays.)
    var full = gd && gd._fullData && gd._fullData[TRACE_POINTS];
    if (!(full && full.x && full.x.length === payload.n)) { return; }
    var info = payload.depths[d];
    // One restyle for the points and the branch labels: a second call for the labels would
    // redraw the whole figure a second time (bench/bench_app.py).
    // (undefined leaves that trace's attribute as it is.)
    var update = {
      'marker.color': [slotsFor(payload, d)], 'marker.colorscale': [colourScale(info.colours)],
      'marker.cmin': [-0.5], 'marker.cmax': [info.colours.length - 0.5]};
    var traces = [TRACE_POINTS];
    if (gd.data.length > TRACE_LABELS) {
      traces.push(TRACE_LABELS);
      Object.keys(update).forEach(function (k) { update[k].push(undefined); });
      update.x = [undefined, info.labels.x];
      update.y = [undefined, info.labels.y];
      update.text = [undefined, info.labels.text];
    }
    window.Plotly.restyle(gd, update, traces);
  }

  window.hkdRecolour = {slotsFor: slotsFor, graphDiv: graphDiv, restyle: restyle};

  window.dash_clientside = Object.assign({}, window.dash_clientside);
  window.dash_clientside.hkd = Object.assign({}, window.dash_clientside.hkd, {
      recolour: function (depth, payload) {
        if (!payload) {
          return [[], ''];
        }
        var d = Math.max(0, Math.min(depth | 0, payload.depths.length - 1));
        var trig = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
        if (trig.indexOf('depth-slider.value') >= 0) {
          restyle(payload, d);
        }
        var n = payload.depths[d].n_groups;
        return [legendChildren(payload.depths[d]), 'N = ' + d + ' · ' + n + (n === 1 ? ' group' : ' groups')];
      }
  });
})();
