// Runs in <head> before the stylesheet paints: the stored theme, else the system's preference.
(function () {
  var stored = null;
  try { stored = window.localStorage.getItem("theme"); } catch (e) { /* storage blocked */ }
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = stored === "dark" || stored === "light" ? stored : (dark ? "dark" : "light");
})();
