/* Depth-slider recolour without a server round trip.
 *
 * The server ships, once per result, the colour slot (0..n_top, n_top = grey "other") of every
 * point at every depth as base64 uint8 arrays (dcc.Store "map-groups"). On a slider change we
 * decode that depth once (cached), hand the typed array straight to Plotly.restyle on the graph
 * node and render the legend. Going through the figure prop (Patch) would make dcc.Graph run
 * Plotly.react over the whole figure; restyling the node directly costs about what a bare
 * Plotly.restyle costs (bench/bench_app.py measures the ratio).
 */
(function () {
  var decoded = {token: null, depths: {}};

  function slotsFor(payload, depth) {
    if (decoded.token !== payload.token) {
      decoded = {token: payload.token, depths: {}};
    }
    var cached = decoded.depths[depth];
    if (cached) { return cached; }
    var bin = atob(payload.depths[depth]);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    decoded.depths[depth] = out;
    return out;
  }

  function legendChildren(payload, depth) {
    var info = payload.legend[depth];
    var items = info.groups.map(function (g, i) {
      return {
        type: 'Span', namespace: 'dash_html_components',
        props: {className: 'legend-item', title: g[0] + ': ' + g[1] + ' entities', children: [
          {type: 'Span', namespace: 'dash_html_components',
           props: {className: 'swatch', style: {background: payload.palette[i]}}},
          g[0] + ' (' + g[1] + ')'
        ]}
      };
    });
    if (info.other > 0) {
      items.push({type: 'Span', namespace: 'dash_html_components', props: {className: 'legend-item', children: [
        {type: 'Span', namespace: 'dash_html_components', props: {className: 'swatch', style: {background: payload.grey}}},
        'other: ' + (info.n_groups - info.groups.length) + ' groups (' + info.other + ')'
      ]}});
    }
    return items;
  }

  function graphDiv() {
    return document.querySelector('#map .js-plotly-plot');
  }

  window.hkdRecolour = {slotsFor: slotsFor, graphDiv: graphDiv};

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    hkd: {
      recolour: function (depth, payload) {
        if (!payload) {
          return [[], ''];
        }
        var d = Math.max(0, Math.min(depth | 0, payload.depths.length - 1));
        var trig = (window.dash_clientside.callback_context.triggered || []).map(function (t) { return t.prop_id; });
        if (trig.indexOf('depth-slider.value') >= 0) {
          var gd = graphDiv();
          // Only touch a graph that shows this payload's points (a new figure may be on its way).
          // (gd.data may hold base64 typed-array specs; _fullData has the decoded arrays.)
          var full = gd && gd._fullData && gd._fullData[0];
          if (full && full.x && full.x.length === payload.n) {
            window.Plotly.restyle(gd, {'marker.color': [slotsFor(payload, d)]}, [0]);
          }
        }
        var n = payload.legend[d].n_groups;
        return [legendChildren(payload, d), 'N = ' + d + ' · ' + n + (n === 1 ? ' group' : ' groups')];
      }
    }
  });
})();
