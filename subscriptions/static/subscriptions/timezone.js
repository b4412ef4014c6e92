// Fills a timezone field with the browser's own zone (Intl), unless the reader already chose
// one. Without JavaScript the field keeps its default and still works: it is a text input
// with the zones as suggestions (a <datalist>), so it is searchable by typing "Paris".
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) return;
  document.querySelectorAll("input[data-browser-timezone]").forEach(function (input) {
    var known = document.getElementById(input.getAttribute("list"));
    var listed = !known || Array.prototype.some.call(known.options, function (o) { return o.value === zone; });
    if (listed && (input.value === "" || input.value === input.getAttribute("data-browser-timezone"))) input.value = zone;
  });
})();
