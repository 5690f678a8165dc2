// A file over the upload limit is refused in the page, before it is read and sent: the server
// would answer its oversized request with HTTP 413, which the page could not show.
(function () {
  function limitMessage(file, max) {
    var mb = function (b) { return (b / 1048576).toFixed(1) + " MB"; };
    return "Upload rejected: '" + file.name + "' is " + mb(file.size) + "; the limit is " + mb(max);
  }
  function check(event, files) {
    var box = document.getElementById("upload-error");
    if (!box || !files || !files.length) { return; }
    var max = parseInt(box.getAttribute("data-max-bytes"), 10);
    var file = files[0];
    if (max > 0 && file.size > max) {
      event.preventDefault();
      event.stopImmediatePropagation();
      if (event.target && event.target.value !== undefined) { event.target.value = ""; }
      box.textContent = limitMessage(file, max);   // text, never HTML: the name is the user's
      box.hidden = false;
    }
  }
  document.addEventListener("change", function (e) {
    if (e.target && e.target.matches && e.target.matches("#upload input[type=file]")) { check(e, e.target.files); }
  }, true);
  document.addEventListener("drop", function (e) {
    var zone = e.target && e.target.closest && e.target.closest("#upload");
    if (zone && e.dataTransfer) { check(e, e.dataTransfer.files); }
  }, true);
})();
