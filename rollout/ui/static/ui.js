// Replace each live section with the fragments the server sends (server-sent events).
document.querySelectorAll("[data-live]").forEach(function (el) {
  var source = new EventSource(el.dataset.live);
  source.onmessage = function (event) { el.innerHTML = event.data; };
});
