// The GraphiQL page's own script (strawberry's inline one, as a file: the CSP allows no
// inline script). Queries over POST to this page's URL, subscriptions over
// graphql-transport-ws to the same URL; the headers pane's headers (your
// {"Authorization": "Bearer <token>"}) go with both, and are kept in this browser.
(function () {
  "use strict";

  var EXAMPLE_QUERY =
    "# Partners VRAI dossier API\n" +
    "#\n" +
    "# 1. Log in: run this (Ctrl-Enter), demo accounts in the README:\n" +
    "#\n" +
    "#    mutation { login(input: {\n" +
    '#      email: "agent@demo.test", password: "partners-vrai-2026"\n' +
    "#    }) { token userErrors { code message } } }\n" +
    "#\n" +
    "# 2. Put the token in the Headers pane (below):\n" +
    '#    {"Authorization": "Bearer <token>"}\n' +
    "#\n" +
    "# 3. Then, for example:\n" +
    "\n" +
    "{\n" +
    "  me {\n" +
    "    ... on Agent { email role }\n" +
    "    ... on Profile { email fullName }\n" +
    "  }\n" +
    "}\n";

  // URL parameters, to share a query: ?q=…&variables=…&headers=…
  var parameters = {};
  window.location.search
    .slice(1)
    .split("&")
    .forEach(function (entry) {
      var eq = entry.indexOf("=");
      if (eq >= 0) {
        parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
          entry.slice(eq + 1).replace(/\+/g, " "),
        );
      }
    });

  function updateURL(data) {
    Object.assign(parameters, data);
    var search = Object.keys(parameters)
      .filter(function (key) {
        return key !== "headers" && Boolean(parameters[key]); // never a token in the URL bar
      })
      .map(function (key) {
        return encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]);
      })
      .join("&");
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  var fetchURL = window.location.href.split("?")[0].split("#")[0];
  var subscriptionURL = new URL(fetchURL);
  subscriptionURL.protocol = subscriptionURL.protocol === "https:" ? "wss:" : "ws:";

  // connection_init carries the headers pane's headers (our server reads Authorization).
  var fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    subscriptionUrl: subscriptionURL.toString(),
  });

  function GraphiQLWithExplorer() {
    var queryState = React.useState(parameters.q || EXAMPLE_QUERY);
    var variablesState = React.useState(parameters.variables);
    var headersState = React.useState(parameters.headers);
    var explorerPlugin = React.useMemo(function () {
      return GraphiQLPluginExplorer.explorerPlugin();
    }, []);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorerPlugin],
      query: queryState[0],
      variables: variablesState[0],
      headers: headersState[0],
      onEditQuery: function (value) {
        queryState[1](value);
        updateURL({ q: value });
      },
      onEditVariables: function (value) {
        variablesState[1](value);
        updateURL({ variables: value });
      },
      onEditHeaders: function (value) {
        headersState[1](value);
      },
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQLWithExplorer));
})();
