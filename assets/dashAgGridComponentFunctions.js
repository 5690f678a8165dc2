// Cell renderers for the dash-ag-grid tables (looked up by name in a column's cellRenderer).
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

// A row's thumbnail: only PNG data URIs made by the server (app/figures.add_thumbnails) are drawn,
// so a value from a user's file can never become a link or a script URL.
dagcomponentfuncs.ImageCell = function (props) {
  var value = props.value;
  if (typeof value !== "string" || value.indexOf("data:image/png;base64,") !== 0) {
    return null;
  }
  return React.createElement("img", {src: value, alt: "", className: "cell-thumb"});
};
