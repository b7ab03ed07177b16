/* cledecide rulebook search: plain JavaScript over window.RULEBOOK_INDEX (written beside
   it by `cledecide rules site`); no framework, no network, works from file://. */
(function () {
  "use strict";
  var input = document.getElementById("search");
  var list = document.getElementById("search-results");
  var index = window.RULEBOOK_INDEX || [];
  if (!input || !list) { return; }
  var root = input.getAttribute("data-root") || "";
  var haystacks = index.map(function (e) {
    return (e.id + " " + e.t + " " + e.k + " " + (e.x || "")).toLowerCase();
  });

  function render(query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    list.textContent = "";
    if (!words.length) { return; }
    var found = [];
    for (var i = 0; i < index.length && found.length < 60; i++) {
      var h = haystacks[i], all = true;
      for (var j = 0; j < words.length; j++) {
        if (h.indexOf(words[j]) < 0) { all = false; break; }
      }
      if (all) { found.push(index[i]); }
    }
    if (!found.length) {
      var none = document.createElement("li");
      none.textContent = "Nothing found for \u201c" + query + "\u201d.";
      list.appendChild(none);
      return;
    }
    found.forEach(function (e) {
      var li = document.createElement("li");
      var kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = e.k;
      var a = document.createElement("a");
      a.href = root + e.u;
      a.textContent = e.id;
      li.appendChild(kind);
      li.appendChild(a);
      li.appendChild(document.createTextNode(" \u2014 " + e.t));
      list.appendChild(li);
    });
  }

  input.addEventListener("input", function () { render(input.value); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") {
      var first = list.querySelector("a");
      if (first) { ev.preventDefault(); window.location.href = first.href; }
    } else if (ev.key === "ArrowDown") {
      var link = list.querySelector("a");
      if (link) { ev.preventDefault(); link.focus(); }
    } else if (ev.key === "Escape") {
      input.value = ""; render("");
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && document.activeElement !== input) {
      ev.preventDefault(); input.focus();
    }
  });
})();
