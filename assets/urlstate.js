/* The page's view into its URL, without a server round trip or a history entry per slider step:
 * history.replaceState with the query string app/urlstate.py reads back when the page is built
 * (so a reload or a pasted link restores dataset, model and parameters, projection, depth,
 * colour scheme, clicked branch and searched entity). */
(function () {
  var KEYS = ['model', 'K', 'D', 'alpha', 'beta', 'perplexity', 'epochs', 'kmeans_exemplars',
              'random_exemplars'];
  window.dash_clientside = Object.assign({}, window.dash_clientside);
  window.dash_clientside.hkd = Object.assign({}, window.dash_clientside.hkd, {
    writeUrl: function () {
      var args = Array.prototype.slice.call(arguments);
      var params = new URLSearchParams();
      function put(key, value) {
        if (value !== null && value !== undefined && value !== '') { params.set(key, String(value)); }
      }
      put('dataset', args[0]);
      for (var i = 0; i < KEYS.length; i++) { put(KEYS[i], args[1 + i]); }
      var rest = args.slice(1 + KEYS.length);
      put('projection', rest[0]);
      put('depth', rest[1]);
      put('colour', rest[2]);
      put('branch', rest[3]);
      put('entity', rest[4]);
      var query = params.toString();
      if (window.location.search.replace(/^\?/, '') !== query) {
        window.history.replaceState(null, '', window.location.pathname + (query ? '?' + query : ''));
      }
      return query;
    }
  });
})();
